//! The Piano webhook proxy: Piano's request, checked and decrypted, fans out to every legacy endpoint
//! as one forward job each; the forwarder replays method, query, body and content type, a dead
//! endpoint fails only its own job, and private targets are refused unless allowed.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::api::AppState;
use shared::domain::ids::PublicationId;
use shared::domain::secret::Secret;
use shared::domain::settings::PublicationSettings;
use shared::piano::forward::{ForwardWorker, Forwarder};
use shared::piano::webhook::encrypt;
use shared::queue::FORWARD;
use shared::queue::worker::BatchHandler;
use shared::store::repo::publications::{self, StoredSettings};
use tower::ServiceExt;

const PRIVATE_KEY: &str = "thestringliteralisexactlyfortych";

type Seen = Arc<Mutex<Vec<(String, String, String, Option<String>)>>>;

/// A legacy endpoint that records what it receives and answers 200.
async fn legacy() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let record = record.clone();
        async move {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let query = uri.query().unwrap_or_default().to_owned();
            record.lock().unwrap().push((
                method.to_string(),
                query,
                String::from_utf8_lossy(&body).into_owned(),
                content_type,
            ));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/piano-hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A port nothing listens on.
async fn dead() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gone", listener.local_addr().unwrap());
    drop(listener);
    url
}

async fn setup(legacy_urls: &[&str]) -> (support::TestStore, AppState) {
    let store = support::embedded_store();
    let settings = json!({
        "name": "The Daily", "origins": ["https://www.daily.example"],
        "piano": {"aid": "AidDaily01", "apiToken": "piano-api-token-0123456789", "privateKey": PRIVATE_KEY,
                  "region": "us", "legacyWebhookUrls": legacy_urls}
    });
    let parsed = PublicationSettings::parse(settings.to_string().as_bytes(), None).unwrap();
    let stored =
        StoredSettings { publication_id: PublicationId::parse("daily").unwrap(), settings: parsed, updated_at: 0 };
    publications::put(store.store.as_ref(), &stored, None).await.unwrap();
    let state = support::app_state(store.store.clone());
    (store, state)
}

fn data() -> String {
    let event = json!({"version": 2, "type": "access_granted", "aid": "AidDaily01", "uid": "PNIreader0001",
                       "rid": "RXYZ", "term_id": "TMABC", "expires": 1_900_000_000, "custom": {"sku": "EBOOK-42"}});
    encrypt(&event.to_string(), &Secret::new(PRIVATE_KEY))
}

fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = shared::api::piano_webhook::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn forward_all(state: &AppState, allow_private: bool) -> (usize, Vec<String>) {
    let batch = state.queue.receive(FORWARD.name, 10, Duration::from_millis(10)).await.unwrap();
    let worker = ForwardWorker::new(Arc::new(Forwarder::new(allow_private)));
    let failed = worker.handle(&batch).await;
    (batch.len(), failed)
}

#[tokio::test]
async fn a_get_fans_out_to_every_legacy_endpoint_and_a_dead_one_fails_alone() {
    let (alive, seen) = legacy().await;
    let gone = dead().await;
    let (_store, state) = setup(&[&alive, &gone]).await;
    let query = format!("data={}&source=piano", encoded(&data()));
    let (status, body) =
        call(&state, Request::get(format!("/webhooks/piano/daily?{query}")).body(Body::empty()).unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"received": true})));

    let (jobs, failed) = forward_all(&state, true).await;
    assert_eq!(jobs, 2, "one job per legacy endpoint");
    assert_eq!(failed.len(), 1, "only the dead endpoint's job is retried");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![("GET".to_owned(), query, String::new(), None)], "the original request, replayed");
}

