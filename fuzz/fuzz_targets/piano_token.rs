//! Piano ID tokens as the public routes read them: `decode_unverified` (to find the publication by
//! `aud`) and `verify` (HS256 and `exp`). Input: read as a token, and as the payload of a token this
//! target signs itself.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use shared::domain::secret::Secret;
use shared::piano::token::{LEEWAY_SECS, TokenError, decode_unverified, verify};

const SECRET: &str = "piano-app-secret-0123456789abcdef";
const NOW: i64 = 1_780_000_000;

fuzz_target!(|data: &[u8]| {
    let secret = Secret::new(SECRET);

    // As a token: a verified token's claims are the ones read before verifying, which chose the
    // publication (and so the secret).
    if let Ok(token) = std::str::from_utf8(data) {
        let unverified = decode_unverified(token);
        if let Ok(claims) = verify(token, &secret, NOW) {
            assert_eq!(unverified, Ok(claims));
        }
        assert_eq!(verify(token, &Secret::new(""), NOW).ok(), None);
    }

    // As the payload of an HS256 token signed with the secret: accepted, with the claims read
    // unverified, exactly when those claims parse and `exp` is there and not past; refused under
    // another secret.
    let token = signed(br#"{"alg":"HS256","typ":"JWT"}"#, data, SECRET);
    let verdict = verify(&token, &secret, NOW);
    match decode_unverified(&token) {
        Ok(claims) if claims.exp.is_some_and(|exp| NOW < exp.saturating_add(LEEWAY_SECS)) => {
            assert_eq!(verdict, Ok(claims));
            assert_eq!(verify(&token, &Secret::new("another-secret"), NOW), Err(TokenError::BadSignature));
        }
        _ => assert!(verdict.is_err(), "{verdict:?}"),
    }
});

fn signed(header: &[u8], payload: &[u8], secret: &str) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}
