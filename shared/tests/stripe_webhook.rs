//! `POST /webhooks/stripe/{publicationId}/{accountKey}` over HTTP, with Stripe's documented signature
//! cases; a 200 means the event is on the queue, a queue failure answers 5xx.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::api::AppState;
use shared::queue::EVENTS;
use shared::store::Store;
use shared::stripe::signature::sign;
use shared::sync::envelope;
use support::stripe_world::{self as w, World};
use tower::ServiceExt;

const PATH: &str = "/webhooks/stripe/daily/main";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn sample() -> Vec<u8> {
    let event =
        w::event("evt_hook1", "customer.created", now(), w::customer("cus_H", "hook@example.com", "Hook"), None);
    // Pretty-printed, as Stripe sends it: the signature covers these exact bytes.
    serde_json::to_vec_pretty(&event).unwrap()
}

async fn post(state: &AppState, path: &str, signature: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut request = Request::post(path).header("content-type", "application/json; charset=utf-8");
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let response = shared::api::stripe_webhook::router(state.clone())
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("every answer is JSON: {bytes:?}")))
}

async fn queued(state: &AppState) -> Vec<String> {
    let received = state.queue.receive(EVENTS.name, 10, Duration::from_millis(10)).await.unwrap();
    received.into_iter().map(|m| m.body).collect()
}

async fn a_signed_event_is_queued_byte_for_byte(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let body = sample();
    let (status, answer) = post(&world.state, PATH, Some(&sign(&body, w::WEBHOOK_SECRET, now())), body.clone()).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"received": true})));
    let messages = queued(&world.state).await;
    assert_eq!(messages.len(), 1);
    let (header, raw) = envelope::decode(&messages[0]).unwrap();
    assert_eq!(raw.as_bytes(), body.as_slice(), "the raw body is queued as received");
    assert_eq!(header.account.unwrap().as_str(), "main");
    // The worker applies what was queued.
    assert_eq!(world.worker.process(&messages[0]).await.unwrap(), shared::sync::Outcome::Applied);
    assert_eq!(world.record("hook@example.com").await["stripeCustomerIds"], json!({"main": "cus_H"}));
}

async fn signature_cases_stripe_documents(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let body = sample();
    let t = now();
    let good = sign(&body, w::WEBHOOK_SECRET, t);
    let good_v1 = good.split("v1=").nth(1).unwrap().to_owned();
    let accepted = [
        // Several v1 entries (a secret rotation at Stripe), the matching one last; other schemes ignored.
        format!("t={t},v1={},v0=deadbeef,v1={good_v1}", "ab".repeat(32)),
        // Signed with the account's older secret, still configured during a rotation.
        sign(&body, "whsec_old_rotated_away_0123456789", t),
    ];
    for header in &accepted {
        assert_eq!(post(&world.state, PATH, Some(header), body.clone()).await.0, StatusCode::OK, "{header}");
    }
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let rejected: Vec<(Option<String>, Vec<u8>, &str)> = vec![
        (Some(sign(&body, "whsec_someone_else_0123456789", t)), body.clone(), "wrong secret"),
        (Some(good.clone()), tampered, "tampered body"),
        (Some(sign(&body, w::WEBHOOK_SECRET, t - 301)), body.clone(), "expired timestamp"),
        (None, body.clone(), "missing header"),
        (Some("t=notanumber,v1=00".into()), body.clone(), "malformed header"),
        (Some("v1=00".into()), body.clone(), "no timestamp"),
        (Some(format!("t={t}")), body.clone(), "no v1"),
        (Some(good.replace("v1=", "v2=")), body.clone(), "only another scheme"),
        // The second account's secret does not sign for the main account.
        (Some(sign(&body, w::SECOND_SECRET, t)), body.clone(), "another account's secret"),
    ];
    for (header, body, case) in rejected {
        let (status, answer) = post(&world.state, PATH, header.as_deref(), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
        assert!(answer["error"].is_string(), "{case}");
    }
    assert_eq!(queued(&world.state).await.len(), accepted.len(), "only accepted events are queued");
}

async fn unknown_targets_and_bodies_that_are_not_events(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let body = sample();
    let header = sign(&body, w::WEBHOOK_SECRET, now());
    for path in ["/webhooks/stripe/nobody/main", "/webhooks/stripe/daily/nosuch", "/webhooks/stripe/Bad..Id/main"] {
        assert_eq!(post(&world.state, path, Some(&header), body.clone()).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for not_event in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        br#"{"id":"evt_1","type":"x","created":1,"data":{"object":"str"}}"#.to_vec(),
        vec![0xff, 0xfe],
    ] {
        let header = sign(&not_event, w::WEBHOOK_SECRET, now());
        assert_eq!(post(&world.state, PATH, Some(&header), not_event).await.0, StatusCode::BAD_REQUEST);
    }
    let huge = vec![b' '; envelope::MAX_BODY_BYTES + 1];
    let (status, answer) = post(&world.state, PATH, Some(&header), huge).await;
    assert_eq!((status, answer), (StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "request body too large"})));
    assert!(queued(&world.state).await.is_empty());
}