#[tokio::test]
async fn form_and_json_bodies_are_replayed_as_sent() {
    let (alive, seen) = legacy().await;
    let (_store, state) = setup(&[&alive]).await;
    let form = format!("data={}", encoded(&data()));
    let request = Request::post("/webhooks/piano/daily")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.clone()))
        .unwrap();
    assert_eq!(call(&state, request).await.0, StatusCode::OK);
    // Another event: the same one again would be a redelivery, forwarded once (`replay` tests).
    let other =
        json!({"version": 2, "type": "access_revoked", "aid": "AidDaily01", "uid": "PNIreader0001", "rid": "RXYZ"});
    let json_body = json!({"data": encrypt(&other.to_string(), &Secret::new(PRIVATE_KEY))}).to_string();
    let request = Request::post("/webhooks/piano/daily?v=2")
        .header("content-type", "application/json")
        .body(Body::from(json_body.clone()))
        .unwrap();
    assert_eq!(call(&state, request).await.0, StatusCode::OK);

    let (jobs, failed) = forward_all(&state, true).await;
    assert_eq!((jobs, failed.len()), (2, 0));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("POST".to_owned(), String::new(), form, Some("application/x-www-form-urlencoded".to_owned())),
            ("POST".to_owned(), "v=2".to_owned(), json_body, Some("application/json".to_owned())),
        ]
    );
}

