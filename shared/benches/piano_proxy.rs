//! What the Piano proxy (`piano-webhook`) costs per event in CPU, network excluded: Piano's GET with a
//! ~1 KB access event in `data` goes through the function's router (request span, publication
//! settings from the warm cache, HMAC check, decryption, parse) and ends as the CRM's copy on the
//! events queue plus one forward job for each of the publication's 2 legacy endpoints, on the
//! in-process queue. The settings live in the embedded store (redb) and are cached, as in a warm Lambda.
//!
//! Rows: `proxy_request` (the whole handler; no log subscriber), `proxy_request_json_logs` (the same with
//! the functions' JSON log subscriber writing to a sink: what logging adds), and steps alone.
//! Every figure includes dropping what the step built.
//!
//! Run: `bench/piano-proxy` (release profile, prints a Markdown table for docs/PERFORMANCE.md), or
//! `cargo bench -p shared --bench piano_proxy`.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use divan::{Bencher, black_box};
use serde_json::json;
use shared::api::AppState;
use shared::domain::ids::PublicationId;
use shared::domain::secret::Secret;
use shared::domain::settings::PublicationSettings;
use shared::http::auth::AdminAuth;
use shared::piano::webhook::{decrypt, encrypt, event_type, parse_event};
use shared::queue::memory::MemoryQueue;
use shared::queue::{EVENTS, FORWARD, Queue};
use shared::store::embedded::EmbeddedStore;
use shared::store::repo::publications::{self, SettingsCache, StoredSettings};
use tower::ServiceExt as _;

/// A Piano private key is 40 characters; the AES key is its first 32 bytes, the HMAC key all of it.
const PRIVATE_KEY: &str = "Xq7uR2mZp9LwT4vKc8NbH3sYd6FgJ1eA5oVi0UtQ";
const LEGACY: [&str; 2] =
    ["https://legacy-one.example/piano/webhook", "https://legacy-two.example/hooks/piano?site=daily"];

/// A Piano `access_granted` webhook of about 1 KB, as Piano sends it (every field Piano documents
/// for access events, with user and term details).
fn event_json() -> String {
    json!({
        "version": 2,
        "type": "access_granted",
        "event": "new_purchase",
        "aid": "AidDaily01",
        "uid": "PNIa1b2c3d4e5f6g7h8",
        "user_email": "reader.with.a.long.name@example-newspaper.com",
        "rid": "RK3EBOOK0042",
        "term_id": "TMXYZ98765",
        "term_name": "Digital subscription, monthly (introductory offer for three months)",
        "resource_name": "The Daily - all digital content, e-paper and archive",
        "access_id": "ACabcdef123456",
        "subscription_id": "RC9xYzAbCdEf",
        "payment_id": "UP1234567890ab",
        "user_payment_id": "UPY0987654321",
        "expires": 1_767_225_600,
        "start_date": 1_764_547_200,
        "create_date": 1_764_547_201,
        "amount": "9.99",
        "currency": "EUR",
        "price": "€9.99 for the first 3 months, then €14.99 per month",
        "billing_plan": "monthly",
        "first_name": "Reader",
        "last_name": "With A Long Name",
        "country": "DE",
        "postal_code": "10115",
        "promo_code": "AUTUMN26",
        "external_tx_id": "ch_3QabcdEFGhijKLmn0123",
        "source": "checkout",
        "custom_fields": {"newsletter": "true", "segment": "digital-first", "referrer": "homepage-banner"},
        "utm": {"source": "newsletter", "medium": "email", "campaign": "autumn-offer-2026"}
    })
    .to_string()
}

struct Sample {
    plaintext: String,
    data: String,
    uri: String,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "access_granted ({} B event, {} B data)", self.plaintext.len(), self.data.len())
    }
}

static SAMPLE: LazyLock<Sample> = LazyLock::new(|| {
    let plaintext = event_json();
    let data = encrypt(&plaintext, &Secret::new(PRIVATE_KEY));
    let encoded: String = url::form_urlencoded::byte_serialize(data.as_bytes()).collect();
    let uri = format!("/webhooks/piano/daily?data={encoded}");
    Sample { plaintext, data, uri }
});

fn samples() -> impl Iterator<Item = &'static Sample> {
    std::iter::once(&*SAMPLE)
}

/// The function as a warm Lambda has it: router built, settings cached, the store's file open.
struct Proxy {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    queue: Arc<MemoryQueue>,
    _dir: tempfile::TempDir,
}

