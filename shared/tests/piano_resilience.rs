//! The Piano proxy under failing legacy endpoints, over the emulator's SQS queues (and DynamoDB):
//! one endpoint is healthy, one answers 500 for a while and then recovers, one is down. Piano's
//! events go through `piano-webhook` while the forwarder and the events worker run on those queues.
//! The healthy endpoint gets every event without waiting for the others, the flaky one gets every
//! event once it recovers, each job of the dead one ends in the forward dead-letter queue (once),
//! and the CRM applies every event exactly once, a redelivery of one of them included.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, Uri};
use serde_json::json;
use shared::api::AppState;
use shared::domain::customer::Identity;
use shared::domain::ids::PublicationId;
use shared::domain::secret::Secret;
use shared::domain::settings::PublicationSettings;
use shared::http::auth::AdminAuth;
use shared::piano::forward::{ForwardJob, ForwardWorker, Forwarder};
use shared::piano::webhook::encrypt;
use shared::queue::worker::{Backoff, BatchHandler, run_with_backoff};
use shared::queue::{EVENTS, FORWARD, QueueDef, Received};
use shared::store::repo::publications::{self, StoredSettings};
use shared::store::repo::{activities, customers, keys_of};
use shared::sync::worker::EventWorker;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const PRIVATE_KEY: &str = "piano-private-key-of-the-daily-0123456789";
const PUBLICATION: &str = "daily";

/// The forward queue as deployed but for its redrive: a job goes to the dead-letter queue after 4
/// receives instead of 8, so the dead endpoint's jobs get there in seconds.
const FORWARD_QUICK: QueueDef = QueueDef { max_receive_count: 4, ..FORWARD };

/// A failed message is retried after 1 s (the SQS minimum) rather than after 2 s, 4 s, 8 s, ...
const RETRY: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(1) };

/// What one legacy endpoint answered: the query it got and the status it gave.
#[derive(Default)]
struct Endpoint {
    seen: Mutex<Vec<(String, u16)>>,
    /// Answers 500 while this is false.
    healthy: AtomicBool,
}

impl Endpoint {
    fn answered(&self, status: u16) -> Vec<String> {
        self.seen.lock().unwrap().iter().filter(|(_, s)| *s == status).map(|(q, _)| q.clone()).collect()
    }
}

