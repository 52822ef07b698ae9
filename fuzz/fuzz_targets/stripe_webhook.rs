//! What `stripe-webhook` does with one request, then the worker with its queue message: the
//! `Stripe-Signature` check, the event envelope parse, the message round trip and the typed payload
//! parse. Input: the header value on the first line, the raw body after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::domain::ids::{AccountKey, PublicationId};
use shared::domain::secret::Secret;
use shared::stripe::event::{Event, EventError};
use shared::stripe::signature::{self, DEFAULT_TOLERANCE_SECS, SignatureError};
use shared::sync::envelope::{self, Header, Provider};

const SECRET: &str = "whsec_fuzz_0123456789abcdefghij";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let secrets = [Secret::new(SECRET)];

    // Any header: an answer, never a panic; one that is accepted is so for the secret, not another.
    let header = std::str::from_utf8(header).ok();
    if let Some(header) = header
        && signature::verify(Some(header), body, &secrets, NOW, DEFAULT_TOLERANCE_SECS).is_ok()
    {
        let other = [Secret::new("whsec_another_0123456789")];
        let refused = signature::verify(Some(header), body, &other, NOW, DEFAULT_TOLERANCE_SECS);
        assert_eq!(refused, Err(SignatureError::NoMatch));
    }

    // The body as Stripe signs it verifies, under any of the account's secrets (here the header line as
    // a second one), and only within the tolerance.
    let rotated = header.filter(|h| !h.is_empty()).map(Secret::new);
    let both: Vec<Secret> = secrets.iter().cloned().chain(rotated.clone()).collect();
    let signed = signature::sign(body, SECRET, NOW);
    assert_eq!(signature::verify(Some(&signed), body, &both, NOW, DEFAULT_TOLERANCE_SECS), Ok(NOW));
    if let Some(other) = &rotated {
        let signed = signature::sign(body, other.expose(), NOW - 1);
        assert_eq!(signature::verify(Some(&signed), body, &both, NOW, DEFAULT_TOLERANCE_SECS), Ok(NOW - 1));
        if other.expose() != SECRET {
            let refused = signature::verify(Some(&signed), body, &secrets, NOW, DEFAULT_TOLERANCE_SECS);
            assert_eq!(refused, Err(SignatureError::NoMatch));
        }
    }
    let stale = signature::sign(body, SECRET, NOW - DEFAULT_TOLERANCE_SECS - 1);
    assert_eq!(
        signature::verify(Some(&stale), body, &secrets, NOW, DEFAULT_TOLERANCE_SECS),
        Err(SignatureError::Stale { tolerance: DEFAULT_TOLERANCE_SECS })
    );

    // Past the signature, the handler: a Stripe event, UTF-8, queued with its header.
    let checked = Event::check(body);
    // Ingestion's envelope check accepts exactly the bodies whose envelope the worker's parse accepts
    // (an object of the wrong shape for its type is the worker's error only).
    let parsed = Event::parse(body);
    assert_eq!(
        checked.is_ok(),
        !matches!(parsed, Err(EventError::NotAnEvent(_))),
        "ingestion and the worker disagree on a body"
    );
    let Ok(event) = checked else { return };
    let Ok(text) = std::str::from_utf8(body) else { return };
    let header = Header {
        provider: Provider::Stripe,
        publication: PublicationId::parse("fuzz").expect("a valid id"),
        account: Some(AccountKey::parse("main").expect("a valid key")),
        received_at: NOW,
        received_at_us: None,
        event_id: None,
        event_type: Some(event.kind.clone()),
    };
    let message = envelope::encode(&header, text);

    // The worker: the message gives back the header and body, and the body the same event.
    let (decoded, decoded_body) = envelope::decode(&message).expect("a queued message decodes");
    assert_eq!(decoded, header);
    assert_eq!(decoded_body, text);
    // The worker's one pass, with the type ingestion named, reads what the two passes read.
    let again = Event::parse_as(decoded_body.as_bytes(), &event.kind);
    assert_eq!(format!("{again:?}"), format!("{parsed:?}"), "one pass and two disagree on a body");
    if let Ok(again) = again {
        assert_eq!((&again.id, &again.kind, again.created), (&event.id, &event.kind, event.created));
    }
});
