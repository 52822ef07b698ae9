//! Piano's webhook decryption checked against a second implementation: `tests/data/piano/vectors.py`
//! follows the same steps (shared/piano/README.md) on Python's `cryptography` package. Its vectors
//! decrypt here, Rust's `encrypt` output decrypts (and its HMAC checks) there, and the script itself
//! holds Piano's SDK test vector, so neither side is checked only against itself.
//!
//! The script runs with `CRM_PYTHON`, the python of the venv `.ci/test` installs `cryptography` into.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use shared::domain::secret::Secret;
use shared::piano::webhook::{SEPARATOR, WebhookError, decrypt, encrypt};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/piano/vectors.py");

/// The venv's python; the test refuses to pass silently without one.
fn python() -> PathBuf {
    let path = std::env::var_os("CRM_PYTHON").unwrap_or_else(|| {
        panic!(
            "CRM_PYTHON is not set: run the suite with .ci/test, which installs the pinned `cryptography` \
             (.ci/requirements.txt) into its venv and exports that venv's python as CRM_PYTHON"
        )
    });
    PathBuf::from(path)
}

/// Runs `vectors.py command` with `input` on stdin; answers its JSON output.
fn script(command: &str, input: Option<&Value>) -> Value {
    let python = python();
    let mut child = Command::new(&python)
        .arg(SCRIPT)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {} (CRM_PYTHON): {e}", python.display()));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(input) = input {
            stdin.write_all(input.to_string().as_bytes()).expect("write to the script");
        }
    }
    let out = child.wait_with_output().expect("the script ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "vectors.py {command} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("vectors.py {command} printed no JSON ({e}): {stdout}"))
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_else(|| panic!("{field} missing in {value}"))
}

#[test]
fn the_python_implementation_holds_the_sdk_vector() {
    // Encrypts Piano's SDK plaintext to exactly the SDK's data, decrypts it back with a valid HMAC,
    // and finds a tampered HMAC (the exit status says so too).
    assert_eq!(script("selftest", None), json!({"ok": true, "failures": []}));
    let sdk = "V3IqZVBH2dQh4uxOMy9BAg~~~mB3lhC3FscKs7p18-N2vtvy6pSDsIyicy77lydm-UGk";
    let key = "thestringliteralisexactlyfortych";
    let answer = script("decrypt", Some(&json!({"items": [{"key": key, "data": sdk}]})));
    assert_eq!(answer["results"][0], json!({"plaintext": "JavaIsSoFun", "hmac": "ok", "error": null}));
    assert_eq!(decrypt(sdk, &Secret::new(key)).unwrap(), "JavaIsSoFun");
}

#[test]
fn vectors_made_in_python_decrypt_in_rust() {
    let answer = script("generate", None);
    let vectors = answer["vectors"].as_array().expect("vectors");
    let mut key_lengths = BTreeSet::new();
    let mut text_lengths = BTreeSet::new();
    let (mut signed, mut unsigned, mut padded, mut non_ascii_keys) = (0, 0, 0, 0);
    for vector in vectors {
        let (name, key, plaintext, data) =
            (text(vector, "name"), text(vector, "key"), text(vector, "plaintext"), text(vector, "data"));
        let decrypted = decrypt(data, &Secret::new(key));
        assert_eq!(decrypted.as_deref(), Ok(plaintext), "vector {name:?}: {data}");

        key_lengths.insert(key.len().min(33));
        text_lengths.insert(plaintext.len());
        let c = match data.rsplit_once(SEPARATOR) {
            Some((c, _)) => {
                signed += 1;
                c
            }
            None => {
                unsigned += 1;
                data
            }
        };
        padded += usize::from(c.ends_with('='));
        non_ascii_keys += usize::from(!key.is_ascii());
    }
    // The cases the vectors are there for.
    assert!(key_lengths.contains(&1) && key_lengths.contains(&32) && key_lengths.contains(&33), "{key_lengths:?}");
    for length in [0, 15, 16, 17] {
        assert!(text_lengths.contains(&length), "no plaintext of {length} bytes: {text_lengths:?}");
    }
    assert!(text_lengths.iter().any(|&n| n > 100), "no plaintext over 100 bytes");
    assert!(signed > 0 && unsigned > 0 && padded > 0 && non_ascii_keys > 0);
    assert!(vectors.len() >= 100, "{} vectors", vectors.len());

    // A vector whose HMAC was made with another key (same first 32 bytes: same AES key) is refused.
    let other = vectors.iter().find(|v| text(v, "key").len() == 33 && text(v, "data").contains(SEPARATOR)).unwrap();
    assert_eq!(decrypt(text(other, "data"), &Secret::new(&text(other, "key")[..32])), Err(WebhookError::HmacMismatch));
}

#[test]
fn data_made_in_rust_decrypts_in_python_with_a_valid_hmac() {
    let keys = [
        "k".to_owned(),
        "short-key".to_owned(),
        "thestringliteralisexactlyfortych".to_owned(),
        "thestringliteralisexactlyfortych+1".to_owned(),
        "a".repeat(31) + "é-clé-privée",
        "clé-日本".to_owned(),
    ];
    let event = json!({"version": 2, "type": "access_granted", "aid": "AidDaily01", "uid": "PNIreader0001",
                       "rid": "RKEBOOK01", "term_id": "TMXYZ987", "user_email": "reader@example.com",
                       "expires": 1_767_225_600, "custom": {"sku": "978-3-16-148410-0", "note": "Grüße ✓"}})
    .to_string();
    let texts = [
        String::new(),
        "a".repeat(15),
        "b".repeat(16),
        "c".repeat(17),
        event,
        "Grüße, 日本語 — ✓ {\"x\":1}".to_owned(),
    ];
    let mut items = Vec::new();
    for key in &keys {
        for plaintext in &texts {
            items.push((key.as_str(), plaintext.as_str(), encrypt(plaintext, &Secret::new(key.as_str()))));
        }
    }
    let request = |data: &dyn Fn(&str) -> String| {
        let items: Vec<Value> =
            items.iter().map(|(k, p, d)| json!({"key": k, "plaintext": p, "data": data(d)})).collect();
        json!({ "items": items })
    };

    let answer = script("decrypt", Some(&request(&|d| d.to_owned())));
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), items.len());
    for ((key, plaintext, data), result) in items.iter().zip(results) {
        assert_eq!(result, &json!({"plaintext": plaintext, "hmac": "ok", "error": null}), "key {key:?}: {data}");
    }

    // ECB with PKCS#7 is deterministic: Python's encryption of the same input is the same `data`.
    let answer = script("encrypt", Some(&request(&|d| d.to_owned())));
    let python_data: Vec<&str> = answer["data"].as_array().expect("data").iter().filter_map(Value::as_str).collect();
    let rust_data: Vec<&str> = items.iter().map(|(_, _, d)| d.as_str()).collect();
    assert_eq!(python_data, rust_data);

    // And Python finds an HMAC that does not belong to C.
    let tampered = |d: &str| {
        let (c, h) = d.rsplit_once(SEPARATOR).unwrap();
        let flipped = if h.starts_with('A') { 'B' } else { 'A' };
        format!("{c}{SEPARATOR}{flipped}{}", &h[1..])
    };
    let answer = script("decrypt", Some(&request(&tampered)));
    for result in answer["results"].as_array().expect("results") {
        assert_eq!(result["hmac"], "mismatch", "{result}");
    }
}