#[tokio::test]
async fn bad_data_is_refused_and_nothing_is_queued() {
    let (alive, _seen) = legacy().await;
    let (_store, state) = setup(&[&alive]).await;
    let good = data();
    let (c, h) = good.rsplit_once("~~~").unwrap();
    let tampered = format!("{c}~~~{}", h.replace(&h[..2], "AA"));
    for query in [String::new(), "data=".into(), format!("data={}", encoded(&tampered)), "data=not~~~base64!".into()] {
        let (status, body) =
            call(&state, Request::get(format!("/webhooks/piano/daily?{query}")).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"].is_string());
    }
    let (status, _) = call(
        &state,
        Request::get(format!("/webhooks/piano/nobody?data={}", encoded(&good))).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(forward_all(&state, true).await.0, 0);
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let (alive, seen) = legacy().await;
    let (_store, state) = setup(&[&alive]).await;
    let get = || Request::get(format!("/webhooks/piano/daily?data={}", encoded(&data()))).body(Body::empty()).unwrap();
    assert_eq!(call(&state, get()).await.0, StatusCode::OK);
    let (jobs, failed) = forward_all(&state, false).await;
    assert_eq!((jobs, failed.len()), (1, 1), "127.0.0.1 is refused by default");
    assert!(seen.lock().unwrap().is_empty());
}

/// The CRM's copy of each Piano event: a Piano user whose email a Stripe-made record holds gets a
/// record of its own (an event is no evidence it owns the address; `sync::link` joins them on
/// evidence), and a redelivery of the same `data` is a duplicate.
#[tokio::test]
async fn piano_users_with_a_known_email_get_their_own_record_until_evidence() {
    use shared::domain::customer::{Customer, Identity};
    use shared::domain::ids::Email;
    use shared::store::repo::customers;
    use shared::sync::Outcome;
    use shared::sync::worker::EventWorker;

    let (store, state) = setup(&[]).await;
    let publication = PublicationId::parse("daily").unwrap();
    let mut from_stripe = Customer::new(publication.clone(), 0);
    from_stripe.email = Some(Email::parse("reader@example.com").unwrap());
    customers::create(store.store.as_ref(), &from_stripe).await.unwrap();

    let user = |uid: &str, email: &str| {
        let event = json!({"version": 2, "type": "user_created", "aid": "AidDaily01", "uid": uid, "user_email": email});
        encrypt(&event.to_string(), &Secret::new(PRIVATE_KEY))
    };
    let stripe = shared::stripe::client::HttpStripe::new("http://127.0.0.1:9").unwrap();
    let worker = EventWorker::new(store.store.clone(), Arc::new(stripe));
    let mut outcomes = Vec::new();
    for data in [
        user("PNIreader0001", "Reader@Example.com"),
        user("PNIreader0001", "Reader@Example.com"),
        user("PNInew00002", "new@example.com"),
    ] {
        let request =
            Request::get(format!("/webhooks/piano/daily?data={}", encoded(&data))).body(Body::empty()).unwrap();
        let (status, answer) = call(&state, request).await;
        assert_eq!(status, StatusCode::OK);
        let queued = state.queue.receive(shared::queue::EVENTS.name, 10, Duration::from_millis(10)).await.unwrap();
        if answer["duplicate"] == true {
            assert!(queued.is_empty(), "a redelivery is not queued again");
            outcomes.push(Outcome::Duplicate);
            continue;
        }
        assert_eq!(queued.len(), 1, "the CRM's copy of the event");
        outcomes.push(worker.process(&queued[0].body).await.unwrap());
        state.queue.delete(shared::queue::EVENTS.name, &[queued[0].receipt.clone()]).await.unwrap();
    }
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Duplicate, Outcome::Applied]);
    let linked = customers::find(store.store.as_ref(), &publication, &Identity::Piano("PNIreader0001".into()))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(linked.value.id, from_stripe.id, "an email alone links nothing");
    assert_eq!(linked.value.email, None, "the address stays with the record holding it");
    let created = customers::find(store.store.as_ref(), &publication, &Identity::Piano("PNInew00002".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.value.email.unwrap().as_str(), "new@example.com");
    let (all, _) = customers::list(store.store.as_ref(), &publication, 10, None).await.unwrap();
    assert_eq!(all.len(), 3);
}

/// Access events set the reader's entitlements (with a timeline entry each), shown on the record.
#[tokio::test]
async fn access_events_set_entitlements_on_the_record() {
    use shared::sync::Outcome;
    use shared::sync::worker::EventWorker;

    let (store, state) = setup(&[]).await;
    let stripe = shared::stripe::client::HttpStripe::new("http://127.0.0.1:9").unwrap();
    let worker = EventWorker::new(store.store.clone(), Arc::new(stripe));
    let access = |kind: &str| {
        let event = json!({"version": 2, "type": kind, "aid": "AidDaily01", "uid": "PNIreader0001",
                           "user_email": "reader@example.com", "rid": "RXYZ", "term_id": "TMABC", "expires": 1_900_000_000});
        encrypt(&event.to_string(), &Secret::new(PRIVATE_KEY))
    };
    let granted = access("access_granted");
    let mut outcomes = Vec::new();
    for data in [granted.clone(), granted, access("access_revoked")] {
        let request =
            Request::get(format!("/webhooks/piano/daily?data={}", encoded(&data))).body(Body::empty()).unwrap();
        let (status, answer) = call(&state, request).await;
        assert_eq!(status, StatusCode::OK);
        let queued = state.queue.receive(shared::queue::EVENTS.name, 10, Duration::from_millis(10)).await.unwrap();
        if answer["duplicate"] == true {
            // A redelivery is known at the webhook: not queued again.
            assert!(queued.is_empty());
            outcomes.push(Outcome::Duplicate);
            continue;
        }
        outcomes.push(worker.process(&queued[0].body).await.unwrap());
        state.queue.delete(shared::queue::EVENTS.name, &[queued[0].receipt.clone()]).await.unwrap();
        // Piano sends one event at a time; the next one is received later.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Duplicate, Outcome::Applied]);

    let get = |path: String| {
        Request::get(path).header("authorization", format!("Bearer {}", support::OPERATOR)).body(Body::empty()).unwrap()
    };
    let all = shared::api::all_routes(state.clone());
    let list =
        all.clone().oneshot(get("/admin/publications/daily/customers?email=reader@example.com".into())).await.unwrap();
    let list: Value = serde_json::from_slice(&list.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    let record = all.oneshot(get(format!("/admin/publications/daily/customers/{id}"))).await.unwrap();
    let record: Value = serde_json::from_slice(&record.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(record["pianoUid"], "PNIreader0001");
    assert_eq!(
        record["entitlements"],
        json!([{"provider": "piano", "resourceId": "RXYZ", "termId": "TMABC",
                                               "expiresAt": "2030-03-17T17:46:40Z", "status": "revoked"}])
    );
    let kinds: Vec<&str> =
        record["activities"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["access_revoked", "access_granted"]);
}
