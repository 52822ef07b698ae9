//! What `piano-webhook` does with Piano's `data` and the worker with the decrypted event: HMAC check,
//! AES-256-ECB decryption, the proxy's quick read of the event type and the worker's full parse.
//! Input: read as a `data` value, and as a plaintext to encrypt.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::domain::secret::Secret;
use shared::piano::webhook::{SEPARATOR, decrypt, encrypt, event_type, parse_event};

/// The private key of Piano's SDK test vector (and of the seed corpus).
const KEY: &str = "thestringliteralisexactlyfortych";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let key = Secret::new(KEY);

    // As `data`: whatever decrypts is read the same way by the proxy and the worker, and survives
    // re-encryption.
    if let Ok(plaintext) = decrypt(text, &key) {
        same_reading(&plaintext);
        assert_eq!(decrypt(&encrypt(&plaintext, &key), &key).as_deref(), Ok(plaintext.as_str()));
    }

    // As plaintext: decrypt(encrypt(x)) == x, with the HMAC and without it (older senders), under the
    // fixed key and under the input itself as a key (any length, any characters).
    let sealed = encrypt(text, &key);
    assert_eq!(decrypt(&sealed, &key).as_deref(), Ok(text));
    let (cipher_text, _) = sealed.rsplit_once(SEPARATOR).expect("encrypt appends ~~~H");
    assert_eq!(decrypt(cipher_text, &key).as_deref(), Ok(text));
    if !text.is_empty() {
        let own = Secret::new(text);
        assert_eq!(decrypt(&encrypt(KEY, &own), &own).as_deref(), Ok(KEY));
    }
    same_reading(text);
});

/// `event_type` is the proxy's allocation-free shortcut through `parse_event`: same verdict, same type.
fn same_reading(plaintext: &str) {
    match (parse_event(plaintext), event_type(plaintext)) {
        (Ok(event), Ok(kind)) => assert_eq!(event.kind, kind),
        (Err(full), Err(quick)) => assert_eq!(full, quick),
        (full, quick) => panic!("parse_event gave {full:?} but event_type {quick:?}"),
    }
}
