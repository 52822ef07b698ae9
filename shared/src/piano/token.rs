//! Piano ID access tokens: JWTs whose payload names the application (`aud`), the Piano user (`sub`),
//! the expiry (`exp`) and the email. Piano signs them HS256 with a per-application secret and
//! publishes no key set, so local verification is HS256 only: the header's `alg` is checked here
//! before any cryptography runs, which keeps `alg: none` and algorithm confusion out whatever the JWT
//! library accepts. Piano's token verification call (`super::client`) stays the authoritative check.
//!
//! `decode_unverified` exists because the public routes must read `aud` to find the publication whose
//! secret then verifies the token; nothing it returns may be trusted before `verify` passed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::secret::Secret;

/// The only algorithm accepted.
pub const ALGORITHM: &str = "HS256";
/// Clock skew tolerated on `exp` between Piano's clock and ours, in seconds.
pub const LEEWAY_SECS: i64 = 5;
/// Longest token looked at. Piano's tokens are well under 2 KiB; the bound keeps a hostile caller
/// from making us decode megabytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest `alg` echoed back in `AlgorithmNotAllowed` (it comes from the caller).
const MAX_ALG_ECHO: usize = 16;

/// What the project reads from a token's payload; other claims are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// The application id (`aid`) the token was issued for; the first one when `aud` is an array.
    pub aud: Option<String>,
    /// The Piano user id (`uid`).
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: Option<i64>,
    pub email: Option<String>,
}

/// Why a token was refused. No variant carries the token or any part of its payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed Piano token: {0}")]
    Malformed(&'static str),
    #[error("Piano token signature does not match")]
    BadSignature,
    #[error("Piano token expired")]
    Expired,
    #[error("Piano token algorithm {0:?} is not allowed (only HS256)")]
    AlgorithmNotAllowed(String),
    /// The publication's secret is empty: anyone can compute an HMAC with an empty key, so such a
    /// secret would accept forged tokens.
    #[error("no Piano token secret configured")]
    EmptySecret,
}

/// The three segments of a compact JWS, still encoded.
struct Segments<'a> {
    header: &'a str,
    payload: &'a str,
}

fn split(token: &str) -> Result<Segments<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("token too long"));
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(_signature), None) if !header.is_empty() && !payload.is_empty() => {
            Ok(Segments { header, payload })
        }
        _ => Err(TokenError::Malformed("expected three dot-separated segments")),
    }
}

/// A segment's JSON object. Padding is tolerated although JWTs must not carry it: some encoders add it,
/// and it changes nothing about the bytes. Duplicate member names are refused (RFC 7519 section 4
/// allows that or taking the last): jsonwebtoken refuses duplicate registered claims, and a payload
/// must read the same before and after verification.
fn decode_segment(segment: &str) -> Result<serde_json::Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("segment is not base64url"))?;
    match serde_json::from_slice::<UniqueObject>(&bytes) {
        Ok(UniqueObject(map)) => Ok(map),
        // Errors only: parsed again to say what is wrong.
        Err(_) => Err(TokenError::Malformed(match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(_)) => "segment repeats a member name",
            Ok(_) => "segment is not a JSON object",
            Err(_) => "segment is not JSON",
        })),
    }
}

/// A JSON object whose member names are all different.
struct UniqueObject(serde_json::Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<UniqueObject, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some((name, value)) = members.next_entry::<String, Value>()? {
                    if map.contains_key(&name) {
                        return Err(serde::de::Error::custom("duplicate member name"));
                    }
                    map.insert(name, value);
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(Members)
    }
}

/// The payload as it is written; `aud` may be one string or an array of them.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// RFC 7519 allows fractional seconds; the fraction is dropped.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumericDate {
    Int(i64),
    Float(f64),
}

