//! Piano webhooks: the `data` parameter Piano sends is `C~~~H`, where `C` is the event JSON encrypted
//! with AES-256-ECB under the application's private key (URL-safe base64) and `H` an HMAC-SHA256 of
//! `C` (absent from older senders). `decrypt` checks `H` and returns the JSON text, `parse_event`
//! reads the fields the project uses while keeping the whole document for forwarding, and `encrypt`
//! builds such a `data` value for tests and local tools.

use aes::Aes256;
use aes::Block;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit as _};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::secret::Secret;

/// Separates the ciphertext from its HMAC in `data`.
pub const SEPARATOR: &str = "~~~";
const BLOCK: usize = 16;
const KEY_LEN: usize = 32;

/// URL-safe base64 that accepts `=` padding present or absent.
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook could not be read. Messages never contain the key or any plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("Piano webhook signature does not match")]
    HmacMismatch,
    #[error("Piano webhook data is not valid base64")]
    NotBase64,
    #[error("Piano webhook ciphertext length is not a non-zero multiple of 16 bytes")]
    BadLength,
    #[error("decrypted Piano webhook is not UTF-8")]
    NotUtf8,
    #[error("decrypted Piano webhook is not JSON")]
    NotJson,
    #[error("decrypted Piano webhook is not a JSON object")]
    NotObject,
}

/// Decrypts Piano's webhook `data` (`C~~~H` or plain `C`) into the event's JSON text.
pub fn decrypt(data: &str, private_key: &Secret) -> Result<String, WebhookError> {
    let key = private_key.expose();
    let cipher_text = match data.rsplit_once(SEPARATOR) {
        Some((c, h)) => {
            let expected = signature(c, key);
            if !bool::from(expected.as_bytes().ct_eq(h.as_bytes())) {
                return Err(WebhookError::HmacMismatch);
            }
            c
        }
        None => data,
    };
    let mut bytes = decode_lenient(cipher_text)?;
    if bytes.is_empty() || bytes.len() % BLOCK != 0 {
        return Err(WebhookError::BadLength);
    }
    let cipher = aes_cipher(key);
    each_block(&mut bytes, |block| cipher.decrypt_block(block));
    strip_padding(&mut bytes);
    String::from_utf8(bytes).map_err(|_| WebhookError::NotUtf8)
}

/// The inverse of `decrypt`: PKCS#7-padded AES-256-ECB, URL-safe base64 without padding, then `~~~H`.
pub fn encrypt(plaintext: &str, private_key: &Secret) -> String {
    let key = private_key.expose();
    let mut bytes = plaintext.as_bytes().to_vec();
    let pad = BLOCK - bytes.len() % BLOCK;
    bytes.resize(bytes.len() + pad, pad as u8);
    let cipher = aes_cipher(key);
    each_block(&mut bytes, |block| cipher.encrypt_block(block));
    let c = URL_SAFE_NO_PAD.encode(&bytes);
    let h = signature(&c, key);
    format!("{c}{SEPARATOR}{h}")
}

/// Whether `data` carries Piano's HMAC (`C~~~H`); senders of Piano's SDKs always add it.
pub fn is_signed(data: &str) -> bool {
    data.rsplit_once(SEPARATOR).is_some_and(|(_, h)| !h.is_empty())
}

/// A Piano event's identity (Piano sends no id): a hash of its decrypted JSON written canonically,
/// members sorted and no whitespace. The same event re-encoded (padding, another encryption, members
/// in another order) is the same event; a replay of it is a duplicate.
pub fn event_identity(plaintext: &str) -> Result<String, WebhookError> {
    use sha2::Digest;
    let value: Value = serde_json::from_str(plaintext).map_err(|_| WebhookError::NotJson)?;
    let mut canonical = String::with_capacity(plaintext.len());
    write_canonical(&value, &mut canonical);
    Ok(format!("pn_{}", &hex::encode(Sha256::digest(canonical.as_bytes()))[..32]))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// When Piano says the event happened, in microseconds, where the payload carries a time (seconds or
/// milliseconds since the epoch under one of the names Piano's payloads use); `None` otherwise.
pub fn event_time_us(event: &PianoEvent) -> Option<i64> {
    const FIELDS: [&str; 5] = ["timestamp", "event_time", "ts", "create_date", "created"];
    let raw = FIELDS.iter().find_map(|f| match event.raw.get(*f)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    })?;
    // Milliseconds from 2001 on are above 1e12; seconds stay below it until the year 33658.
    let us = if raw >= 1_000_000_000_000 { raw.checked_mul(1_000)? } else { raw.checked_mul(1_000_000)? };
    (us > 0).then_some(us)
}

