//! Issue 7's catch-up: after an outage, the events Stripe still holds from the last applied one on (less
//! a margin) and those it never delivered are listed (only the types the CRM applies, twenty per
//! request at most) and queued like webhooks; the worker applies exactly the missing ones, the ones the
//! ledger holds are not queued again, and a gap near or past Stripe's 30 days is warned of. A gap the
//! worker sees in an account's live events is caught up without anyone asking.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared::catch_up::{self, CatchUpError, MARGIN_SECS, Request};
use shared::domain::ids::AccountKey;
use shared::jobs::{JobMessage, JobWorker};
use shared::queue::worker::{BatchHandler, drain};
use shared::queue::{EVENTS, JOBS, Received};
use shared::store::Store;
use shared::store::now_epoch;
use shared::store::repo::sync_stats;
use shared::sync::Outcome;
use shared::sync::envelope::{self, Header, Provider};
use support::stripe_world::{World, customer, event, invoice, subscription};

fn request(world: &World, account: &str, since: Option<i64>) -> Request {
    Request {
        publication: world.publication.clone(),
        account: AccountKey::parse(account).unwrap(),
        since,
        dry_run: false,
    }
}

/// An event as the fake Stripe lists it: `pending` webhooks still to deliver.
fn listed(id: &str, kind: &str, created: i64, object: Value, pending: i64) -> Value {
    let mut e = event(id, kind, created, object, None);
    e["pending_webhooks"] = json!(pending);
    e
}

/// Applies events through the worker's batch handler, as its queue would (so sync health sees them).
async fn apply_through_worker(world: &World, events: &[&Value]) {
    let header = Header {
        provider: Provider::Stripe,
        publication: world.publication.clone(),
        account: Some(AccountKey::parse("main").unwrap()),
        received_at: now_epoch(),
        received_at_us: None,
        event_id: None,
        event_type: None,
    };
    let batch: Vec<Received> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Received {
            id: format!("m{i}"),
            receipt: format!("r{i}"),
            body: envelope::encode(&header, &e.to_string()),
            receive_count: 1,
        })
        .collect();
    assert!(world.worker.handle(&batch).await.is_empty(), "every event applied");
}

/// Catches up the main account from its last applied event, on the world's in-process queue.
async fn catch_up_main(world: &World) -> Result<catch_up::Report, CatchUpError> {
    let request = request(world, "main", None);
    catch_up::run(
        world.store.as_ref(),
        Arc::new(world.stripe.client()),
        world.state.queue.as_ref(),
        &request,
        now_epoch(),
    )
    .await
}

async fn last_applied_at(world: &World) -> Option<i64> {
    let markers = sync_stats::markers(world.store.as_ref(), &world.publication).await.unwrap();
    markers.into_iter().find(|m| m.stage == sync_stats::Stage::Applied).and_then(|m| m.last.event_at)
}