for_each_store!(
    a_signed_event_is_queued_byte_for_byte,
    signature_cases_stripe_documents,
    unknown_targets_and_bodies_that_are_not_events,
);

/// When SQS refuses the message, Stripe must hear an error so it retries: never a 200.
#[tokio::test]
async fn a_queue_failure_answers_5xx() {
    let store = support::embedded_store();
    let world = World::new(store.store.clone()).await;
    let sdk = support::sdk().await;
    let missing = format!("{}/000000000000/no-such-queue", support::emulator_endpoint());
    let queue = shared::queue::sqs::SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        std::collections::HashMap::from([(EVENTS.name.to_owned(), missing)]),
    );
    let state = AppState { queue: Arc::new(queue), ..world.state.clone() };
    let body = sample();
    let (status, answer) = post(&state, PATH, Some(&sign(&body, w::WEBHOOK_SECRET, now())), body).await;
    assert!(status.is_server_error(), "{status} {answer}");
    assert!(answer["error"].is_string());
}

/// `crm serve`'s in-process queue, full: the delivery is refused with a 503 (Stripe retries it later),
/// and what was queued before stays as it was.
#[tokio::test]
async fn a_full_in_process_queue_answers_503() {
    let store = support::embedded_store();
    let world = World::new(store.store.clone()).await;
    let body = sample();
    // Room for one message (the body and a header line of under 400 bytes), not for two.
    assert!(body.len() > 400);
    let room = body.len() + 400;
    let queue = shared::queue::memory::MemoryQueue::with_max_bytes(shared::queue::ALL, room);
    let state = AppState { queue: Arc::new(queue), ..world.state.clone() };
    let signature = sign(&body, w::WEBHOOK_SECRET, now());
    let (status, _) = post(&state, PATH, Some(&signature), body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = post(&state, PATH, Some(&signature), body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    assert_eq!(state.queue.depth(EVENTS.name).await.unwrap(), 1);
}

/// The deployed path on the emulator: signed events over HTTP → SQS → the worker loop → DynamoDB,
/// delivered twice and in reverse order, read back over the customers API.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_to_sqs_to_worker_to_dynamodb() {
    let store = support::dynamo_store().await;
    let world = World::new(store.store.clone()).await;
    let queue = support::sqs_queue(shared::queue::ALL).await;
    let state = AppState { queue: queue.clone(), ..world.state.clone() };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = Arc::new(shared::sync::worker::EventWorker::new(store.store.clone(), Arc::new(world.stripe.client())));
    let running = tokio::spawn(shared::queue::worker::run(queue, EVENTS.name, worker, shutdown.clone()));

    let t0 = now() - 3600;
    let price = w::price("price_e2e", "prod_e2e", 900, "month");
    let sub = w::subscription("sub_e2e", "cus_e2e", "active", price, t0 + 1, (t0 + 1, t0 + 1 + 30 * 86_400));
    let events = [
        w::event("evt_e2e_1", "customer.created", t0, w::customer("cus_e2e", "e2e@example.com", "End To End"), None),
        w::event("evt_e2e_2", "customer.subscription.created", t0 + 1, sub, None),
        w::event(
            "evt_e2e_3",
            "invoice.paid",
            t0 + 2,
            w::invoice("in_e2e", "cus_e2e", "sub_e2e", "paid", 900, t0 + 2),
            None,
        ),
    ];
    world.stripe.put_object(events[0]["data"]["object"].clone());
    for event in events.iter().rev().chain(events.iter()) {
        let body = serde_json::to_vec(event).unwrap();
        let (status, _) = post(&state, PATH, Some(&sign(&body, w::WEBHOOK_SECRET, now())), body).await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut record = Value::Null;
    for _ in 0..200 {
        let (_, list) = world.get("/admin/publications/daily/customers?email=e2e@example.com").await;
        if let Some(id) = list["data"][0]["id"].as_str() {
            record = world.get(&format!("/admin/publications/daily/customers/{id}")).await.1;
            let all_applied = record["lifetimeValue"] == json!([{"currency": "usd", "amount": 900}])
                && record["mrr"] == json!([{"currency": "usd", "amount": 900}])
                && record["name"] == "End To End";
            if all_applied {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(record["lifetimeValue"], json!([{"currency": "usd", "amount": 900}]), "{record}");
    assert_eq!(record["paymentStatus"], "current");
    assert_eq!(record["mrr"], json!([{"currency": "usd", "amount": 900}]));
    assert_eq!(record["activities"].as_array().unwrap().len(), 2, "payment and subscription start, once each");
    assert_eq!(world.customers().await.len(), 1);
}