/// HMAC-SHA256 of `C`'s text keyed with the whole private key, URL-safe base64 without padding.
fn signature(c: &str, key: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(c.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// AES key: the private key's UTF-8 bytes cut to 32 bytes or right-padded with `X`.
fn aes_cipher(key: &str) -> Aes256 {
    let mut bytes = [b'X'; KEY_LEN];
    let src = key.as_bytes();
    let n = src.len().min(KEY_LEN);
    bytes[..n].copy_from_slice(&src[..n]);
    Aes256::new(&bytes.into())
}

/// Applies `f` to each 16-byte block of `bytes` in place (ECB); the length is a multiple of 16.
fn each_block(bytes: &mut [u8], f: impl Fn(&mut Block)) {
    for chunk in bytes.chunks_exact_mut(BLOCK) {
        let mut block = Block::from(<[u8; BLOCK]>::try_from(&*chunk).expect("chunks are 16 bytes"));
        f(&mut block);
        chunk.copy_from_slice(&block);
    }
}

/// URL-safe base64, padding optional; standard `+` and `/` are accepted too.
fn decode_lenient(text: &str) -> Result<Vec<u8>, WebhookError> {
    let decoded = if text.contains(['+', '/']) {
        LENIENT_URL_SAFE.decode(text.replace('+', "-").replace('/', "_"))
    } else {
        LENIENT_URL_SAFE.decode(text)
    };
    decoded.map_err(|_| WebhookError::NotBase64)
}

/// Strips PKCS#7 padding when it is well formed; otherwise (some senders pad nothing) keeps the bytes.
fn strip_padding(bytes: &mut Vec<u8>) {
    let Some(&last) = bytes.last() else { return };
    let n = usize::from(last);
    if (1..=BLOCK).contains(&n) && n <= bytes.len() && bytes[bytes.len() - n..].iter().all(|&b| b == last) {
        bytes.truncate(bytes.len() - n);
    }
}

/// A decrypted Piano webhook, read loosely: every field is optional, a field of an unexpected type
/// reads as `None`, unknown fields are ignored here and kept in `raw`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PianoEvent {
    #[serde(deserialize_with = "loose_i64")]
    pub version: Option<i64>,
    /// JSON `type`: `access_granted`, `user_created`, `payment_completed`, `test`, ...
    #[serde(rename = "type", deserialize_with = "loose_string")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub event: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub aid: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub uid: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub rid: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub term_id: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub user_email: Option<String>,
    #[serde(deserialize_with = "loose_i64")]
    pub expires: Option<i64>,
    #[serde(deserialize_with = "loose_string")]
    pub subscription_id: Option<String>,
    /// The whole document, unknown fields included.
    #[serde(skip)]
    pub raw: Value,
}

/// Parses decrypted webhook JSON; it must be an object.
pub fn parse_event(plaintext: &str) -> Result<PianoEvent, WebhookError> {
    let raw: Value = serde_json::from_str(plaintext).map_err(|_| WebhookError::NotJson)?;
    if !raw.is_object() {
        return Err(WebhookError::NotObject);
    }
    let mut event = PianoEvent::deserialize(&raw).map_err(|_| WebhookError::NotJson)?;
    event.raw = raw;
    Ok(event)
}

/// What the proxy needs of decrypted webhook JSON before queueing it: the check `parse_event` makes
/// (a JSON object, else `NotJson` or `NotObject`) and the event's `type`, read as `parse_event` reads
/// it, without building the document: the fields it skips cost no allocation.
pub fn event_type(plaintext: &str) -> Result<Option<String>, WebhookError> {
    let mut json = serde_json::Deserializer::from_str(plaintext);
    match json.deserialize_map(TypeOfObject).and_then(|kind| json.end().map(|()| kind)) {
        Ok(kind) => Ok(kind),
        // Not an object, or not JSON: `parse_event` tells which (errors only take this path).
        Err(_) => parse_event(plaintext).map(|event| event.kind),
    }
}

/// Visits a JSON object, keeping only its (last) `type` member, loosely read.
struct TypeOfObject;

impl<'de> Visitor<'de> for TypeOfObject {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind = None;
        while let Some(is_type) = map.next_key::<KeyIsType>()? {
            if is_type.0 {
                kind = map.next_value::<Loose>()?.0;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(kind)
    }
}

/// Any JSON value, read and dropped under the rules `Value` reads by (nesting limit, numbers in range),
/// which `IgnoredAny` does not apply.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// Whether an object key is `type` (escapes decoded), without keeping it.
struct KeyIsType(bool);

impl<'de> Deserialize<'de> for KeyIsType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key;
        impl Visitor<'_> for Key {
            type Value = KeyIsType;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<KeyIsType, E> {
                Ok(KeyIsType(key == "type"))
            }
        }
        d.deserialize_str(Key)
    }
}

