//! Test support: the two store adapters and two queue adapters behind one constructor each.
//! The DynamoDB/SQS side talks over TCP to the emulator that `.ci/test` starts on 127.0.0.1
//! and announces through `AWS_ENDPOINT_URL`, directly or through a `fault_proxy`.

#![allow(dead_code)] // each test binary uses part of it

pub mod fake_piano;
pub mod fake_stripe;
pub mod fault_proxy;
pub mod public_site;
pub mod stripe_account;
pub mod stripe_world;

use std::sync::Arc;

use shared::api::AppState;
use shared::api::admin_routes;
use shared::http::auth::AdminAuth;
use shared::queue::memory::MemoryQueue;
use shared::queue::sqs::SqsQueue;
use shared::queue::{Queue, QueueDef};
use shared::store::Store;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;

pub struct TestStore {
    pub store: Arc<dyn Store>,
    // Keeps the embedded store's directory alive for the test.
    _dir: Option<tempfile::TempDir>,
}

/// A sample request of `events/<function>/<file>` (what a function's Lambda receives), as text.
pub fn event_sample(function: &str, file: &str) -> String {
    let path = format!("{}/../events/{function}/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The crates under `functions/`: one Lambda each.
pub fn function_crates() -> std::collections::BTreeSet<String> {
    let dir = format!("{}/../functions", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

pub fn embedded_store() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("crm.redb")).expect("open embedded store");
    TestStore { store: Arc::new(store), _dir: Some(dir) }
}

/// The emulator's endpoint; the DynamoDB/SQS tests refuse to pass silently without one.
pub fn emulator_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run the suite with .ci/test, which starts the DynamoDB/SQS emulator")
    })
}

pub async fn sdk() -> aws_config::SdkConfig {
    let endpoint = emulator_endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "emulator must be on loopback, got {endpoint}");
    shared::aws::sdk_config().await
}

/// A fresh table on the emulator, so tests never see each other's items.
pub async fn dynamo_store() -> TestStore {
    dynamo_table().await.0
}

/// A fresh table, and a store reaching the same table through the fault proxy at `proxy`.
pub async fn dynamo_store_through(proxy: &str) -> (TestStore, Arc<dyn Store>) {
    let (direct, table) = dynamo_table().await;
    // The service's configuration, not the SdkConfig, has the last word over `AWS_ENDPOINT_URL`.
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk().await).endpoint_url(proxy).build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    (direct, Arc::new(DynamoStore::new(client, table)))
}

async fn dynamo_table() -> (TestStore, String) {
    let sdk = sdk().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique("contract");
    shared::store::schema::create_table(&client, &table).await.expect("create table on the emulator");
    eprintln!("DynamoDB adapter: table {table} at {} (TCP)", emulator_endpoint());
    (TestStore { store: Arc::new(DynamoStore::new(client, table.clone())), _dir: None }, table)
}

pub fn memory_queue(defs: &[QueueDef]) -> Arc<dyn Queue> {
    Arc::new(MemoryQueue::new(defs))
}

/// Fresh queues `{unique prefix}-{name}` (with dead-letter queues) on the emulator.
pub async fn sqs_queue(defs: &[QueueDef]) -> Arc<dyn Queue> {
    let client = aws_sdk_sqs::Client::new(&sdk().await);
    Arc::new(SqsQueue::new(client, sqs_queues(defs).await))
}

/// Fresh queues as `sqs_queue`, reached directly and through the fault proxy at `proxy`.
pub async fn sqs_queue_through(defs: &[QueueDef], proxy: &str) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
    let urls = sqs_queues(defs).await;
    let direct = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk().await), urls.clone());
    let config = aws_sdk_sqs::config::Builder::from(&sdk().await).endpoint_url(proxy).build();
    let proxied = SqsQueue::new(aws_sdk_sqs::Client::from_conf(config), urls);
    (Arc::new(direct), Arc::new(proxied))
}

/// Creates the queues; answers their URLs by logical name.
async fn sqs_queues(defs: &[QueueDef]) -> std::collections::HashMap<String, String> {
    let client = aws_sdk_sqs::Client::new(&sdk().await);
    let prefix = unique("q");
    let mut urls = std::collections::HashMap::new();
    for def in defs {
        for (name, url) in shared::queue::sqs::create_queues(&client, &prefix, def).await.expect("create queues") {
            urls.insert(name, url);
        }
    }
    eprintln!("SQS adapter: queues {prefix}-* at {} (TCP)", emulator_endpoint());
    urls
}

/// Declares each listed async test once per store adapter: `embedded::name` and `dynamodb::name`.
#[macro_export]
macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let t = $crate::support::embedded_store();
                    super::$name(t.store.clone()).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let t = $crate::support::dynamo_store().await;
                    super::$name(t.store.clone()).await;
                }
            )*
        }
    };
}

/// The operator key of the samples in `events/` and of the tests.
pub const OPERATOR: &str = "local-operator-token-change-me-0123";

/// State over `store` with in-process queues; Stripe calls go to a base URL that refuses connections
/// unless a test passes its fake's (`app_state_with`).
pub fn app_state(store: Arc<dyn Store>) -> AppState {
    app_state_with(store, "http://127.0.0.1:9")
}

pub fn app_state_with(store: Arc<dyn Store>, stripe_base: &str) -> AppState {
    let stripe = shared::stripe::client::HttpStripe::new(stripe_base)
        .expect("stripe client")
        .with_backoff(std::time::Duration::from_millis(1));
    // Piano calls go nowhere unless a test routes them to its fake (`CRM_PIANO_API_BASE`).
    let piano = shared::piano::client::HttpPiano::new();
    AppState::new(store, memory_queue(shared::queue::ALL), AdminAuth::new(OPERATOR), Arc::new(stripe), Arc::new(piano))
}

/// An admin request through every function's routes with the operator key (a JSON body when given);
/// answers the status and the JSON (`Null` when the answer is not JSON).
pub async fn send(
    state: &AppState,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (axum::http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {OPERATOR}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(axum::body::Body::empty, |b| axum::body::Body::from(b.to_string())))
        .expect("request");
    let response = shared::api::all_routes(state.clone()).oneshot(request).await.expect("router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// The router each function's `main.rs` runs, by binary name: an admin route's own
/// (`admin_routes`), or one of the other functions'.
pub fn router_of(binary: &str, state: AppState) -> axum::Router {
    if let Some(route) = admin_routes::by_function(binary) {
        return route.router(state);
    }
    match binary {
        "revenue-api" => shared::api::revenue::router(state),
        "stripe-webhook" => shared::api::stripe_webhook::router(state),
        "piano-webhook" => shared::api::piano_webhook::router(state),
        "subscriptions-list" => shared::api::subscriptions::list_router(state),
        "subscriptions-cancel" => shared::api::subscriptions::cancel_router(state),
        "subscriptions-winback" => shared::api::subscriptions::winback_router(state),
        other => panic!("no router known for function {other}: add it here"),
    }
}
