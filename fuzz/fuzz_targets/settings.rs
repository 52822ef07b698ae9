//! The publication settings of `PUT /admin/publications/{id}`: parse and validation of the body, alone
//! and against stored settings (masked secrets sent back). Input: a request body.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use shared::domain::settings::PublicationSettings;

/// Stored settings a body can refer to with masked secrets: `fuzz/corpus/settings/put-settings.json`.
static STORED: LazyLock<PublicationSettings> = LazyLock::new(|| {
    PublicationSettings::parse(include_bytes!("../corpus/settings/put-settings.json"), None)
        .expect("the seed settings are valid")
});

fuzz_target!(|data: &[u8]| {
    for previous in [None, Some(&*STORED)] {
        let Ok(settings) = PublicationSettings::parse(data, previous) else { continue };
        // Stored as they are and sent again: the same settings.
        let stored = serde_json::to_vec(&settings).expect("settings serialise");
        assert_eq!(PublicationSettings::parse(&stored, None).as_ref(), Ok(&settings));
        // Read (masked) and sent back unchanged: the same settings, every secret restored.
        let shown = serde_json::to_vec(&settings.masked()).expect("settings serialise");
        assert_eq!(PublicationSettings::parse(&shown, Some(&settings)).as_ref(), Ok(&settings));
    }
});