async fn catch_up_applies_exactly_the_missed_events(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let t0 = now_epoch() - 2 * 86_400;
    let reader = customer("cus_cu1", "caught@example.com", "Caught Up");
    let price = support::stripe_world::price("price_cu", "prod_cu", 999, "month");
    let sub = subscription("sub_cu1", "cus_cu1", "active", price, t0 + 60, (t0 + 60, t0 + 60 + 30 * 86_400));
    let paid = invoice("in_cu1", "cus_cu1", "sub_cu1", "paid", 999, t0 + 3_600);
    let other = customer("cus_cu2", "never-delivered@example.com", "Never Delivered");
    world.stripe.put_objects([reader.clone(), sub.clone(), paid.clone(), other.clone()]);

    // Applied before the outage: the customer, then its subscription (the last event applied).
    let created = listed("evt_cu_created", "customer.created", t0, reader.clone(), 0);
    let started = listed("evt_cu_sub", "customer.subscription.created", t0 + 60, sub, 0);
    apply_through_worker(&world, &[&created, &started]).await;
    assert_eq!(last_applied_at(&world).await, Some(t0 + 60));
    // During the outage: a payment never delivered; an older customer Stripe never managed to deliver;
    // an older event that was delivered (before the last applied one, outside the margin); a type the
    // CRM does not apply.
    let invoice_paid = listed("evt_cu_paid", "invoice.paid", t0 + 3_600, paid, 1);
    let undelivered = listed("evt_cu_old", "customer.created", t0 - 86_400, other, 2);
    let mut renamed = reader.clone();
    renamed["name"] = json!("Old Name");
    let delivered_old = listed("evt_cu_delivered", "customer.updated", t0 - 3_600, renamed, 0);
    let payout = listed("evt_cu_payout", "payout.paid", t0 + 100, json!({"id": "po_1", "object": "payout"}), 1);
    world.stripe.put_objects([created, started, invoice_paid.clone(), undelivered, delivered_old, payout]);

    let report = catch_up_main(&world).await.expect("catch-up runs");
    assert_eq!((report.listed, report.undelivered, report.already_applied, report.queued), (4, 1, 2, 2), "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    let queued = world.state.queue.peek(EVENTS.name, 10).await.unwrap();
    let mut types: Vec<Option<String>> =
        queued.iter().map(|m| envelope::decode(&m.body).unwrap().0.event_type).collect();
    types.sort();
    let expected = [Some("customer.created".to_owned()), Some("invoice.paid".to_owned())];
    assert_eq!(types, expected, "queued with their types: the worker reads each in one pass");
    drain(world.state.queue.as_ref(), EVENTS.name, &world.worker).await.unwrap();
    assert_eq!(world.state.queue.depth(EVENTS.dlq_name).await.unwrap(), 0);

    let record = world.record("caught@example.com").await;
    assert_eq!(record["invoices"][0]["id"], "in_cu1");
    assert_eq!(record["invoices"][0]["status"], "paid");
    assert_eq!(record["name"], "Caught Up", "the delivered older event was not listed again");
    world.record("never-delivered@example.com").await;
    assert_eq!(last_applied_at(&world).await, Some(t0 + 3_600), "sync health saw the caught-up events");

    // What was asked of Stripe: from the last applied event less the margin, the applied types only
    // (twenty at most per request), and the undelivered ones of the last 30 days.
    let requests: Vec<_> = world.stripe.requests().into_iter().filter(|r| r.path == "/v1/events").collect();
    let since = (t0 + 60 - MARGIN_SECS).to_string();
    assert!(requests.iter().any(|r| r.param("created[gte]") == Some(since.as_str())), "{requests:?}");
    assert!(requests.iter().any(|r| r.param("delivery_success") == Some("false")));
    for r in &requests {
        let types = r.params_json()["types"].as_array().cloned().unwrap_or_default();
        assert!(!types.is_empty() && types.len() <= 20, "{r:?}");
        assert!(!types.contains(&json!("payout.paid")));
    }

    // Again: everything listed is in the ledger now, nothing is queued; a redelivery is a duplicate.
    let again = catch_up_main(&world).await.unwrap();
    assert_eq!((again.queued, again.already_applied), (0, again.listed), "{again:?}");
    assert_eq!(world.deliver(&invoice_paid).await, Outcome::Duplicate);
}

async fn old_gaps_are_warned_of_and_a_start_is_required(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let now = now_epoch();
    let run = |since: Option<i64>, account: &'static str| {
        let (world, request) = (&world, request(&world, account, since));
        async move {
            let mut request = request;
            request.dry_run = true;
            let stripe = Arc::new(world.stripe.client());
            catch_up::run(world.store.as_ref(), stripe, world.state.queue.as_ref(), &request, now).await
        }
    };
    let never = run(None, "second").await;
    assert!(matches!(never, Err(CatchUpError::NoStart(_))), "{never:?}");

    let near = run(Some(now - 27 * 86_400), "main").await.unwrap();
    assert!(near.warnings.iter().any(|w| w.contains("27 days")), "{near:?}");
    assert!(near.dry_run);

    world.stripe.clear_requests();
    let gone = run(Some(now - 45 * 86_400), "main").await.unwrap();
    assert!(gone.warnings.iter().any(|w| w.contains("is gone") && w.contains("crm backfill")), "{gone:?}");
    let oldest = (now - catch_up::RETENTION_SECS).to_string();
    let requests = world.stripe.requests();
    assert!(requests.iter().all(|r| r.param("created[gte]") == Some(oldest.as_str())), "{requests:?}");
    assert_eq!(world.state.queue.depth(EVENTS.name).await.unwrap(), 0, "a dry run queues nothing");

    // The same through stripe-catch-up's route, which queues for webhook-worker.
    let missed = listed("evt_cu_route", "customer.created", now - 600, customer("cus_cu9", "r@example.com", "R"), 1);
    world.stripe.put_object(missed);
    let path =
        |account: &str, query: &str| format!("/admin/publications/daily/stripe-accounts/{account}/catch-up{query}");
    let since = shared::domain::record::rfc3339(now - 3_600).unwrap();
    let (status, body) = support::send(&world.state, "POST", &path("main", &format!("?since={since}")), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["listed"].as_u64(), body["queued"].as_u64(), body["dryRun"].as_bool()),
        (Some(1), Some(1), Some(false))
    );
    assert_eq!(world.state.queue.depth(EVENTS.name).await.unwrap(), 1);
    let (status, body) = support::send(&world.state, "POST", &path("second", ""), None).await;
    assert_eq!(status, 400, "no event applied yet and no since: {body}");
    assert_eq!(support::send(&world.state, "POST", &path("nope", ""), None).await.0, 404);
    assert_eq!(support::send(&world.state, "POST", &path("main", "?since=yesterday"), None).await.0, 400);
}

