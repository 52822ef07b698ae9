//! What the revenue answer costs for a large publication: `CRM_BENCH_CUSTOMERS` customers (default
//! 100,000) with `CRM_BENCH_MOVEMENTS` MRR movements (default 1,000,000) over three years and two
//! currencies, in the embedded store (default) or in DynamoDB (`CRM_BENCH_STORE=dynamodb`, at
//! `AWS_ENDPOINT_URL`). Times: the first answer (folds every movement into the stored summary once),
//! the settled answer (summary read plus eight empty shard queries), and an answer with a minute of
//! fresh traffic (1,000 movements recorded since the fold). Prints a Markdown table.
//!
//! Run: `bench/revenue` (release profile), or `cargo bench -p shared --bench revenue_report`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::domain::ids::{CustomerId, PublicationId};
use shared::domain::money::Currency;
use shared::domain::revenue::{Movement, MovementKind};
use shared::store::Store;
use shared::store::repo::revenue::{self, SETTLE_MS};

const START: i64 = 1_704_067_200; // 2024-01-01
const MONTH: i64 = 30 * 86_400;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `n`th movement of customer `c`: joins, then pays monthly, now and then changes plan or leaves
/// and comes back; one customer in five pays in euros.
fn movement(c: usize, n: usize, customer: &CustomerId, mrr: &mut i64, ever: &mut bool) -> Movement {
    let currency = Currency::parse(if c.is_multiple_of(5) { "eur" } else { "usd" }).expect("currency");
    let at = START + (c as i64 % 12) * MONTH + n as i64 * MONTH + (c as i64 % 86_400);
    let before = *mrr;
    let (after, kind) = match (before, n % 7) {
        (0, _) => (1500, Some(if *ever { MovementKind::Reactivation } else { MovementKind::New })),
        (_, 3) => (before + 500, Some(MovementKind::Expansion)),
        (_, 5) if before > 1000 => (before - 500, Some(MovementKind::Contraction)),
        (_, 6) if c.is_multiple_of(3) => (0, Some(MovementKind::Churn)),
        _ => (before, None),
    };
    *mrr = after;
    *ever = true;
    Movement {
        at,
        customer: customer.clone(),
        currency,
        mrr_before: before,
        mrr_after: after,
        subscriptions_before: u32::from(before > 0),
        subscriptions_after: u32::from(after > 0),
        cash: if kind.is_none() { after } else { 0 },
        kind,
        event_id: format!("evt_{c}_{n}"),
    }
}

async fn open_store() -> (Arc<dyn Store>, Option<tempfile::TempDir>, &'static str) {
    if std::env::var("CRM_BENCH_STORE").as_deref() == Ok("dynamodb") {
        let sdk = shared::aws::sdk_config().await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let table = format!("bench-revenue-{}", ulid::Ulid::new().to_string().to_lowercase());
        shared::store::schema::create_table(&client, &table).await.expect("create the bench table");
        (Arc::new(shared::store::dynamo::DynamoStore::new(client, table)), None, "DynamoDB (emulator)")
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = shared::store::embedded::EmbeddedStore::open(&dir.path().join("bench.redb")).expect("open redb");
        (Arc::new(store), Some(dir), "embedded (redb)")
    }
}

/// Writes the movements, 100 to a transaction (the store's limit, DynamoDB's), 16 transactions at once.
async fn load(
    store: &Arc<dyn Store>,
    publication: &PublicationId,
    customers: usize,
    movements: usize,
    recorded_ms: i64,
) {
    let per_customer = movements.div_ceil(customers);
    let (per_write, parallel) = (100, 16);
    let mut ops = Vec::with_capacity(movements);
    let mut written = 0;
    for c in 0..customers {
        let customer = CustomerId::generate();
        let (mut mrr, mut ever) = (0, false);
        for n in 0..per_customer {
            if written == movements {
                break;
            }
            let m = movement(c, n, &customer, &mut mrr, &mut ever);
            ops.push(revenue::put(publication, &m, recorded_ms + written as i64).expect("movement op"));
            written += 1;
        }
    }
    let mut batches = Vec::new();
    let mut rest = ops.into_iter();
    loop {
        let batch: Vec<_> = rest.by_ref().take(per_write).collect();
        if batch.is_empty() {
            break;
        }
        batches.push(batch);
    }
    use futures::StreamExt;
    futures::stream::iter(batches)
        .for_each_concurrent(parallel, |batch| {
            let store = store.clone();
            async move { store.write(batch).await.expect("write movements") }
        })
        .await;
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let customers = env_number("CRM_BENCH_CUSTOMERS", 100_000);
    let movements = env_number("CRM_BENCH_MOVEMENTS", 1_000_000);
    let (store, _dir, kind) = open_store().await;
    let publication = PublicationId::parse("bench").expect("id");
    let now_ms = 1_800_000_000_000;

    let started = Instant::now();
    load(&store, &publication, customers, movements, now_ms - 100 * SETTLE_MS - movements as i64).await;
    eprintln!(
        "loaded {movements} movements of {customers} customers into {kind} in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let answer = |at: i64| {
        let store = store.clone();
        let publication = publication.clone();
        async move {
            let t = Instant::now();
            let summary = revenue::summary(store.as_ref(), &publication, at).await.expect("summary");
            let report = summary.report("2024-01", "2027-12");
            let took = t.elapsed();
            let mrr: i64 = report.currencies.iter().map(|c| c.mrr).sum();
            (took, mrr)
        }
    };
    let (first, mrr) = answer(now_ms).await;
    let mut settled = Vec::new();
    for _ in 0..20 {
        let (took, again) = answer(now_ms).await;
        assert_eq!(again, mrr, "every answer agrees");
        settled.push(took);
    }
    settled.sort();
    // A minute of traffic since the fold: 1,000 fresh movements to fold into each answer.
    let mut ops = Vec::new();
    let customer = CustomerId::generate();
    let (mut m, mut ever) = (0, false);
    for n in 0..1000 {
        ops.push(
            revenue::put(&publication, &movement(7, n, &customer, &mut m, &mut ever), now_ms + n as i64).expect("op"),
        );
    }
    for chunk in ops.chunks(100) {
        store.write(chunk.to_vec()).await.expect("write fresh");
    }
    let mut fresh = Vec::new();
    for _ in 0..20 {
        fresh.push(answer(now_ms + 1000).await.0);
    }
    fresh.sort();

    println!(
        "| store | customers | movements | first answer (folds all) | settled answer, median (p95) | with 1,000 fresh movements, median (p95) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| {kind} | {customers} | {movements} | {} | {} ({}) | {} ({}) |",
        ms(first),
        ms(settled[settled.len() / 2]),
        ms(settled[settled.len() * 95 / 100]),
        ms(fresh[fresh.len() / 2]),
        ms(fresh[fresh.len() * 95 / 100]),
    );
    let verdict = if settled[settled.len() / 2] < Duration::from_millis(200) { "met" } else { "NOT met" };
    eprintln!(
        "target: revenue answer under 200 ms (embedded): settled median {}: {verdict}",
        ms(settled[settled.len() / 2])
    );
}