async fn endpoint(healthy: bool) -> (String, Arc<Endpoint>) {
    let state = Arc::new(Endpoint { healthy: AtomicBool::new(healthy), ..Endpoint::default() });
    let record = state.clone();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let record = record.clone();
        async move {
            let status = if record.healthy.load(Ordering::SeqCst) { 200 } else { 500 };
            record.seen.lock().unwrap().push((uri.query().unwrap_or_default().to_owned(), status));
            StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/piano", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

/// A port nothing listens on.
async fn down() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gone", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// The events worker, counting the messages it finished (applied, or found to be duplicates).
struct CountingEvents {
    inner: EventWorker,
    done: Mutex<HashSet<String>>,
}

#[async_trait]
impl BatchHandler for CountingEvents {
    async fn handle(&self, batch: &[Received]) -> Vec<String> {
        let failed = self.inner.handle(batch).await;
        let mut done = self.done.lock().unwrap();
        done.extend(batch.iter().filter(|m| !failed.contains(&m.id)).map(|m| m.id.clone()));
        failed
    }
}

/// Waits for `condition`, checking every 20 ms; fails the test with `what` past `limit`.
async fn until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "still waiting after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_legacy_endpoints_delay_no_one_and_the_crm_applies_each_event_once() {
    let started = Instant::now();
    let (healthy_url, healthy) = endpoint(true).await;
    let (flaky_url, flaky) = endpoint(false).await;
    let dead_url = down().await;

    let store = support::dynamo_store().await;
    let queue = support::sqs_queue(&[EVENTS, FORWARD_QUICK]).await;
    let publication = PublicationId::parse(PUBLICATION).unwrap();
    let settings = json!({
        "name": "The Daily", "origins": ["https://www.daily.example"],
        "piano": {"aid": "AidDaily01", "apiToken": "piano-api-token-0123456789", "privateKey": PRIVATE_KEY,
                  "region": "eu", "legacyWebhookUrls": [&healthy_url, &flaky_url, &dead_url]}
    });
    let stored = StoredSettings {
        publication_id: publication.clone(),
        settings: PublicationSettings::parse(settings.to_string().as_bytes(), None).unwrap(),
        updated_at: 0,
    };
    publications::put(store.store.as_ref(), &stored, None).await.unwrap();
    let stripe = Arc::new(shared::stripe::client::HttpStripe::new("http://127.0.0.1:9").unwrap());
    let state = AppState::new(
        store.store.clone(),
        queue.clone(),
        AdminAuth::new(support::OPERATOR),
        stripe.clone(),
        Arc::new(shared::piano::client::HttpPiano::new()),
    );

    let shutdown = CancellationToken::new();
    let forwarder = Arc::new(ForwardWorker::new(Arc::new(Forwarder::new(true))));
    let events =
        Arc::new(CountingEvents { inner: EventWorker::new(store.store.clone(), stripe), done: Mutex::default() });
    let workers = [
        tokio::spawn(run_with_backoff(queue.clone(), FORWARD.name, forwarder, shutdown.clone(), RETRY)),
        tokio::spawn(run_with_backoff(queue.clone(), EVENTS.name, events.clone(), shutdown.clone(), RETRY)),
    ];

    // Five access events of two readers, each to another resource; then Piano redelivers the first.
    let grants = [
        ("PNIreader0001", "RKEBOOK01"),
        ("PNIreader0001", "RKEBOOK02"),
        ("PNIreader0001", "RKPAPER01"),
        ("PNIreader0002", "RKEBOOK01"),
        ("PNIreader0002", "RKPAPER02"),
    ];
    let data: Vec<String> = grants
        .iter()
        .map(|(uid, rid)| {
            let event = json!({"version": 2, "type": "access_granted", "aid": "AidDaily01", "uid": uid,
                               "user_email": format!("{}@example.com", uid.to_lowercase()),
                               "rid": rid, "term_id": "TMDIGITAL", "expires": 1_900_000_000});
            encrypt(&event.to_string(), &Secret::new(PRIVATE_KEY))
        })
        .collect();
    let mut deliveries: Vec<String> = data
        .iter()
        .map(|d| format!("data={}", url::form_urlencoded::byte_serialize(d.as_bytes()).collect::<String>()))
        .collect();
    deliveries.push(deliveries[0].clone());
    let router = shared::api::piano_webhook::router(state);
    for query in &deliveries {
        let request = Request::get(format!("/webhooks/piano/{PUBLICATION}?{query}")).body(Body::empty()).unwrap();
        assert_eq!(router.clone().oneshot(request).await.unwrap().status(), StatusCode::OK, "Piano gets 200 at once");
    }
    // The redelivery is known at the webhook (the same event): answered 200, queued for no one.
    let forwarded = deliveries[..grants.len()].to_vec();
    let delivered = sorted(forwarded.clone());

    // The healthy endpoint gets every delivery while the flaky one still fails and the dead one is retried.
    until("the healthy endpoint receives every delivery", Duration::from_secs(15), || {
        healthy.seen.lock().unwrap().len() >= forwarded.len()
    })
    .await;
    assert_eq!(sorted(healthy.answered(200)), delivered, "each delivery once, as sent");
    assert!(flaky.answered(200).is_empty(), "the flaky endpoint has not recovered yet");

    // The flaky endpoint recovers once it has refused as many requests as there are deliveries.
    until("the flaky endpoint refuses every delivery once", Duration::from_secs(15), || {
        flaky.answered(500).len() >= forwarded.len()
    })
    .await;
    flaky.healthy.store(true, Ordering::SeqCst);
    let recovered_at = Instant::now();
    until("the flaky endpoint receives every delivery after recovering", Duration::from_secs(15), || {
        flaky.answered(200).len() >= forwarded.len()
    })
    .await;
    assert_eq!(sorted(flaky.answered(200)), delivered, "each delivery once after recovering");
    eprintln!("flaky endpoint caught up {:?} after recovering", recovered_at.elapsed());

    // Each of the dead endpoint's jobs ends in the dead-letter queue after its 4 attempts, once.
    let mut dead_letters = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead_letters.len() < forwarded.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} jobs in the dead-letter queue",
            dead_letters.len(),
            forwarded.len()
        );
        for message in queue.receive(FORWARD.dlq_name, 10, Duration::from_secs(1)).await.unwrap() {
            dead_letters.insert(message.id, message.body);
        }
    }
    // Every job is accounted for (delivered to the healthy and the flaky endpoint, or dead-lettered):
    // nothing more may arrive.
    let extra = queue.receive(FORWARD.dlq_name, 10, Duration::from_secs(1)).await.unwrap();
    assert!(extra.iter().all(|m| dead_letters.contains_key(&m.id)), "a job dead-lettered twice: {extra:?}");
    let jobs: Vec<ForwardJob> = dead_letters.values().map(|body| serde_json::from_str(body).unwrap()).collect();
    assert!(jobs.iter().all(|job| job.url == dead_url && job.method == "GET"), "{jobs:?}");
    assert_eq!(sorted(jobs.into_iter().filter_map(|job| job.query).collect()), delivered);

    // The CRM applied each of the five events once.
    until("the events worker finishes the five messages", Duration::from_secs(20), || {
        events.done.lock().unwrap().len() >= forwarded.len()
    })
    .await;
    let s = store.store.as_ref();
    let mut event_ids = BTreeSet::new();
    for uid in ["PNIreader0001", "PNIreader0002"] {
        let expected: BTreeSet<&str> = grants.iter().filter(|(u, _)| *u == uid).map(|(_, rid)| *rid).collect();
        let customer = customers::find(s, &publication, &Identity::Piano(uid.into())).await.unwrap().unwrap().value;
        let entitled: BTreeSet<&str> = customer.piano.entitlements.keys().map(String::as_str).collect();
        assert_eq!(entitled, expected, "{uid}: one entitlement per resource granted");
        let (timeline, _) = activities::list(s, &publication, &customer.id, 50, None).await.unwrap();
        let granted: BTreeSet<&str> = timeline.iter().filter_map(|a| a.object_id.as_deref()).collect();
        assert_eq!((timeline.len(), granted), (expected.len(), expected), "{uid}: one timeline entry per event");
        event_ids.extend(timeline.into_iter().filter_map(|a| a.event_id));
    }
    assert_eq!(event_ids.len(), grants.len(), "five events, each under its own id");
    for id in &event_ids {
        let entry = s.get(&keys_of::event(&publication, "piano", id)).await.unwrap();
        assert!(entry.is_some(), "ledger entry of {id}");
    }
    let (all, _) = customers::list(s, &publication, 10, None).await.unwrap();
    assert_eq!(all.len(), 2, "one record per reader");

    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap();
    }
    eprintln!("resilience test took {:?}", started.elapsed());
}