impl NumericDate {
    fn seconds(&self) -> Result<i64, TokenError> {
        match *self {
            Self::Int(seconds) => Ok(seconds),
            // `as` saturates; a non-finite or absurd date is malformed rather than "far future".
            Self::Float(seconds) if seconds.is_finite() && seconds.abs() < 1e15 => Ok(seconds.trunc() as i64),
            Self::Float(_) => Err(TokenError::Malformed("exp is not a date")),
        }
    }
}

impl RawClaims {
    fn into_claims(self) -> Result<Claims, TokenError> {
        let aud = match self.aud {
            Some(Audience::One(aud)) => Some(aud),
            Some(Audience::Many(list)) => list.into_iter().next(),
            None => None,
        };
        let exp = self.exp.as_ref().map(NumericDate::seconds).transpose()?;
        Ok(Claims { aud, sub: self.sub, exp, email: self.email })
    }
}

fn parse_claims(payload: serde_json::Map<String, Value>) -> Result<Claims, TokenError> {
    serde_json::from_value::<RawClaims>(Value::Object(payload))
        .map_err(|_| TokenError::Malformed("aud, sub, exp or email has the wrong type"))?
        .into_claims()
}

/// Reads the payload without checking the signature or the expiry. Only for finding which secret
/// verifies the token (by `aud`); the result is untrusted until `verify` passes.
pub fn decode_unverified(token: &str) -> Result<Claims, TokenError> {
    let segments = split(token)?;
    parse_claims(decode_segment(segments.payload)?)
}

/// The header's checks: HS256 named explicitly and no critical extensions.
fn check_header(segments: &Segments<'_>) -> Result<(), TokenError> {
    // The header is checked by hand, before jsonwebtoken sees the token: `none` (which jsonwebtoken
    // would refuse to parse at all) and every other algorithm get the same explicit refusal.
    let header = decode_segment(segments.header)?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == ALGORITHM => {}
        Some(Value::String(alg)) => {
            return Err(TokenError::AlgorithmNotAllowed(alg.chars().take(MAX_ALG_ECHO).collect()));
        }
        _ => return Err(TokenError::Malformed("header has no alg")),
    }
    // RFC 7515: a header naming critical extensions this code does not implement must be refused.
    if header.contains_key("crit") {
        return Err(TokenError::Malformed("critical header extensions are not supported"));
    }
    Ok(())
}

fn check_exp(claims: &Claims, now: i64) -> Result<(), TokenError> {
    let exp = claims.exp.ok_or(TokenError::Malformed("no exp claim"))?;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    Ok(())
}

/// Everything `verify` checks except the signature, for a publication without a local secret: a token
/// failing this cannot be a live Piano token (Piano issues HS256 with `exp`), so it is refused before
/// Piano is asked. Passing it proves nothing; the claims stay untrusted until Piano accepts the token.
pub fn screen(token: &str, now: i64) -> Result<Claims, TokenError> {
    let segments = split(token)?;
    check_header(&segments)?;
    if token.ends_with('.') {
        return Err(TokenError::BadSignature);
    }
    let claims = parse_claims(decode_segment(segments.payload)?)?;
    check_exp(&claims, now)?;
    Ok(claims)
}

/// Verifies an HS256 token with the application's secret and returns its claims: signature first,
/// then `exp` (required) against `now` (seconds since the epoch) with `LEEWAY_SECS`. `aud` is not
/// checked here: the caller compares it with the publication's application id.
pub fn verify(token: &str, secret: &Secret, now: i64) -> Result<Claims, TokenError> {
    let segments = split(token)?;
    check_header(&segments)?;
    if secret.expose().is_empty() {
        return Err(TokenError::EmptySecret);
    }

    install_crypto_provider();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    // jsonwebtoken compares `exp` with the system clock; it is checked below against `now` instead,
    // so tests and callers control time. Its presence is still required here.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp"]);
    // The caller matches `aud` to the publication.
    validation.validate_aud = false;

    let key = DecodingKey::from_secret(secret.expose().as_bytes());
    // jsonwebtoken checks the signature (and that `exp` is there); the claims are then read as
    // `decode_unverified` read them to choose this secret, so both readings agree.
    jsonwebtoken::decode::<serde::de::IgnoredAny>(token, &key, &validation).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::MissingRequiredClaim(_) => TokenError::Malformed("no exp claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            TokenError::AlgorithmNotAllowed(ALGORITHM.to_owned())
        }
        _ => TokenError::Malformed("not a valid JWT"),
    })?;
    let claims = parse_claims(decode_segment(segments.payload)?)?;
    check_exp(&claims, now)?;
    Ok(claims)
}

