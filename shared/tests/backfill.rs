//! Issue 7's backfill acceptance: a fake Stripe account of 5,000 customers (subscriptions, invoices,
//! charges, refunds; pages of 100; a 429 now and then) is imported completely into the records the
//! webhook path builds; a run killed halfway and resumed gives exactly the records of a run that was
//! not; webhooks newer than the listing win over it, older ones lose; history is dated when it happened.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use shared::backfill::{BackfillError, Runner, Stop};
use shared::domain::ids::{AccountKey, PublicationId};
use shared::jobs::{self as jobs_queue, JobMessage, JobWorker};
use shared::queue::JOBS;
use shared::store::Store;
use shared::store::repo::backfill::{self as jobs, BackfillJob, JobState, ObjectKind};
use support::stripe_account;
use support::stripe_world::{self as sw, PUBLICATION, World};

fn main_account() -> AccountKey {
    AccountKey::parse("main").unwrap()
}

fn publication() -> PublicationId {
    PublicationId::parse(PUBLICATION).unwrap()
}

/// Every record of the publication as the API shows it, keyed by Stripe customer id, without what
/// differs between two runs (the CRM's ids and times).
async fn records(world: &World) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_deref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (_, page) = world.get(&format!("/admin/publications/{PUBLICATION}/customers?limit=200{after}")).await;
        for summary in page["data"].as_array().unwrap() {
            let id = summary["id"].as_str().unwrap();
            let (_, mut record) =
                world.get(&format!("/admin/publications/{PUBLICATION}/customers/{id}?activitiesLimit=50")).await;
            let key = record["stripeCustomerIds"]["main"].as_str().unwrap_or(id).to_owned();
            let top = record.as_object_mut().unwrap();
            for volatile in ["id", "createdAt", "updatedAt"] {
                top.remove(volatile);
            }
            out.insert(key, record);
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

async fn run_to_end(runner: &Runner) -> BackfillJob {
    runner.run(&publication(), &main_account(), &Stop::never(), &|_| {}).await.expect("backfill runs")
}

/// A publication whose main Stripe account holds `customers` customers' history.
async fn seeded_world(store: Arc<dyn Store>, customers: usize) -> (World, Arc<Runner>) {
    let world = World::new(store.clone()).await;
    world.stripe.put_objects(stripe_account::objects(customers));
    world.stripe.set_account_created(stripe_account::START - 86_400);
    let runner = Arc::new(Runner::new(store, Arc::new(world.stripe.client())));
    (world, runner)
}

/// Starts the account's backfill and kills its runner once half the customers are in (mid-page: the
/// task is aborted, no checkpoint for the page in flight), then lets the lease run out.
async fn start_and_kill_halfway(world: &World, runner: &Arc<Runner>, customers: usize) {
    let (job, created) = runner.start(&publication(), &main_account(), Some(100)).await.unwrap();
    assert!(created);
    assert_eq!((job.state, job.rate), (JobState::Running, 100));
    let halfway = Arc::new(tokio::sync::Notify::new());
    let task = {
        let (runner, halfway) = (runner.clone(), halfway.clone());
        let seen = AtomicBool::new(false);
        tokio::spawn(async move {
            let progress = move |job: &BackfillJob| {
                let done = job.stages.iter().find(|s| s.kind == ObjectKind::Customers).map_or(0, |s| s.objects);
                if done as usize >= customers / 2 && !seen.swap(true, Ordering::SeqCst) {
                    halfway.notify_one();
                }
            };
            runner.run(&publication(), &main_account(), &Stop::never(), &progress).await
        })
    };
    halfway.notified().await;
    task.abort();
    let _ = task.await;
    let stopped = jobs::get(world.store.as_ref(), &publication(), &main_account()).await.unwrap().unwrap();
    let stage = stopped.value.stages.iter().find(|s| s.kind == ObjectKind::Customers).unwrap().clone();
    assert!(!stage.done && stage.objects > 0, "{stage:?}");
    // A second runner is refused while the killed one's lease lasts...
    let refused = runner.run(&publication(), &main_account(), &Stop::never(), &|_| {}).await;
    assert!(matches!(refused, Err(BackfillError::Busy { .. })), "{refused:?}");
    // ... and may take over once it has run out (moved into the past here).
    let mut expired = stopped.value;
    expired.lease_until = 0;
    jobs::save(world.store.as_ref(), &publication(), &expired, Some(stopped.version)).await.unwrap();
}

/// What customer `i`'s record must show, from the objects the fake Stripe holds.
fn check_record(i: usize, record: &Value) {
    let price = stripe_account::price_of(i);
    let currency = price["currency"].as_str().unwrap();
    let amount = price["unit_amount"].as_i64().unwrap();
    let monthly = if price["recurring"]["interval"] == "year" { amount / 12 } else { amount };
    let status = stripe_account::status(i);
    let who = format!("customer {i}: {record}");
    assert_eq!(record["email"], format!("reader{i}@example.com"), "{who}");
    assert_eq!(record["name"], format!("Reader {i}"), "{who}");
    let (payment, mrr) = match status {
        "canceled" => ("cancelled", json!([])),
        "past_due" => ("overdue", json!([{"currency": currency, "amount": monthly}])),
        _ => ("current", json!([{"currency": currency, "amount": monthly}])),
    };
    assert_eq!((&record["paymentStatus"], &record["mrr"]), (&json!(payment), &mrr), "{who}");
    let paid = if status == "past_due" { 0 } else { amount };
    let refunded = if stripe_account::has_refund(i) { 250 } else { 0 };
    let ltv = if paid - refunded == 0 { json!([]) } else { json!([{"currency": currency, "amount": paid - refunded}]) };
    assert_eq!(record["lifetimeValue"], ltv, "{who}");
    let invoices: Vec<&str> =
        record["invoices"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(invoices, [format!("in_bf{i:05}")], "{who}");
    assert_eq!(record["subscriptions"][0]["id"], format!("sub_bf{i:05}"), "{who}");
    // History is dated when it happened, not when it was imported.
    let started = record["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "subscription_started")
        .unwrap_or_else(|| panic!("no subscription_started: {who}"));
    let at = time::OffsetDateTime::from_unix_timestamp(stripe_account::START + i as i64 * 600 + 60).unwrap();
    let at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(started["at"], json!(at), "{who}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_customers_are_backfilled_completely_across_an_interruption() {
    const CUSTOMERS: usize = 5_000;
    let store = support::embedded_store().store;
    let (world, runner) = seeded_world(store, CUSTOMERS).await;
    world.stripe.rate_limit_every(23);
    start_and_kill_halfway(&world, &runner, CUSTOMERS).await;
    let job = run_to_end(&runner).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert!(job.stages.iter().all(|s| s.done && s.skipped == 0), "{:?}", job.stages);
    let count = |kind| job.stages.iter().find(|s| s.kind == kind).unwrap().objects as usize;
    assert!(count(ObjectKind::Customers) >= CUSTOMERS, "every customer applied");
    assert_eq!(count(ObjectKind::Subscriptions), CUSTOMERS);
    assert_eq!((count(ObjectKind::Products), count(ObjectKind::Prices)), (2, 3));
    assert_eq!(job.history_from, Some(stripe_account::START - 86_400));
    assert!(world.stripe.rate_limited() > 0, "the fake answered 429 now and then");
    // Pages of 100, each after the last object of the one before; subscriptions of every status.
    let requests = world.stripe.requests();
    let lists: Vec<_> = requests.iter().filter(|r| r.path == "/v1/customers").collect();
    assert!(lists.iter().all(|r| r.param("limit") == Some("100")));
    let cursor = format!("cus_bf{:05}", CUSTOMERS - 100);
    assert!(lists.iter().any(|r| r.param("starting_after") == Some(cursor.as_str())), "{cursor}");
    assert!(requests.iter().any(|r| r.path == "/v1/subscriptions" && r.param("status") == Some("all")));
    // Refunds come with their charge: no request per refund to learn whose it is.
    assert!(requests.iter().any(|r| r.path == "/v1/refunds" && r.param("expand[0]") == Some("data.charge")));
    assert!(!requests.iter().any(|r| r.path.starts_with("/v1/charges/")), "a charge was read one by one");

    let imported = records(&world).await;
    assert_eq!(imported.len(), CUSTOMERS);
    for i in 0..CUSTOMERS {
        check_record(i, &imported[&format!("cus_bf{i:05}")]);
    }

    // A second backfill changes nothing and duplicates nothing.
    let (_, created) = runner.start(&publication(), &main_account(), Some(100)).await.unwrap();
    assert!(created, "a finished job is followed by a new one");
    assert_eq!(run_to_end(&runner).await.state, JobState::Done);
    assert!(records(&world).await == imported, "a second backfill changed records");
}

/// A backfill killed halfway and resumed leaves exactly the records of one that ran straight through.
async fn a_resumed_backfill_equals_an_uninterrupted_one(store: Arc<dyn Store>) {
    const CUSTOMERS: usize = 400;
    let (world, runner) = seeded_world(store, CUSTOMERS).await;
    start_and_kill_halfway(&world, &runner, CUSTOMERS).await;
    assert_eq!(run_to_end(&runner).await.state, JobState::Done);

    let (reference, straight) = seeded_world(support::embedded_store().store, CUSTOMERS).await;
    straight.start(&publication(), &main_account(), Some(100)).await.unwrap();
    assert_eq!(run_to_end(&straight).await.state, JobState::Done);
    let (resumed, uninterrupted) = (records(&world).await, records(&reference).await);
    assert_eq!(resumed.len(), CUSTOMERS);
    for (id, record) in &uninterrupted {
        assert_eq!(resumed.get(id), Some(record), "{id}");
    }
}

for_each_store!(a_resumed_backfill_equals_an_uninterrupted_one);

/// Webhooks win over the listing when newer, and lose when older, before and after the backfill.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn newer_webhooks_win_over_the_listing() {
    let (world, runner) = seeded_world(support::embedded_store().store, 20).await;
    let now = shared::store::now_epoch();
    let with_status = |i: usize, status: &str| {
        let mut sub = stripe_account::customer_objects(i)[1].clone();
        sub["status"] = json!(status);
        sub
    };
    let update =
        |id: &str, created: i64, sub: Value| sw::event(id, "customer.subscription.updated", created, sub, None);
    // Before the backfill: one event from the future (newer than any listing), one from the past.
    world.deliver(&update("evt_future1", now + 3_600, with_status(1, "unpaid"))).await;
    world.deliver(&update("evt_past2", stripe_account::START, with_status(2, "past_due"))).await;
    runner.start(&publication(), &main_account(), Some(100)).await.unwrap();
    assert_eq!(run_to_end(&runner).await.state, JobState::Done);
    // After it: an event older than the listing, and one newer.
    world.deliver(&update("evt_late3", now - 60, with_status(3, "past_due"))).await;
    world.deliver(&update("evt_new4", now + 7_200, with_status(4, "past_due"))).await;
    let status = |record: &Value| record["subscriptions"][0]["status"].as_str().unwrap().to_owned();
    let records = records(&world).await;
    assert_eq!(status(&records["cus_bf00001"]), "unpaid", "the newer webhook stays");
    assert_eq!(status(&records["cus_bf00002"]), "active", "the listing replaces an older webhook's state");
    assert_eq!(status(&records["cus_bf00003"]), "active", "a late webhook older than the listing loses");
    assert_eq!(status(&records["cus_bf00004"]), "past_due", "a newer webhook wins after the backfill");
}

/// Under Lambda a slice stops at its deadline and queues the next; slices run until the job is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slices_queue_the_next_until_the_job_is_done() {
    let (world, _) = seeded_world(support::embedded_store().store, 300).await;
    let stripe: Arc<dyn shared::stripe::client::StripeApi> = Arc::new(world.stripe.client());
    Runner::new(world.store.clone(), stripe.clone()).start(&publication(), &main_account(), Some(100)).await.unwrap();
    let worker = JobWorker::new(world.store.clone(), stripe, world.state.queue.clone(), std::time::Duration::ZERO);
    let message = JobMessage::Backfill { publication: publication(), account: main_account() };
    jobs_queue::enqueue(world.state.queue.as_ref(), &message, 0).await.unwrap();
    let mut slices = 0;
    loop {
        let batch = world.state.queue.receive(JOBS.name, 10, std::time::Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert_eq!(batch.len(), 1, "one slice at a time");
        // A deadline already passed: the slice applies one page, checkpoints and hands over.
        assert!(worker.handle_until(&batch, tokio::time::Instant::now()).await.is_empty());
        let receipts: Vec<String> = batch.iter().map(|m| m.receipt.clone()).collect();
        world.state.queue.delete(JOBS.name, &receipts).await.unwrap();
        slices += 1;
        assert!(slices < 100, "the job never finished");
    }
    let job = jobs::get(world.store.as_ref(), &publication(), &main_account()).await.unwrap().unwrap().value;
    assert_eq!(job.state, JobState::Done);
    assert!(slices > 5, "{slices} slices: each stopped at its deadline");
    assert_eq!(records(&world).await.len(), 300);
}