/// Sync health starts a catch-up itself: when a live event follows the account's previous applied one
/// after an hour or more, the worker queues a catch-up of the gap on the jobs queue, and the jobs worker
/// (the `backfill` Lambda, `crm serve`) lists and queues what was missed.
async fn a_gap_in_live_events_is_caught_up_automatically(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let now = now_epoch();
    let reader = customer("cus_gap", "gap@example.com", "Gap Reader");
    let price = support::stripe_world::price("price_gap", "prod_gap", 1_500, "month");
    let sub = subscription("sub_gap", "cus_gap", "active", price, now - 3 * 3_600, (now - 3 * 3_600, now + 86_400));
    let paid = invoice("in_gap", "cus_gap", "sub_gap", "paid", 1_500, now - 2 * 3_600);
    world.stripe.put_objects([reader.clone(), sub.clone(), paid.clone()]);
    let before = listed("evt_gap_sub", "customer.subscription.created", now - 3 * 3_600, sub, 0);
    let created = listed("evt_gap_cus", "customer.created", now - 3 * 3_600 - 10, reader.clone(), 0);
    let missed = listed("evt_gap_paid", "invoice.paid", now - 2 * 3_600, paid, 1);
    let mut renamed = reader.clone();
    renamed["name"] = json!("Gap Reader Jr");
    let live = listed("evt_gap_live", "customer.updated", now - 5, renamed.clone(), 0);
    renamed["name"] = json!("Gap Reader III");
    let next = listed("evt_gap_next", "customer.updated", now - 2, renamed.clone(), 0);
    renamed["name"] = json!("Gap Reader IV");
    let last = listed("evt_gap_last", "customer.updated", now - 1, renamed, 0);
    world.stripe.put_objects([created.clone(), before.clone(), missed, live.clone(), next.clone()]);
    let jobs_waiting = || async { world.state.queue.depth(JOBS.name).await.unwrap() };

    apply_through_worker(&world, &[&created, &before]).await;
    assert_eq!(jobs_waiting().await, 0, "no previous event: nothing to catch up");
    apply_through_worker(&world, &[&live]).await;
    let batch = world.state.queue.receive(JOBS.name, 10, Duration::ZERO).await.unwrap();
    let queued: Vec<JobMessage> = batch.iter().map(|m| serde_json::from_str(&m.body).unwrap()).collect();
    let since = now - 3 * 3_600 - MARGIN_SECS;
    assert_eq!(
        queued,
        [JobMessage::CatchUp {
            publication: world.publication.clone(),
            account: AccountKey::parse("main").unwrap(),
            since
        }]
    );
    apply_through_worker(&world, &[&next]).await;
    assert_eq!(jobs_waiting().await, 0, "three seconds after the last one: no gap");

    let jobs =
        JobWorker::new(world.store.clone(), Arc::new(world.stripe.client()), world.state.queue.clone(), Duration::ZERO);
    assert!(jobs.handle(&batch).await.is_empty(), "the catch-up ran");
    assert_eq!(world.state.queue.depth(EVENTS.name).await.unwrap(), 1, "only the missed payment was queued");
    drain(world.state.queue.as_ref(), EVENTS.name, &world.worker).await.unwrap();
    let record = world.record("gap@example.com").await;
    assert_eq!(
        (record["invoices"][0]["id"].as_str(), record["name"].as_str()),
        (Some("in_gap"), Some("Gap Reader III"))
    );
    assert_eq!(jobs_waiting().await, 0, "the caught-up event is not live: no second catch-up");
    apply_through_worker(&world, &[&last]).await;
    assert_eq!(jobs_waiting().await, 0, "the late caught-up event did not move the account back: no gap");
    let requests: Vec<_> = world.stripe.requests().into_iter().filter(|r| r.path == "/v1/events").collect();
    assert!(requests.iter().any(|r| r.param("created[gte]") == Some(since.to_string().as_str())), "{requests:?}");
}

for_each_store!(
    catch_up_applies_exactly_the_missed_events,
    old_gaps_are_warned_of_and_a_start_is_required,
    a_gap_in_live_events_is_caught_up_automatically
);
