//! `Stripe-Signature` verification exactly as Stripe specifies it: a `t=` timestamp and one or more
//! `v1=` HMAC-SHA256 signatures of `"{t}.{raw body}"`; any `v1` matching any of the account's signing
//! secrets (several during a rotation) accepts; other schemes are ignored; the timestamp must be
//! within the tolerance. Comparison is constant-time (`Mac::verify_slice`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::secret::Secret;

/// Stripe's default tolerance between the signed timestamp and now.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header: {0}")]
    Malformed(&'static str),
    #[error("no v1 signature matches the account's signing secrets")]
    NoMatch,
    #[error("signature timestamp is outside the tolerance of {tolerance} s")]
    Stale { tolerance: i64 },
}

struct Header<'a> {
    timestamp: i64,
    timestamp_text: &'a str,
    v1: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<Header<'_>, SignatureError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed("expected key=value pairs"));
        };
        match key {
            "t" => {
                let parsed = value.parse::<i64>().map_err(|_| SignatureError::Malformed("t is not a number"))?;
                timestamp = Some((parsed, value));
            }
            // A v1 that is not hex can never match; skip it rather than reject the others.
            "v1" => v1.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let (timestamp, timestamp_text) = timestamp.ok_or(SignatureError::Malformed("no t= timestamp"))?;
    Ok(Header { timestamp, timestamp_text, v1 })
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Verifies `header` for the raw `body`; answers the signed timestamp.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Secret],
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let header = parse_header(header.ok_or(SignatureError::Missing)?)?;
    // The body is hashed once per secret; each v1 is checked against a copy of that state.
    let matched = secrets.iter().any(|secret| {
        let signed = mac(secret.expose(), header.timestamp_text, body);
        header.v1.iter().any(|sig| signed.clone().verify_slice(sig).is_ok())
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    if header.timestamp < now.saturating_sub(tolerance_secs) {
        return Err(SignatureError::Stale { tolerance: tolerance_secs });
    }
    Ok(header.timestamp)
}

/// A `Stripe-Signature` value for `body` as Stripe would send it (for local replays and tests).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let t = timestamp.to_string();
    format!("t={t},v1={}", hex::encode(mac(secret, &t, body).finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    const NOW: i64 = 1_700_000_000;

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::new(*v)).collect()
    }

    #[test]
    fn a_valid_signature_answers_its_timestamp() {
        let header = sign(BODY, SECRET, NOW);
        assert_eq!(verify(Some(&header), BODY, &secrets(&[SECRET]), NOW, 300), Ok(NOW));
    }

    #[test]
    fn any_matching_v1_among_several_accepts() {
        let good = sign(BODY, SECRET, NOW);
        let good_v1 = good.split("v1=").nth(1).unwrap();
        let header = format!("t={NOW},v1={},v0=abc,v1={good_v1}", "00".repeat(32));
        assert_eq!(verify(Some(&header), BODY, &secrets(&[SECRET]), NOW, 300), Ok(NOW));
    }

    #[test]
    fn any_secret_of_a_rotation_accepts() {
        let header = sign(BODY, "whsec_new", NOW);
        assert_eq!(verify(Some(&header), BODY, &secrets(&["whsec_old", "whsec_new"]), NOW, 300), Ok(NOW));
    }

    #[test]
    fn wrong_secret_tampered_body_and_moved_timestamp_fail() {
        let header = sign(BODY, SECRET, NOW);
        assert_eq!(verify(Some(&header), BODY, &secrets(&["whsec_other"]), NOW, 300), Err(SignatureError::NoMatch));
        let tampered = br#"{"id":"evt_2","object":"event"}"#;
        assert_eq!(verify(Some(&header), tampered, &secrets(&[SECRET]), NOW, 300), Err(SignatureError::NoMatch));
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(verify(Some(&moved), BODY, &secrets(&[SECRET]), NOW, 300), Err(SignatureError::NoMatch));
        assert_eq!(verify(Some(&header), BODY, &[], NOW, 300), Err(SignatureError::NoMatch));
    }

    #[test]
    fn expired_timestamps_fail_after_the_signature_check() {
        let header = sign(BODY, SECRET, NOW - 301);
        assert_eq!(
            verify(Some(&header), BODY, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Stale { tolerance: 300 })
        );
        assert_eq!(verify(Some(&header), BODY, &secrets(&[SECRET]), NOW, 600), Ok(NOW - 301));
    }

    #[test]
    fn missing_and_malformed_headers_fail_without_panicking() {
        assert_eq!(verify(None, BODY, &secrets(&[SECRET]), NOW, 300), Err(SignatureError::Missing));
        for header in [
            "",
            "garbage",
            "t=,v1=00",
            "t=abc,v1=00",
            "v1=00",
            "t=1,,v1=00",
            "t=99999999999999999999,v1=00",
            "=",
            "t=1;v1=00",
        ] {
            let result = verify(Some(header), BODY, &secrets(&[SECRET]), NOW, 300);
            assert!(matches!(result, Err(SignatureError::Malformed(_))), "{header:?} gave {result:?}");
        }
        for header in [format!("t={NOW}"), format!("t={NOW},v1=zz"), format!("t={NOW},v0=abcd")] {
            assert_eq!(verify(Some(&header), BODY, &secrets(&[SECRET]), NOW, 300), Err(SignatureError::NoMatch));
        }
    }
}