static PROXY: LazyLock<Proxy> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("crm.redb")).expect("embedded store"));
    let queue = Arc::new(MemoryQueue::new(shared::queue::ALL));
    let settings = json!({
        "name": "The Daily", "origins": ["https://www.daily.example"],
        "piano": {"aid": "AidDaily01", "apiToken": "piano-api-token-0123456789", "privateKey": PRIVATE_KEY,
                  "region": "eu", "legacyWebhookUrls": LEGACY}
    });
    let stored = StoredSettings {
        publication_id: PublicationId::parse("daily").expect("id"),
        settings: PublicationSettings::parse(settings.to_string().as_bytes(), None).expect("settings"),
        updated_at: 0,
    };
    runtime.block_on(publications::put(store.as_ref(), &stored, None)).expect("settings stored");
    let stripe = shared::stripe::client::HttpStripe::new("http://127.0.0.1:9").expect("stripe client");
    let mut state = AppState::new(
        store,
        queue.clone(),
        AdminAuth::new("local-operator-token-change-me-0123"),
        Arc::new(stripe),
        Arc::new(shared::piano::client::HttpPiano::new()),
    );
    // The cache's 10 s would make a miss (one store read) every 10 s of the run: the rows measure the
    // warm path, so the cache keeps its entry for the whole run.
    state.settings = Arc::new(SettingsCache::new(Duration::from_secs(24 * 3600)));
    let proxy = Proxy { runtime, router: shared::api::piano_webhook::router(state), queue, _dir: dir };
    // Warms the cache, and checks the request does what the rows claim: one CRM event, two jobs.
    assert_eq!(proxy.call(request(&SAMPLE)), StatusCode::OK);
    let queued = |name| proxy.runtime.block_on(proxy.queue.depth(name)).expect("depth");
    assert_eq!((queued(EVENTS.name), queued(FORWARD.name)), (1, 2));
    proxy.drain();
    proxy
});

/// Piano's GET with the headers a request has by the time it reaches the function.
fn request(sample: &Sample) -> Request<Body> {
    Request::get(sample.uri.as_str())
        .header("host", "crm.daily.example")
        .header("user-agent", "Apache-HttpClient/4.5.14 (Java/17.0.9)")
        .header("accept-encoding", "gzip,deflate")
        .header("x-forwarded-for", "34.228.109.14")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", "443")
        .header("x-amzn-trace-id", "Root=1-6747c6a5-3b8f2c1d4e5a6b7c8d9e0f1a")
        .body(Body::empty())
        .expect("request")
}

impl Proxy {
    fn call(&self, request: Request<Body>) -> StatusCode {
        let response = self.runtime.block_on(self.router.clone().oneshot(request)).expect("infallible");
        response.status()
    }

    /// Empties both queues (outside the timed calls), so they stay small however long the run.
    fn drain(&self) {
        self.runtime.block_on(async {
            for name in [EVENTS.name, FORWARD.name] {
                loop {
                    let batch = self.queue.receive(name, 10, Duration::ZERO).await.expect("receive");
                    if batch.is_empty() {
                        break;
                    }
                    let receipts: Vec<String> = batch.into_iter().map(|m| m.receipt).collect();
                    self.queue.delete(name, &receipts).await.expect("delete");
                }
            }
        });
    }
}

fn bench_proxy(bencher: Bencher, sample: &'static Sample) {
    let proxy = &*PROXY;
    bencher
        .with_inputs(|| {
            proxy.drain();
            request(sample)
        })
        .bench_local_values(|request| assert_eq!(proxy.call(black_box(request)), StatusCode::OK));
}

/// `piano-webhook` per request: routing and request span, settings (warm cache), HMAC check and
/// decryption, parse, the CRM's copy and the 2 forward jobs queued, the 200 answer.
#[divan::bench(args = samples())]
fn proxy_request(bencher: Bencher, sample: &'static Sample) {
    bench_proxy(bencher, sample);
}

/// The same with the functions' JSON log lines (`shared::telemetry`, level info) written to a sink.
#[divan::bench(args = samples())]
fn proxy_request_json_logs(bencher: Bencher, sample: &'static Sample) {
    let subscriber = shared::telemetry::subscriber_to(std::io::sink);
    tracing::subscriber::with_default(subscriber, || bench_proxy(bencher, sample));
}

/// HMAC check and AES decryption of `data` alone.
#[divan::bench(args = samples())]
fn decrypt_only(bencher: Bencher, sample: &Sample) {
    let key = Secret::new(PRIVATE_KEY);
    bencher.bench(|| divan::black_box_drop(decrypt(black_box(&sample.data), &key).expect("decrypts")));
}

/// The proxy's check of the decrypted event alone (a JSON object; its `type` for the log).
#[divan::bench(args = samples())]
fn event_check_only(bencher: Bencher, sample: &Sample) {
    bencher.bench(|| divan::black_box_drop(event_type(black_box(&sample.plaintext)).expect("an object")));
}

/// For comparison: the full parse the events worker makes later (the fields the sync reads and the
/// whole document), which the proxy made too until it needed only the check above.
#[divan::bench(args = samples())]
fn worker_parse_event(bencher: Bencher, sample: &Sample) {
    bencher.bench(|| divan::black_box_drop(parse_event(black_box(&sample.plaintext)).expect("an event")));
}

fn main() {
    LazyLock::force(&PROXY);
    // Each call takes microseconds: 1,000 samples of 10 calls each steady the median and mean;
    // `--sample-count` and `--sample-size` override them.
    divan::Divan::default().sample_count(1000).sample_size(10).config_with_args().main();
}
