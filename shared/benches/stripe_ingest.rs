//! What Stripe ingestion costs per event, on Stripe's own sample events (pretty-printed, as Stripe
//! sends them): the webhook's signature check and envelope parse (`stripe-webhook`, per request) and
//! the worker's parse of the event with its typed object (`webhook-worker`, per message).
//!
//! The account has two signing secrets (a rotation) and the matching one is second, so a check pays
//! for a failed HMAC first, the worst case. Every figure includes dropping what the step built.
//!
//! Run: `bench/stripe-ingest` (release profile, prints a Markdown table for docs/PERFORMANCE.md), or
//! `cargo bench -p shared --bench stripe_ingest`.

use std::fmt;
use std::sync::LazyLock;

use divan::{Bencher, black_box};
use serde_json::{Value, json};
use shared::domain::secret::Secret;
use shared::stripe::event::{Event, Payload};
use shared::stripe::signature;

const SAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stripe/sample-events");
const OLD_SECRET: &str = "whsec_old_rotated_away_0123456789";
const SECRET: &str = "whsec_daily_main_0123456789abcdef";
/// When the events were signed; checked at the same second, well inside the tolerance.
const SIGNED_AT: i64 = 1_750_000_000;

/// A signed webhook body.
struct Sample {
    name: &'static str,
    body: Vec<u8>,
    header: String,
    kind: String,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} B)", self.name, self.body.len())
    }
}

fn load(file: &str) -> Value {
    let path = format!("{SAMPLES_DIR}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn sample(name: &'static str, event: &Value) -> Sample {
    // Stripe sends webhook bodies pretty-printed with two-space indentation, as serde_json does.
    let body = serde_json::to_vec_pretty(event).expect("serialises");
    let header = signature::sign(&body, SECRET, SIGNED_AT);
    let parsed = Event::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(verify(&body, &header), Ok(SIGNED_AT), "{name}: signature");
    assert!(!matches!(parsed.payload, Payload::Other), "{name}: the worker applies it");
    Sample { name, body, header, kind: parsed.kind }
}

/// ~3 KB: `customer.subscription.updated`, the most frequent event, without the deprecated `plan`
/// copies (of the subscription and of its item) that current API versions no longer send.
fn subscription_updated() -> Sample {
    let mut event = load("subscription_updated.json");
    let subscription = event["data"]["object"].as_object_mut().expect("object");
    subscription.remove("plan");
    subscription["items"]["data"][0].as_object_mut().expect("item").remove("plan");
    sample("customer.subscription.updated", &event)
}

/// ~10 KB: `invoice.paid` with as many line items as make it 10 KB or more.
fn invoice_paid_10k() -> Sample {
    let mut event = load("invoice_paid.json");
    let line = event["data"]["object"]["lines"]["data"][0].clone();
    let mut n = 1;
    while serde_json::to_vec_pretty(&event).expect("serialises").len() < 10_000 {
        n += 1;
        let mut extra = line.clone();
        extra["id"] = json!(format!("{}{n}", line["id"].as_str().expect("line id")));
        let lines = &mut event["data"]["object"]["lines"];
        lines["data"].as_array_mut().expect("lines").push(extra);
        lines["total_count"] = json!(n);
    }
    sample("invoice.paid", &event)
}

static SAMPLES: LazyLock<[Sample; 2]> = LazyLock::new(|| [subscription_updated(), invoice_paid_10k()]);
static SECRETS: LazyLock<[Secret; 2]> = LazyLock::new(|| [Secret::new(OLD_SECRET), Secret::new(SECRET)]);

fn samples() -> impl Iterator<Item = &'static Sample> {
    SAMPLES.iter()
}

fn verify(body: &[u8], header: &str) -> Result<i64, signature::SignatureError> {
    signature::verify(Some(header), body, SECRETS.as_slice(), SIGNED_AT, signature::DEFAULT_TOLERANCE_SECS)
}

/// What `stripe-webhook` does with a body before queueing it: signature check, then envelope parse.
#[divan::bench(args = samples())]
fn webhook_verify_and_parse(bencher: Bencher, sample: &Sample) {
    bencher.bench(|| {
        let body = black_box(sample.body.as_slice());
        verify(body, black_box(&sample.header)).expect("valid signature");
        divan::black_box_drop(Event::check(body).expect("an event"));
    });
}

/// The signature check alone (two HMAC-SHA256 over the body: the old secret, then the matching one).
#[divan::bench(args = samples())]
fn signature_verify(bencher: Bencher, sample: &Sample) {
    bencher.bench(|| verify(black_box(&sample.body), black_box(&sample.header)).expect("valid signature"));
}

/// The envelope check alone, as ingestion does it (`data.object` skipped over, not built).
#[divan::bench(args = samples())]
fn event_check(bencher: Bencher, sample: &Sample) {
    bencher.bench(|| divan::black_box_drop(Event::check(black_box(&sample.body)).expect("an event")));
}

/// The worker's parse of a message without the type: the envelope (`data.object` kept as a slice of
/// the body), then the typed object from that slice.
#[divan::bench(args = samples())]
fn event_parse(bencher: Bencher, sample: &Sample) {
    bencher.bench(|| divan::black_box_drop(Event::parse(black_box(&sample.body)).expect("an event")));
}

/// The worker's parse of a message whose header names the type, as ingestion's do: one pass.
#[divan::bench(args = samples())]
fn event_parse_as(bencher: Bencher, sample: &Sample) {
    bencher.bench(|| {
        divan::black_box_drop(Event::parse_as(black_box(&sample.body), black_box(&sample.kind)).expect("an event"))
    });
}

fn main() {
    LazyLock::force(&SAMPLES);
    // Each call takes microseconds: 1,000 samples of 10 calls each steady the median and mean;
    // `--sample-count` and `--sample-size` override them.
    divan::Divan::default().sample_count(1000).sample_size(10).config_with_args().main();
}
