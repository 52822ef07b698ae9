//! Issue 26's hardening, through the routes: publication keys listed masked, expiring and revoked;
//! the operator key rotated with two valid; a (Piano application, origin) pair that belongs to one
//! publication; Piano data refused unsigned, and a replay (however re-encoded) neither applied nor
//! forwarded again; an older Piano event that cannot overwrite a newer state; CSV cells neutralised.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::api::AppState;
use shared::domain::ids::PublicationId;
use shared::domain::secret::Secret;
use shared::http::auth::AdminAuth;
use shared::piano::webhook::encrypt;
use shared::queue::{EVENTS, FORWARD};
use shared::store::repo::keys;
use tower::ServiceExt;

const PRIVATE_KEY: &str = "thestringliteralisexactlyfortych";

async fn call(state: &AppState, method: &str, path: &str, bearer: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path).header("authorization", format!("Bearer {bearer}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = shared::api::all_routes(state.clone()).oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn settings(aid: &str, origins: &[&str]) -> Value {
    json!({"name": "A publication", "origins": origins,
           "piano": {"aid": aid, "apiToken": "piano-api-token-0123456789", "privateKey": PRIVATE_KEY,
                     "legacyWebhookUrls": ["https://legacy.example/hook"]}})
}

fn state() -> (support::TestStore, AppState) {
    let store = support::embedded_store();
    let state = support::app_state(store.store.clone());
    (store, state)
}

#[tokio::test]
async fn publication_keys_are_listed_masked_expire_and_can_be_revoked() {
    let (store, state) = state();
    let op = support::OPERATOR;
    assert_eq!(call(&state, "PUT", "/admin/publications/daily", op, Some(settings("AidDaily01", &[]))).await.0, 201);
    let (status, issued) =
        call(&state, "POST", "/admin/publications/daily/keys", op, Some(json!({"expiresInDays": 30}))).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let key = issued["key"].as_str().unwrap().to_owned();
    assert!(issued["expiresAt"].is_string());
    let (status, _) =
        call(&state, "POST", "/admin/publications/daily/keys", op, Some(json!({"expiresInDays": 0}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Used once: the listing shows its last use, a masked prefix, and never the key.
    assert_eq!(call(&state, "GET", "/admin/publications/daily", &key, None).await.0, StatusCode::OK);
    let (status, listed) = call(&state, "GET", "/admin/publications/daily/keys", &key, None).await;
    assert_eq!(status, StatusCode::OK);
    let entry = listed["data"].as_array().unwrap().iter().find(|k| k["keyId"] == issued["keyId"]).unwrap().clone();
    assert_eq!(entry["prefix"].as_str().unwrap(), format!("{}…", &key[..11]));
    assert!(entry["lastUsedAt"].is_string() && entry["expiresAt"].is_string(), "{entry}");
    assert!(!listed.to_string().contains(&key[11..]), "the key's secret part never shows");

    // A publication key may not revoke; the operator may, and the key stops working at once.
    let revoke = format!("/admin/publications/daily/keys/{}", issued["keyId"].as_str().unwrap());
    assert_eq!(call(&state, "DELETE", &revoke, &key, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&state, "DELETE", &revoke, op, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&state, "GET", "/admin/publications/daily", &key, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&state, "DELETE", &revoke, op, None).await.0, StatusCode::NOT_FOUND);
    let (_, listed) = call(&state, "GET", "/admin/publications/daily/keys", op, None).await;
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");

    // A key past its expiry is refused, however it got into the store.
    let (expired, hash) = shared::http::auth::new_publication_key();
    let now = shared::store::now_epoch();
    let record = keys::ApiKeyRecord {
        publication_id: PublicationId::parse("daily").unwrap(),
        key_id: hash[..12].to_owned(),
        created_at: now - 100,
        expires_at: Some(now - 1),
    };
    keys::put(store.store.as_ref(), &expired, &hash, &record).await.unwrap();
    assert_eq!(call(&state, "GET", "/admin/publications/daily", &expired, None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_operator_key_rotates_with_two_valid_during_the_change() {
    let (store, _) = state();
    let old = "crm_admin_the-old-operator-key-0123456789";
    let new = "crm_admin_the-new-operator-key-0123456789";
    let mut state = support::app_state(store.store.clone());
    state.admin = Arc::new(AdminAuth::new(new).with_previous(Some(old)));
    for (key, expected) in [(new, 404), (old, 404), ("crm_admin_another-key-entirely-0123456789", 401)] {
        assert_eq!(call(&state, "GET", "/admin/publications/nobody", key, None).await.0.as_u16(), expected, "{key}");
    }
}

#[tokio::test]
async fn a_piano_application_and_origin_belong_to_one_publication() {
    let (_store, state) = state();
    let op = support::OPERATOR;
    let a = settings("AidShared01", &["https://www.alpha.example"]);
    assert_eq!(call(&state, "PUT", "/admin/publications/alpha", op, Some(a)).await.0, StatusCode::CREATED);
    // Bravo cannot answer the public routes for Alpha's pages.
    let shadow = settings("AidShared01", &["https://www.bravo.example", "https://www.alpha.example"]);
    let (status, body) = call(&state, "PUT", "/admin/publications/bravo", op, Some(shadow)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("https://www.alpha.example"), "{body}");
    assert_eq!(
        call(&state, "GET", "/admin/publications/bravo", op, None).await.0,
        StatusCode::NOT_FOUND,
        "nothing written"
    );
    // Its own origin is fine, and so is Alpha's once Alpha leaves it.
    let own = settings("AidShared01", &["https://www.bravo.example"]);
    assert_eq!(call(&state, "PUT", "/admin/publications/bravo", op, Some(own)).await.0, StatusCode::CREATED);
    let moved = settings("AidShared01", &["https://new.alpha.example"]);
    assert_eq!(call(&state, "PUT", "/admin/publications/alpha", op, Some(moved)).await.0, StatusCode::OK);
    let both = settings("AidShared01", &["https://www.bravo.example", "https://www.alpha.example"]);
    assert_eq!(call(&state, "PUT", "/admin/publications/bravo", op, Some(both)).await.0, StatusCode::OK);
}

async fn piano_get(state: &AppState, data: &str) -> (StatusCode, Value) {
    let encoded: String = url::form_urlencoded::byte_serialize(data.as_bytes()).collect();
    let request = Request::get(format!("/webhooks/piano/daily?data={encoded}")).body(Body::empty()).unwrap();
    let response = shared::api::piano_webhook::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn queued(state: &AppState, queue: &str) -> usize {
    let got = state.queue.receive(queue, 10, Duration::from_millis(10)).await.unwrap();
    let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
    if !receipts.is_empty() {
        state.queue.delete(queue, &receipts).await.unwrap();
    }
    got.len()
}

#[tokio::test]
async fn piano_data_must_be_signed_and_a_replay_is_neither_applied_nor_forwarded() {
    let (_store, state) = state();
    let op = support::OPERATOR;
    assert_eq!(call(&state, "PUT", "/admin/publications/daily", op, Some(settings("AidDaily01", &[]))).await.0, 201);
    let event = json!({"version": 2, "type": "access_granted", "aid": "AidDaily01", "uid": "PNIa", "rid": "R1"});
    let signed = encrypt(&event.to_string(), &Secret::new(PRIVATE_KEY));
    let unsigned = signed.split("~~~").next().unwrap().to_owned();
    let (status, body) = piano_get(&state, &unsigned).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("acceptUnsignedWebhooks"));

    assert_eq!(piano_get(&state, &signed).await.0, StatusCode::OK);
    assert_eq!((queued(&state, EVENTS.name).await, queued(&state, FORWARD.name).await), (1, 1));
    // The same data again, and the same event written with its members in another order (another
    // encryption of it): Piano moves on, nothing is queued for the CRM or the legacy endpoint.
    let reordered = r#"{"rid":"R1","uid":"PNIa","type":"access_granted","aid":"AidDaily01","version":2}"#;
    for replay in [signed.clone(), encrypt(reordered, &Secret::new(PRIVATE_KEY))] {
        let (status, body) = piano_get(&state, &replay).await;
        assert_eq!((status, body["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    }
    assert_eq!((queued(&state, EVENTS.name).await, queued(&state, FORWARD.name).await), (0, 0));
    // Another event is not a replay.
    let other = json!({"version": 2, "type": "access_revoked", "aid": "AidDaily01", "uid": "PNIa", "rid": "R1"});
    assert_eq!(piano_get(&state, &encrypt(&other.to_string(), &Secret::new(PRIVATE_KEY))).await.0, StatusCode::OK);
    assert_eq!(queued(&state, EVENTS.name).await, 1);
}

#[tokio::test]
async fn an_older_piano_event_cannot_overwrite_a_newer_state() {
    use shared::sync::envelope::{self, Header, Provider};
    use shared::sync::worker::EventWorker;
    let (store, state) = state();
    let op = support::OPERATOR;
    assert_eq!(call(&state, "PUT", "/admin/publications/daily", op, Some(settings("AidDaily01", &[]))).await.0, 201);
    let stripe = shared::stripe::client::HttpStripe::new("http://127.0.0.1:9").unwrap();
    let worker = EventWorker::new(store.store.clone(), Arc::new(stripe));
    let now = shared::store::now_epoch();
    let deliver = |kind: &str, at: i64, n: i64| {
        let event =
            json!({"version": 2, "type": kind, "aid": "AidDaily01", "uid": "PNIa", "rid": "R1", "timestamp": at});
        let header = Header {
            provider: Provider::Piano,
            publication: PublicationId::parse("daily").unwrap(),
            account: None,
            received_at: now,
            received_at_us: Some(now * 1_000_000 + n),
            event_id: Some(format!("pn_order{n}")),
            event_type: None,
        };
        envelope::encode(&header, &event.to_string())
    };
    // Revoked at `now`; then a grant Piano made an hour earlier arrives (a replay, or a late delivery).
    worker.process(&deliver("access_revoked", now, 1)).await.unwrap();
    worker.process(&deliver("access_granted", now - 3_600, 2)).await.unwrap();
    let customer = shared::store::repo::customers::find(
        store.store.as_ref(),
        &PublicationId::parse("daily").unwrap(),
        &shared::domain::customer::Identity::Piano("PNIa".into()),
    )
    .await
    .unwrap()
    .unwrap()
    .value;
    let status = customer.piano.entitlements["R1"].state.status;
    assert_eq!(status, shared::domain::access::EntitlementStatus::Revoked, "Piano's time orders the states");
}
