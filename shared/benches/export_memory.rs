//! Peak memory of an export of a large publication: `load` writes `CRM_BENCH_CUSTOMERS` customers
//! (default 1,000,000, each with a subscription) into an embedded store at `CRM_BENCH_DIR`; `export`
//! streams the customers export of that store to /dev/null and prints the process's peak resident
//! memory (VmHWM) and the bytes written. Two processes, so the load's memory does not count.
//!
//! Run: `bench/export-memory` (release profile).

use std::io::Write;
use std::time::Instant;

use shared::domain::billing::{ItemState, PriceState, SubscriptionState, Tracked};
use shared::domain::customer::Customer;
use shared::domain::ids::{AccountKey, Email, PublicationId};
use shared::domain::money::Currency;
use shared::export::{Export, Format, Kind};
use shared::store::embedded::{EmbeddedStore, Options};
use shared::store::repo::customers;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn customer(publication: &PublicationId, n: usize) -> Customer {
    let mut c = Customer::new(publication.clone(), 1_700_000_000 + n as i64);
    c.email = Some(Email::parse(&format!("reader{n:07}@example.com")).expect("email"));
    c.name = Some(format!("Reader {n}, \"the\" {}", n % 97));
    let state = SubscriptionState {
        account: AccountKey::parse("main").expect("key"),
        id: format!("sub_{n:07}"),
        status: "active".into(),
        items: vec![ItemState {
            price: PriceState {
                price_id: "price_monthly".into(),
                product_id: Some("prod_digital".into()),
                nickname: None,
                unit_amount: Some(1500),
                currency: Some(Currency::parse("usd").expect("usd")),
                interval: Some("month".into()),
                interval_count: 1,
                metered: false,
            },
            quantity: 1,
        }],
        current_period_start: Some(1_700_000_000),
        current_period_end: Some(1_702_592_000),
        cancel_at_period_end: false,
        cancel_at: None,
        canceled_at: None,
        ended_at: None,
        trial_end: None,
        created: Some(1_700_000_000),
        schedule_id: None,
        discounts: vec![],
    };
    c.stripe.subscriptions.insert(state.id.clone(), Tracked { as_of: 1_700_000_000, state });
    c
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().find(|a| a == "load" || a == "export").unwrap_or_else(|| "export".into());
    let dir = std::env::var("CRM_BENCH_DIR").expect("CRM_BENCH_DIR: where the bench store lives");
    let count: usize = std::env::var("CRM_BENCH_CUSTOMERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let path = std::path::Path::new(&dir).join("crm.redb");
    // As `crm export` opens it: a 16 MiB page cache (the load keeps redb's default).
    let store = if mode == "load" {
        EmbeddedStore::open(&path).expect("open redb")
    } else {
        EmbeddedStore::open_with(&path, &Options { cache_bytes: Some(16 << 20), ..Options::default() })
            .expect("open redb")
    };
    let publication = PublicationId::parse("bench").expect("id");
    let started = Instant::now();
    if mode == "load" {
        use futures::StreamExt;
        futures::stream::iter(0..count)
            .for_each_concurrent(32, |n| {
                let store = &store;
                let c = customer(&publication, n);
                async move { customers::create(store, &c).await.expect("create") }
            })
            .await;
        eprintln!("loaded {count} customers in {:.1} s", started.elapsed().as_secs_f64());
        return;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create("/dev/null").expect("/dev/null"));
    let mut export = Export::new(publication, Kind::Customers, Format::Csv);
    let mut bytes = 0usize;
    while let Some(chunk) = export.next_chunk(&store).await.expect("export") {
        bytes += chunk.len();
        out.write_all(&chunk).expect("write");
    }
    println!(
        "| customers (csv) | {count} | {:.1} MB | {:.1} s | {:.1} MiB |",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        peak_rss_kib() as f64 / 1024.0
    );
}
