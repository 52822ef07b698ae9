//! `events/expectations.json`: every sample under `events/` (but the Stripe story the other tests
//! replay), in replay order, with what its function answers when the samples are replayed in that
//! order against a fresh table and fresh queues, with the samples' operator token, and with Stripe's
//! and Piano's API bases pointing at a closed loopback port (so routes calling a provider answer 503,
//! "service temporarily unavailable"). A runner replays the file through `cargo lambda`; here the
//! entries are replayed through the same routers and workers, on the embedded store and on the
//! DynamoDB/SQS emulator. Entries with `"sign": "stripe"` are signed anew with their `secret` first.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A loopback port nothing listens on (`support::app_state`'s Stripe base).
const CLOSED: &str = "http://127.0.0.1:9";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn expectations() -> Vec<Value> {
    let path = root().join("events/expectations.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let entries: Value = serde_json::from_str(&text).expect("events/expectations.json is JSON");
    entries.as_array().expect("events/expectations.json is an array").clone()
}

fn field<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry[name].as_str().unwrap_or_else(|| panic!("entry without {name}: {entry}"))
}

/// The sample files under `events/<function>/` (the story of `events/stripe-webhook/story/` aside).
fn sample_files() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for dir in std::fs::read_dir(root().join("events")).unwrap() {
        let dir = dir.unwrap();
        if !dir.file_type().unwrap().is_dir() {
            continue;
        }
        let function = dir.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let file = file.unwrap();
            if file.file_type().unwrap().is_file() {
                found.insert((function.clone(), file.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    found
}

#[test]
fn every_function_has_a_sample_in_the_expectations() {
    let listed: BTreeSet<String> = expectations().iter().map(|e| field(e, "function").to_owned()).collect();
    let missing: Vec<String> = support::function_crates().difference(&listed).cloned().collect();
    assert!(missing.is_empty(), "functions without an entry in events/expectations.json: {missing:?}");
    let unknown: Vec<String> = listed.difference(&support::function_crates()).cloned().collect();
    assert!(unknown.is_empty(), "events/expectations.json names no such function: {unknown:?}");
}

#[test]
fn every_sample_is_expected_once() {
    let entries = expectations();
    let listed: Vec<(String, String)> =
        entries.iter().map(|e| (field(e, "function").to_owned(), field(e, "sample").to_owned())).collect();
    let unique: BTreeSet<(String, String)> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "a sample is listed twice in events/expectations.json");
    let files = sample_files();
    let missing: Vec<_> = files.difference(&unique).collect();
    assert!(missing.is_empty(), "samples missing from events/expectations.json: {missing:?}");
    let absent: Vec<_> = unique.difference(&files).collect();
    assert!(absent.is_empty(), "events/expectations.json lists samples that do not exist: {absent:?}");
    for entry in &entries {
        let expect = entry["expect"].as_object().unwrap_or_else(|| panic!("entry without expect: {entry}"));
        let keys: Vec<&String> = expect.keys().collect();
        assert!(
            keys == ["statusCode"] || keys == ["batchItemFailures"],
            "expect is {{statusCode}} or {{batchItemFailures}}: {entry}"
        );
        if entry.get("sign").is_some() {
            assert_eq!(entry["sign"], "stripe", "{entry}");
            assert!(field(entry, "secret").starts_with("whsec_"), "{entry}");
        }
    }
}

/// An HTTP sample through its function's router; answers the status and the body.
async fn invoke(function: &str, text: &str, state: shared::api::AppState) -> (u16, String) {
    let request =
        lambda_http::request::from_str(text).unwrap_or_else(|e| panic!("a sample of {function} is not an event: {e}"));
    let response = support::router_of(function, state).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The Stripe sample signed now with `secret`, as `crm stripe sign --secret` does.
fn signed(text: &str, secret: &str) -> String {
    let mut event: Value = serde_json::from_str(text).unwrap();
    let body = event["body"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    event["headers"]["stripe-signature"] = shared::stripe::signature::sign(body.as_bytes(), secret, now).into();
    event.to_string()
}

fn sqs_event(text: &str) -> aws_lambda_events::event::sqs::SqsEvent {
    serde_json::from_str(text).expect("an SQS event")
}

/// On the embedded store with in-process queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_samples_replayed_in_order_answer_as_expected() {
    let store = support::embedded_store();
    replay(store.store.clone(), support::memory_queue(shared::queue::ALL)).await;
}

/// On a fresh table and fresh queues of the DynamoDB/SQS emulator, as the runner replays them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_samples_replayed_in_order_on_the_emulator_answer_as_expected() {
    let store = support::dynamo_store().await;
    replay(store.store.clone(), support::sqs_queue(shared::queue::ALL).await).await;
}

async fn replay(store: Arc<dyn shared::store::Store>, queue: Arc<dyn shared::queue::Queue>) {
    let config = shared::api::ApiConfig { piano_api_base: Some(CLOSED.to_owned()), ..Default::default() };
    let mut state = support::app_state_with(store, CLOSED).with_config(config);
    state.queue = queue;
    state.piano = Arc::new(shared::piano::client::HttpPiano::new().with_backoff(Duration::from_millis(1)));
    let worker = shared::sync::worker::EventWorker::for_state(&state);
    let jobs =
        shared::jobs::JobWorker::new(state.store.clone(), state.stripe.clone(), state.queue.clone(), Duration::ZERO);

    let mut replayed = 0;
    for entry in expectations() {
        let (function, file) = (field(&entry, "function"), field(&entry, "sample"));
        let text = support::event_sample(function, file);
        let answer = match function {
            "webhook-worker" => {
                serde_json::to_value(shared::queue::worker::lambda_batch(&worker, sqs_event(&text)).await).unwrap()
            }
            "backfill" => {
                // A Lambda invocation whose deadline leaves no slice time (as under a short timeout):
                // a backfill slice lists nothing and queues the next; a catch-up runs as always.
                let batch = shared::queue::worker::received(sqs_event(&text));
                let failed = jobs.handle_until(&batch, tokio::time::Instant::now()).await;
                serde_json::to_value(shared::queue::worker::batch_response(failed)).unwrap()
            }
            // Delivers to the sample's legacy endpoint, http://127.0.0.1:9/piano-hook, which only a
            // forwarder allowed private targets may reach (events.rs replays the job against a
            // loopback endpoint that answers).
            "piano-forwarder" => {
                assert!(!sqs_event(&text).records.is_empty());
                continue;
            }
            _ => {
                let text = match entry.get("sign") {
                    Some(_) => signed(&text, field(&entry, "secret")),
                    None => text,
                };
                let (status, body) = invoke(function, &text, state.clone()).await;
                assert!(
                    status != 405 && body != r#"{"error":"no such route"}"#,
                    "{function}/{file}: its function does not serve it ({status} {body})"
                );
                json!({ "statusCode": status, "body": body })
            }
        };
        eprintln!("{function}/{file}: {answer}");
        for (key, expected) in entry["expect"].as_object().unwrap() {
            assert_eq!(&answer[key], expected, "{function}/{file}: {key} (answer: {answer})");
        }
        replayed += 1;
    }
    assert!(replayed > 20, "{replayed} entries replayed");
}