/// A value read as `loose_string` reads it.
struct Loose(Option<String>);

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        loose_string(d).map(Loose)
    }
}

/// A string, or a number written as one; anything else is `None`.
fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// An integer, or a string holding one; anything else is `None`.
fn loose_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "thestringliteralisexactlyfortych";
    const DATA: &str = "V3IqZVBH2dQh4uxOMy9BAg~~~mB3lhC3FscKs7p18-N2vtvy6pSDsIyicy77lydm-UGk";

    fn key() -> Secret {
        Secret::new(KEY)
    }

    #[test]
    fn decrypts_the_sdk_test_vector() {
        assert_eq!(decrypt(DATA, &key()).unwrap(), "JavaIsSoFun");
        assert_eq!(encrypt("JavaIsSoFun", &key()), DATA);
    }

    #[test]
    fn decrypts_without_hmac() {
        let (c, _) = DATA.rsplit_once(SEPARATOR).unwrap();
        assert_eq!(decrypt(c, &key()).unwrap(), "JavaIsSoFun");
        // Padding re-added and the standard alphabet are accepted too.
        assert_eq!(decrypt(&format!("{c}=="), &key()).unwrap(), "JavaIsSoFun");
        let standard = base64::engine::general_purpose::STANDARD.encode(URL_SAFE_NO_PAD.decode(c).unwrap());
        assert_eq!(decrypt(&standard, &key()).unwrap(), "JavaIsSoFun");
    }

    #[test]
    fn tampered_hmac_is_rejected() {
        let tampered = DATA.replace("UGk", "UGj");
        assert_eq!(decrypt(&tampered, &key()), Err(WebhookError::HmacMismatch));
        let (c, h) = DATA.rsplit_once(SEPARATOR).unwrap();
        assert_eq!(decrypt(&format!("{c}~~~{h}="), &key()), Err(WebhookError::HmacMismatch));
        assert_eq!(decrypt(&format!("{c}~~~"), &key()), Err(WebhookError::HmacMismatch));
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let tampered = DATA.replacen("V3I", "V3J", 1);
        assert_eq!(decrypt(&tampered, &key()), Err(WebhookError::HmacMismatch));
    }

    #[test]
    fn wrong_key_is_rejected() {
        let wrong = Secret::new("thestringliteralisexactlyfortyci");
        assert_eq!(decrypt(DATA, &wrong), Err(WebhookError::HmacMismatch));
    }

    #[test]
    fn round_trips_lengths_and_keys() {
        let keys = ["k", "short-key", KEY, "a-private-key-much-longer-than-thirty-two-bytes-ünïcode"];
        let texts = [
            String::new(),
            "a".repeat(15),
            "b".repeat(16),
            "c".repeat(17),
            "d".repeat(100),
            "Grüße, 日本語 — ✓ {\"x\":1}".to_owned(),
        ];
        for k in keys {
            let secret = Secret::new(k);
            for text in &texts {
                let data = encrypt(text, &secret);
                assert_eq!(&decrypt(&data, &secret).unwrap(), text, "key len {}, text len {}", k.len(), text.len());
            }
        }
        // Keys that agree on their first 32 bytes share the AES key but not the HMAC.
        let long = Secret::new(format!("{KEY}-suffix"));
        let data = encrypt("x", &long);
        assert_eq!(decrypt(&data, &key()), Err(WebhookError::HmacMismatch));
        assert_eq!(decrypt(data.rsplit_once(SEPARATOR).unwrap().0, &key()).unwrap(), "x");
    }

    #[test]
    fn keeps_bytes_without_valid_padding() {
        // A sender that pads nothing when the length is already a multiple of 16.
        let mut block = *b"0123456789abcdef";
        each_block(&mut block, |b| aes_cipher(KEY).encrypt_block(b));
        let c = URL_SAFE_NO_PAD.encode(block);
        assert_eq!(decrypt(&c, &key()).unwrap(), "0123456789abcdef");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let k = key();
        assert_eq!(decrypt("", &k), Err(WebhookError::BadLength));
        assert_eq!(decrypt("~~~", &k), Err(WebhookError::HmacMismatch));
        assert_eq!(decrypt("~~~~~~", &k), Err(WebhookError::HmacMismatch));
        assert_eq!(decrypt("not base64!", &k), Err(WebhookError::NotBase64));
        assert_eq!(decrypt("QUJD", &k), Err(WebhookError::BadLength));
        let seventeen = URL_SAFE_NO_PAD.encode([0u8; 17]);
        assert_eq!(decrypt(&seventeen, &k), Err(WebhookError::BadLength));
        // Signed garbage gets past the HMAC and still fails cleanly.
        let signed = |c: &str| format!("{c}~~~{}", signature(c, KEY));
        assert_eq!(decrypt(&signed("@@@"), &k), Err(WebhookError::NotBase64));
        assert_eq!(decrypt(&signed(""), &k), Err(WebhookError::BadLength));
        assert_eq!(decrypt(&signed(&seventeen), &k), Err(WebhookError::BadLength));
        let invalid_utf8 = {
            let mut block = [0xffu8; 16];
            each_block(&mut block, |b| aes_cipher(KEY).encrypt_block(b));
            URL_SAFE_NO_PAD.encode(block)
        };
        assert_eq!(decrypt(&signed(&invalid_utf8), &k), Err(WebhookError::NotUtf8));
        for err in [WebhookError::HmacMismatch, WebhookError::NotUtf8] {
            assert!(!err.to_string().contains(KEY));
        }
    }

    #[test]
    fn parses_access_granted_and_keeps_unknown_fields() {
        let json = r#"{
            "version": 2,
            "type": "access_granted",
            "event": "new_purchase",
            "aid": "AbCdEf1234",
            "uid": "PNIabc123",
            "rid": "RKEBOOK01",
            "term_id": "TMXYZ987",
            "user_email": "reader@example.com",
            "expires": 1767225600,
            "subscription_id": null,
            "access_id": "AC0001",
            "custom": {"sku": "978-3-16-148410-0"}
        }"#;
        let event = parse_event(&decrypt(&encrypt(json, &key()), &key()).unwrap()).unwrap();
        assert_eq!(event.version, Some(2));
        assert_eq!(event.kind.as_deref(), Some("access_granted"));
        assert_eq!(event.event.as_deref(), Some("new_purchase"));
        assert_eq!(event.aid.as_deref(), Some("AbCdEf1234"));
        assert_eq!(event.uid.as_deref(), Some("PNIabc123"));
        assert_eq!(event.rid.as_deref(), Some("RKEBOOK01"));
        assert_eq!(event.term_id.as_deref(), Some("TMXYZ987"));
        assert_eq!(event.user_email.as_deref(), Some("reader@example.com"));
        assert_eq!(event.expires, Some(1_767_225_600));
        assert_eq!(event.subscription_id, None);
        assert_eq!(event.raw["access_id"], "AC0001");
        assert_eq!(event.raw["custom"]["sku"], "978-3-16-148410-0");
    }

    #[test]
    fn event_type_reads_and_refuses_what_parse_event_does() {
        let texts = [
            r#"{"version":2,"type":"access_granted","uid":"PNI1","custom":{"type":"inner","list":[1,{"type":2}]}}"#,
            r#"{"type":42}"#,
            r#"{"type":null}"#,
            r#"{"type":["access_granted"]}"#,
            r#"{"type":"first","type":"second"}"#,
            r#"{"ty\u0070e":"escaped key","t\"ype":"not it"}"#,
            r#"{"type":"Gr\u00fc\u00dfe \"quoted\""}"#,
            r#"  {"uid":"PNI1"}  "#,
            "{}",
            "[1]",
            r#"["access_granted"]"#,
            r#""type""#,
            "42",
            "null",
            "JavaIsSoFun",
            "",
            r#"{"type":"a"} trailing"#,
            r#"{"type":"a""#,
            r#"{"type":"a",}"#,
            r#"{"a":[1,2}"#,
            r#"{"type":"big","n":1e400}"#,
            r#"{"type":"fine","n":-1.5e300,"m":18446744073709551616,"s":"\ud83d\ude00","e":"\ud800"}"#,
            &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
            &format!(r#"{{"type":"deep","x":{}1{}}}"#, "[".repeat(200), "]".repeat(200)),
        ];
        for text in texts {
            assert_eq!(event_type(text), parse_event(text).map(|e| e.kind), "{text}");
        }
        assert_eq!(event_type(texts[0]), Ok(Some("access_granted".to_owned())));
        assert_eq!(event_type("[1]"), Err(WebhookError::NotObject));
        assert_eq!(event_type("{"), Err(WebhookError::NotJson));
    }

    #[test]
    fn parse_event_is_loose_but_wants_an_object() {
        let event = parse_event(r#"{"type":"brand_new_type","version":"2","expires":"x","uid":42}"#).unwrap();
        assert_eq!(event.kind.as_deref(), Some("brand_new_type"));
        assert_eq!(event.version, Some(2));
        assert_eq!(event.expires, None);
        assert_eq!(event.uid.as_deref(), Some("42"));
        assert_eq!(parse_event("{}").unwrap().raw, serde_json::json!({}));
        assert_eq!(parse_event("[1]"), Err(WebhookError::NotObject));
        assert_eq!(parse_event("JavaIsSoFun"), Err(WebhookError::NotJson));
    }
}