/// jsonwebtoken picks its crypto backend from its features, and panics at first use when another
/// crate in the build enables its second backend too; installing RustCrypto explicitly avoids that.
/// A provider installed already (by anyone) is kept.
fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "piano-app-secret-0123456789abcdef";
    const NOW: i64 = 1_780_000_000;

    fn sign(alg: Algorithm, payload: &Value, secret: &str) -> String {
        install_crypto_provider();
        encode(&Header::new(alg), payload, &EncodingKey::from_secret(secret.as_bytes())).expect("sign")
    }

    fn payload() -> Value {
        json!({"aud": "AbCdEfGhIj", "sub": "PNIabc123", "exp": NOW + 3600, "email": "reader@example.com", "iat": NOW})
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn hs256_token_verifies_and_gives_its_claims() {
        let token = sign(Algorithm::HS256, &payload(), SECRET);
        let claims = verify(&token, &Secret::new(SECRET), NOW).unwrap();
        assert_eq!(
            claims,
            Claims {
                aud: Some("AbCdEfGhIj".into()),
                sub: Some("PNIabc123".into()),
                exp: Some(NOW + 3600),
                email: Some("reader@example.com".into()),
            }
        );
        assert_eq!(decode_unverified(&token).unwrap(), claims);
    }

    #[test]
    fn aud_array_gives_its_first_entry() {
        let mut body = payload();
        body["aud"] = json!(["first", "second"]);
        let token = sign(Algorithm::HS256, &body, SECRET);
        assert_eq!(decode_unverified(&token).unwrap().aud.as_deref(), Some("first"));
        assert_eq!(verify(&token, &Secret::new(SECRET), NOW).unwrap().aud.as_deref(), Some("first"));
        body["aud"] = json!([]);
        assert_eq!(decode_unverified(&sign(Algorithm::HS256, &body, SECRET)).unwrap().aud, None);
    }

    #[test]
    fn alg_none_is_rejected() {
        let header = b64(&json!({"alg": "none", "typ": "JWT"}));
        let token = format!("{header}.{}.", b64(&payload()));
        assert_eq!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::AlgorithmNotAllowed("none".into())));
        // The spelling from the brief: `{"alg":"none"}` with no typ, and variants of the word.
        let token = format!("eyJhbGciOiJub25lIn0.{}.", b64(&payload()));
        assert!(matches!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::AlgorithmNotAllowed(_))));
        for alg in ["None", "NONE", "hs256", ""] {
            let token = format!("{}.{}.", b64(&json!({ "alg": alg })), b64(&payload()));
            assert!(
                matches!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::AlgorithmNotAllowed(_))),
                "{alg}"
            );
        }
        // Reading it unverified still works: that is what decode_unverified is for.
        assert_eq!(decode_unverified(&token).unwrap().sub.as_deref(), Some("PNIabc123"));
    }

    #[test]
    fn other_algorithms_are_rejected_even_when_correctly_signed() {
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign(alg, &payload(), SECRET);
            assert_eq!(
                verify(&token, &Secret::new(SECRET), NOW),
                Err(TokenError::AlgorithmNotAllowed(format!("{alg:?}")))
            );
        }
        // An RS256 header with an HMAC signature made from the secret: the classic confusion attack.
        let header = b64(&json!({"alg": "RS256", "typ": "JWT"}));
        let token = format!("{header}.{}.c2lnbmF0dXJl", b64(&payload()));
        assert_eq!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::AlgorithmNotAllowed("RS256".into())));
        let long = format!("{}.{}.x", b64(&json!({"alg": "X".repeat(500)})), b64(&payload()));
        let Err(TokenError::AlgorithmNotAllowed(echo)) = verify(&long, &Secret::new(SECRET), NOW) else {
            panic!("long alg accepted")
        };
        assert!(echo.len() <= MAX_ALG_ECHO);
    }

    #[test]
    fn wrong_secret_is_a_bad_signature() {
        let token = sign(Algorithm::HS256, &payload(), "another-secret");
        assert_eq!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::BadSignature));
        assert_eq!(verify(&token, &Secret::new(""), NOW), Err(TokenError::EmptySecret));
    }

    #[test]
    fn expired_and_missing_exp_are_refused() {
        let mut body = payload();
        body["exp"] = json!(NOW - 100);
        let token = sign(Algorithm::HS256, &body, SECRET);
        assert_eq!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::Expired));
        // Within the leeway, and just past it.
        body["exp"] = json!(NOW - LEEWAY_SECS + 1);
        assert!(verify(&sign(Algorithm::HS256, &body, SECRET), &Secret::new(SECRET), NOW).is_ok());
        body["exp"] = json!(NOW - LEEWAY_SECS);
        assert_eq!(verify(&sign(Algorithm::HS256, &body, SECRET), &Secret::new(SECRET), NOW), Err(TokenError::Expired));
        // Fractional dates are allowed by RFC 7519.
        body["exp"] = json!((NOW + 60) as f64 + 0.5);
        assert_eq!(
            verify(&sign(Algorithm::HS256, &body, SECRET), &Secret::new(SECRET), NOW).unwrap().exp,
            Some(NOW + 60)
        );

        let mut body = payload();
        body.as_object_mut().unwrap().remove("exp");
        let token = sign(Algorithm::HS256, &body, SECRET);
        assert_eq!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::Malformed("no exp claim")));
        body["exp"] = json!("tomorrow");
        let token = sign(Algorithm::HS256, &body, SECRET);
        assert!(matches!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn screening_refuses_what_piano_could_not_accept_and_passes_the_rest_unverified() {
        let valid = sign(Algorithm::HS256, &payload(), SECRET);
        assert_eq!(screen(&valid, NOW).unwrap().sub.as_deref(), Some("PNIabc123"));
        // A wrong key still passes: only Piano (or the local secret) can tell.
        assert!(screen(&sign(Algorithm::HS256, &payload(), "another-key-0123456789"), NOW).is_ok());

        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&payload()));
        assert_eq!(screen(&none, NOW), Err(TokenError::AlgorithmNotAllowed("none".into())));
        let hs512 = sign(Algorithm::HS512, &payload(), SECRET);
        assert_eq!(screen(&hs512, NOW), Err(TokenError::AlgorithmNotAllowed("HS512".into())));
        let unsigned = format!("{}.{}.", b64(&json!({"alg": "HS256"})), b64(&payload()));
        assert_eq!(screen(&unsigned, NOW), Err(TokenError::BadSignature));
        let crit = format!("{}.{}.x", b64(&json!({"alg": "HS256", "crit": ["b64"]})), b64(&payload()));
        assert!(matches!(screen(&crit, NOW), Err(TokenError::Malformed(_))));

        let mut body = payload();
        body["exp"] = json!(NOW - LEEWAY_SECS);
        assert_eq!(screen(&sign(Algorithm::HS256, &body, SECRET), NOW), Err(TokenError::Expired));
        body["exp"] = json!(NOW - LEEWAY_SECS + 1);
        assert!(screen(&sign(Algorithm::HS256, &body, SECRET), NOW).is_ok());
        body.as_object_mut().unwrap().remove("exp");
        assert_eq!(screen(&sign(Algorithm::HS256, &body, SECRET), NOW), Err(TokenError::Malformed("no exp claim")));
    }

    #[test]
    fn tampered_payload_is_a_bad_signature() {
        let token = sign(Algorithm::HS256, &payload(), SECRET);
        let [header, _, signature]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
        let mut body = payload();
        body["sub"] = json!("PNIsomeoneelse");
        let forged = format!("{header}.{}.{signature}", b64(&body));
        assert_eq!(verify(&forged, &Secret::new(SECRET), NOW), Err(TokenError::BadSignature));
        // An expired forgery is refused for its signature, before its date is looked at.
        body["exp"] = json!(NOW - 10_000);
        let forged = format!("{header}.{}.{signature}", b64(&body));
        assert_eq!(verify(&forged, &Secret::new(SECRET), NOW), Err(TokenError::BadSignature));
        let stripped = format!("{header}.{}.", b64(&payload()));
        assert_eq!(verify(&stripped, &Secret::new(SECRET), NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_never_panics_and_never_echoes_the_token() {
        let secret = Secret::new(SECRET);
        let valid = sign(Algorithm::HS256, &payload(), SECRET);
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases = [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b.c.d",
            "%%%.%%%.%%%",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9..sig",
            "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig",
            "eyJhbGciOiJIUzI1NiJ9.WzEsMl0.sig",
            "bnVsbA.bnVsbA.",
            "eyJhbGciOjF9.e30.",
            "éé.éé.éé",
            "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOjF9.x",
            long.as_str(),
            &valid[..valid.len() / 2],
        ];
        for case in cases {
            // decode_unverified reads only the payload, so a few of these parse; none may panic.
            let results = [
                verify(case, &secret, NOW).map(Some),
                decode_unverified(case).map(|_| None),
                screen(case, NOW).map(|_| None),
            ];
            assert!(results[0].is_err(), "{case}");
            for error in results.into_iter().filter_map(Result::err) {
                let text = format!("{error} {error:?}");
                if case.len() > 8 {
                    assert!(!text.contains(case), "{text}");
                }
            }
        }
        // Every byte flipped somewhere in a valid token: refused, never a panic.
        for i in 0..valid.len() {
            let mut bytes = valid.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let Ok(mutated) = String::from_utf8(bytes) else { continue };
            if mutated != valid {
                assert!(verify(&mutated, &secret, NOW).is_err(), "{i}");
            }
        }
    }

    // Found by fuzz/ (`piano_token`): with `exp` twice, decode_unverified read the payload (last one
    // wins) while verify refused it, so the two readings of one token differed.
    #[test]
    fn repeated_member_names_are_refused_before_and_after_verification() {
        let header = b64(&json!({"alg": "HS256", "typ": "JWT"}));
        for payload in [
            format!(r#"{{"aud":"A","sub":"PNIvictim","exp":{},"sub":"PNIother"}}"#, NOW + 60),
            format!(r#"{{"aud":"A","exp":{0},"email":"a@example.com","exp":{0},"email":"b@example.com"}}"#, NOW + 60),
        ] {
            let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(&payload));
            install_crypto_provider();
            let key = EncodingKey::from_secret(SECRET.as_bytes());
            let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("sign");
            let token = format!("{input}.{signature}");
            let refused = Err(TokenError::Malformed("segment repeats a member name"));
            assert_eq!(decode_unverified(&token), refused, "{payload}");
            // jsonwebtoken refuses a repeated registered claim first, with its own message.
            assert!(matches!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::Malformed(_))), "{payload}");
        }
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","alg":"HS256"}"#);
        let token = format!("{header}.{}.x", b64(&payload()));
        assert!(matches!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn unknown_critical_header_extensions_are_refused() {
        let header = b64(&json!({"alg": "HS256", "crit": ["b64"], "b64": false}));
        let token = format!("{header}.{}.x", b64(&payload()));
        assert!(matches!(verify(&token, &Secret::new(SECRET), NOW), Err(TokenError::Malformed(_))));
    }
}
