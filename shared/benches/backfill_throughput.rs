//! Backfill throughput against the request rate it keeps under: a fake Stripe account of
//! `CRM_BENCH_CUSTOMERS` customers (default 5,000: ~15,600 objects in fixture shapes, served over HTTP
//! by the test suite's fake Stripe) imported into a fresh embedded store (or DynamoDB with
//! `CRM_BENCH_STORE=dynamodb`) at each rate of `CRM_BENCH_RATES` (default `25,90`). Prints a Markdown
//! table: objects/s against the ceiling of 100 objects per request at that rate (without its header
//! when `CRM_BENCH_NO_HEADER` is set). `bench/backfill` runs each rate in a process of its own: a run
//! shares the process with the stores and servers of the runs before it.
//!
//! Run: `bench/backfill` (release profile), or `cargo bench -p shared --bench backfill_throughput`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use shared::backfill::{Runner, Stop};
use shared::domain::ids::{AccountKey, PublicationId};
use shared::store::Store;
use shared::stripe::client::HttpStripe;

fn env_text(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

async fn store() -> (Arc<dyn Store>, &'static str) {
    if env_text("CRM_BENCH_STORE", "embedded") == "dynamodb" {
        (support::dynamo_store().await.store, "DynamoDB (emulator)")
    } else {
        // The directory lives as long as the process: the bench measures, then exits.
        let kept = Box::leak(Box::new(support::embedded_store()));
        (kept.store.clone(), "embedded")
    }
}

#[tokio::main]
async fn main() {
    let customers: usize = env_text("CRM_BENCH_CUSTOMERS", "5000").parse().expect("CRM_BENCH_CUSTOMERS is a number");
    let rates: Vec<u32> = env_text("CRM_BENCH_RATES", "25,90")
        .split(',')
        .map(|r| r.trim().parse().expect("CRM_BENCH_RATES lists numbers"))
        .collect();
    let publication = PublicationId::parse(support::stripe_world::PUBLICATION).expect("publication id");
    let account = AccountKey::parse("main").expect("account key");
    if std::env::var("CRM_BENCH_NO_HEADER").is_err() {
        println!(
            "| store | customers | objects | rate (req/s) | requests | time | objects/s | ceiling (100/request) | of ceiling |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for rate in rates {
        let (store, kind) = store().await;
        let world = support::stripe_world::World::new(store.clone()).await;
        world.stripe.put_objects(support::stripe_account::objects(customers));
        let api = Arc::new(HttpStripe::new(world.stripe.base_url()).expect("client for the fake Stripe"));
        let runner = Runner::new(store, api);
        runner.start(&publication, &account, Some(rate)).await.expect("start");
        let began = Instant::now();
        let job = runner.run(&publication, &account, &Stop::never(), &|_| {}).await.expect("backfill");
        let secs = began.elapsed().as_secs_f64();
        let objects = job.objects();
        let per_second = objects as f64 / secs;
        let ceiling = f64::from(rate) * 100.0;
        println!(
            "| {kind} | {customers} | {objects} | {rate} | {} | {secs:.2} s | {per_second:.0} | {ceiling:.0} | {:.0} % |",
            job.requests,
            100.0 * per_second / ceiling
        );
    }
}
