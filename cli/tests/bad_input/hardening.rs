//! Issue 26's cases: a revoked and an expired publication key; another publication claiming A's Piano
//! application and page (aid/origin shadowing); Piano data without its HMAC, and a replay of an event A
//! received during setup, as sent and re-encoded; CSV cells of A's export that start with a formula
//! trigger. `prepare` makes, before the store is read, what the barrage then uses.

use serde_json::json;
use shared::domain::secret::Secret;
use shared::piano::webhook::encrypt;

use super::check::Suite;
use super::client::{self, Req};
use super::fixtures::Publication;
use super::server::OPERATOR;

/// Names of A's customers that a spreadsheet would run as formulas (a tab or CR is trimmed from a
/// name, so those two triggers are checked by `shared::export`'s unit test).
pub const FORMULAS: [&str; 4] = ["=1+1", "+SUM(1;2)", "-2+3", "@SUM(A1)"];

/// What `prepare` made for the barrage.
pub struct Prepared {
    /// A key of A revoked during setup.
    pub revoked_key: String,
    /// A valid Piano event A received (and applied) during setup: its `data`, and its JSON.
    pub piano_data: String,
    pub piano_event: serde_json::Value,
}

fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub async fn prepare(addr: &str, a: &Publication) -> Prepared {
    let path = format!("/admin/publications/{}", a.id);
    let issued = client::send(addr, &Req::new("POST", format!("{path}/keys")).bearer(OPERATOR)).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let issued: serde_json::Value = serde_json::from_str(&issued.body).unwrap_or_default();
    let revoke = format!("{path}/keys/{}", issued["keyId"].as_str().unwrap_or_default());
    assert_eq!(client::send(addr, &Req::new("DELETE", revoke).bearer(OPERATOR)).await.status, 204);
    for (n, name) in FORMULAS.iter().enumerate() {
        let body = json!({"email": format!("formula{n}@example.com"), "name": name}).to_string();
        let created =
            client::send(addr, &Req::new("POST", format!("{path}/customers")).bearer(&a.key).json(body)).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let piano_event = json!({"version": 2, "type": "access_granted", "aid": a.aid, "uid": "PNIalphaReader",
                             "rid": "RALPHA", "expires": 1_900_000_000});
    let piano_data = encrypt(&piano_event.to_string(), &Secret::new(a.private_key.to_owned()));
    let delivered =
        client::send(addr, &Req::new("GET", format!("/webhooks/piano/{}?data={}", a.id, encoded(&piano_data)))).await;
    assert_eq!(delivered.status, 200, "{}", delivered.body);
    Prepared { revoked_key: issued["key"].as_str().unwrap_or_default().to_owned(), piano_data, piano_event }
}

pub async fn cases(suite: &mut Suite, a: &Publication, b: &Publication, prepared: &Prepared, expired_key: &str) {
    let settings = format!("/admin/publications/{}", a.id);
    for key in [prepared.revoked_key.as_str(), expired_key] {
        suite.refused("hardening", Req::new("GET", &settings).bearer(key), &[401]).await;
    }

    // B claiming A's Piano application on A's page: its public routes would answer for A's readers.
    let mut shadow = b.settings();
    shadow["piano"]["aid"] = json!(a.aid);
    shadow["origins"] = json!([b.origin, a.origin]);
    let bravo = format!("/admin/publications/{}", b.id);
    for key in [OPERATOR, b.key.as_str()] {
        let req = Req::new("PUT", &bravo).bearer(key).json(shadow.to_string());
        let answer = suite.refused("hardening", req, &[409]).await;
        if !answer.error().is_some_and(|e| e.contains(a.origin)) {
            suite.fail(format!("the shadowing PUT was not refused for A's origin: {}", answer.body));
        }
    }

    // Piano: A's data without its HMAC; then the event A received during setup, sent again as it was,
    // as a form and as JSON, and written anew (members reordered, encrypted again).
    let webhook = format!("/webhooks/piano/{}", a.id);
    let unsigned = prepared.piano_data.split("~~~").next().unwrap_or_default().to_owned();
    suite.refused("hardening", Req::new("GET", format!("{webhook}?data={}", encoded(&unsigned))), &[400]).await;
    let mut members: Vec<(String, serde_json::Value)> =
        prepared.piano_event.as_object().cloned().unwrap_or_default().into_iter().collect();
    members.reverse();
    let reordered =
        format!("{{{}}}", members.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect::<Vec<_>>().join(","));
    let rewritten = encrypt(&reordered, &Secret::new(a.private_key.to_owned()));
    let form = |data: &str| {
        Req::new("POST", &webhook)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("data={}", encoded(data)))
    };
    for req in [
        Req::new("GET", format!("{webhook}?data={}", encoded(&prepared.piano_data))),
        form(&prepared.piano_data),
        Req::new("POST", &webhook).json(json!({"data": prepared.piano_data}).to_string()),
        Req::new("GET", format!("{webhook}?data={}", encoded(&rewritten))),
    ] {
        suite
            .answered("hardening", req, 200, |answer| {
                let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
                if body["duplicate"] == true { Vec::new() } else { vec!["not recognised as a replay".into()] }
            })
            .await;
    }

    // A's customers export: every formula-looking name is written as text.
    let export = Req::new("GET", format!("{settings}/exports/customers")).bearer(OPERATOR);
    suite
        .answered("hardening", export, 200, |answer| {
            let mut wrong = Vec::new();
            for name in FORMULAS {
                if !answer.body.contains(&format!("'{name}")) {
                    wrong.push(format!("{name:?} not neutralised"));
                }
                let raw = answer.body.lines().any(|line| line.split(',').any(|cell| cell.trim_matches('"') == name));
                if raw {
                    wrong.push(format!("{name:?} exported as is"));
                }
            }
            wrong
        })
        .await;
}
