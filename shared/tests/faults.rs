//! Fault injection against the DynamoDB/SQS emulator (docs/RELIABILITY.md, "Fault injection"). The
//! real `DynamoStore` and `SqsQueue` reach the emulator through `support::fault_proxy`, which answers
//! throttling and 5xx in AWS's wire format, holds answers or refuses connections; signed Stripe events
//! (and Piano's) go through the real webhook handlers and the real worker loop. Each test counts what
//! was sent, accepted (2xx) and applied, and checks that every accepted event was applied exactly
//! once: in the ledger, in each customer's record (invoices, lifetime value, timeline) and in the
//! revenue report, whose payments and MRR would count an event applied twice twice.
//! `--no-capture` prints the figures.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use shared::api::AppState;
use shared::domain::ids::AccountKey;
use shared::domain::secret::Secret;
use shared::queue::worker::{Backoff, BatchHandler, run_with_backoff};
use shared::queue::{EVENTS, QueueDef, Received};
use shared::store::Store;
use shared::store::now_epoch;
use shared::store::repo::ledger;
use shared::stripe::signature::sign;
use shared::sync::envelope::{self, Header, Provider};
use shared::sync::worker::EventWorker;
use support::fault_proxy::{Fault, FaultProxy, OpStats, Rule};
use support::stripe_world::{self as w, PUBLICATION, World};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const DAY: i64 = 86_400;
const PIANO_KEY: &str = "piano-private-key-of-the-daily-0123456789";

/// A failed message is retried at once: the faults are what is tested, not the backoff.
const AT_ONCE: Backoff = Backoff { base: Duration::ZERO, max: Duration::ZERO };

const DYNAMODB_WRITES: &[&str] = &["PutItem", "DeleteItem", "TransactWriteItems"];

/// One Stripe customer of a stream: what Stripe sends about them, what their record must show.
struct Reader {
    stripe_id: String,
    email: String,
    /// The name after the last profile event.
    name: String,
    /// The subscription's monthly price and each of the two paid invoices' amount.
    amount: i64,
    /// The customer as Stripe holds it now, for the worker's reads of a customer it meets first in an
    /// invoice or a subscription.
    profile: Value,
    events: Vec<Value>,
}

impl Reader {
    /// Reader `i`: created, subscribed, two invoices paid, renamed, and an event the CRM does not apply.
    fn new(i: usize, t0: i64) -> Self {
        let t = t0 + i as i64 * 100;
        let stripe_id = format!("cus_fault{i:03}");
        let email = format!("fault{i}@example.com");
        let amount = 900 + 100 * i as i64;
        let sub_id = format!("sub_fault{i:03}");
        let price = w::price(&format!("price_fault{i}"), "prod_fault", amount, "month");
        let sub = w::subscription(&sub_id, &stripe_id, "active", price, t + 1, (t + 1, t + 1 + 30 * DAY));
        let name = format!("Reader {i} Renamed");
        let mut profile = w::customer(&stripe_id, &email, &name);
        profile["created"] = json!(t);
        let mut first = w::customer(&stripe_id, &email, &format!("Reader {i}"));
        first["created"] = json!(t);
        let paid = |n: i64| w::invoice(&format!("in_fault{i:03}_{n}"), &stripe_id, &sub_id, "paid", amount, t + 1 + n);
        let id = |what: &str| format!("evt_fault{i:03}_{what}");
        let events = vec![
            w::event(&id("created"), "customer.created", t, first, None),
            w::event(&id("subscribed"), "customer.subscription.created", t + 1, sub, None),
            w::event(&id("paid1"), "invoice.paid", t + 2, paid(1), None),
            w::event(&id("paid2"), "invoice.paid", t + 3, paid(2), None),
            w::event(
                &id("renamed"),
                "customer.updated",
                t + 4,
                profile.clone(),
                Some(json!({"name": format!("Reader {i}")})),
            ),
            w::event(
                &id("intent"),
                "payment_intent.created",
                t + 5,
                json!({"id": id("pi"), "object": "payment_intent"}),
                None,
            ),
        ];
        Reader { stripe_id, email, name, amount, profile, events }
    }
}

/// `n` readers, their events interleaved as Stripe's concurrent deliveries would mix them.
fn stream(world: &World, n: usize) -> (Vec<Reader>, Vec<Value>) {
    let readers: Vec<Reader> = (0..n).map(|i| Reader::new(i, now_epoch() - 7_200)).collect();
    for reader in &readers {
        world.stripe.put_object(reader.profile.clone());
    }
    let longest = readers.iter().map(|r| r.events.len()).max().unwrap_or(0);
    let events = (0..longest).flat_map(|k| readers.iter().filter_map(move |r| r.events.get(k).cloned())).collect();
    (readers, events)
}

fn event_id(event: &Value) -> String {
    event["id"].as_str().expect("event id").to_owned()
}

/// What a webhook answered one delivery attempt.
async fn call(state: &AppState, function: &str, request: Request<Body>) -> StatusCode {
    let response = support::router_of(function, state.clone()).oneshot(request).await.expect("router answers");
    let status = response.status();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        assert_eq!(body, json!({"received": true}), "an accepted delivery");
    } else {
        assert!(body["error"].is_string(), "{status}: a JSON error, got {body}");
    }
    status
}

/// One delivery attempt of a Stripe event to the main account's webhook, signed as Stripe signs it.
async fn post_stripe(state: &AppState, event: &Value) -> StatusCode {
    let body = serde_json::to_vec(event).expect("event JSON");
    let request = Request::post(format!("/webhooks/stripe/{PUBLICATION}/main"))
        .header("stripe-signature", sign(&body, w::WEBHOOK_SECRET, now_epoch()))
        .body(Body::from(body))
        .expect("request");
    call(state, "stripe-webhook", request).await
}

/// One delivery attempt of a Piano event (its encrypted `data`, the same on every attempt).
async fn get_piano(state: &AppState, data: &str) -> StatusCode {
    let data: String = url::form_urlencoded::byte_serialize(data.as_bytes()).collect();
    let request =
        Request::get(format!("/webhooks/piano/{PUBLICATION}?data={data}")).body(Body::empty()).expect("request");
    call(state, "piano-webhook", request).await
}

/// What Stripe's deliveries of a stream met.
#[derive(Debug, Default)]
struct Deliveries {
    attempts: u64,
    /// Attempts answered 5xx (each then retried, as Stripe does).
    refused: u64,
    accepted: u64,
}

/// Delivers the events at once, each as Stripe does: again after every answer that is not 2xx, until
/// accepted.
async fn deliver_all(state: &AppState, events: &[Value], deadline: Instant, tally: &mut Deliveries) {
    let each = events.iter().map(|event| deliver(state, event, deadline));
    for refused in futures::future::join_all(each).await {
        tally.attempts += refused + 1;
        tally.refused += refused;
        tally.accepted += 1;
    }
}

/// Delivers one event until accepted; answers how many attempts were refused (5xx).
async fn deliver(state: &AppState, event: &Value, deadline: Instant) -> u64 {
    let mut refused = 0;
    loop {
        let status = post_stripe(state, event).await;
        if status.is_success() {
            return refused;
        }
        assert!(status.is_server_error(), "{}: a delivery is refused with 5xx only, got {status}", event["id"]);
        refused += 1;
        assert!(Instant::now() < deadline, "{} still refused at the deadline", event["id"]);
    }
}

/// The event worker, counting the messages it was given, retried and finished.
struct Counting {
    inner: EventWorker,
    handled: AtomicU64,
    failed: AtomicU64,
    /// Messages received more than once (after a failure or a lost acknowledgement).
    redelivered: AtomicU64,
    batches: Mutex<Vec<Vec<Received>>>,
    /// Message ids handled without failure.
    done: Mutex<BTreeSet<String>>,
}

impl Counting {
    fn new(inner: EventWorker) -> Arc<Self> {
        Arc::new(Counting {
            inner,
            handled: AtomicU64::default(),
            failed: AtomicU64::default(),
            redelivered: AtomicU64::default(),
            batches: Mutex::default(),
            done: Mutex::default(),
        })
    }

    fn last_batch(&self) -> Vec<Received> {
        self.batches.lock().unwrap().last().cloned().unwrap_or_default()
    }

    fn figures(&self) -> String {
        format!(
            "{} messages handled in {} batches, {} failed attempts, {} redeliveries",
            self.handled.load(Ordering::SeqCst),
            self.batches.lock().unwrap().len(),
            self.failed.load(Ordering::SeqCst),
            self.redelivered.load(Ordering::SeqCst)
        )
    }
}

#[async_trait]
impl BatchHandler for Counting {
    async fn handle(&self, batch: &[Received]) -> Vec<String> {
        self.batches.lock().unwrap().push(batch.to_vec());
        let redelivered = batch.iter().filter(|m| m.receive_count > 1).count() as u64;
        self.redelivered.fetch_add(redelivered, Ordering::SeqCst);
        let failed = self.inner.handle(batch).await;
        self.handled.fetch_add(batch.len() as u64, Ordering::SeqCst);
        self.failed.fetch_add(failed.len() as u64, Ordering::SeqCst);
        self.done.lock().unwrap().extend(batch.iter().filter(|m| !failed.contains(&m.id)).map(|m| m.id.clone()));
        failed
    }
}

/// The Stripe event id a message carries.
fn stripe_event_of(message: &Received) -> Option<String> {
    let (header, body) = envelope::decode(&message.body).ok()?;
    (header.provider == Provider::Stripe).then(|| serde_json::from_str::<Value>(body).ok().map(|e| event_id(&e)))?
}

/// Waits for `condition`, checking every 25 ms; fails with `what` past `limit`.
async fn until<F: std::future::Future<Output = bool>>(what: &str, limit: Duration, mut condition: impl FnMut() -> F) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "still waiting after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The events whose ledger entry says they were applied (read from the emulator directly).
async fn applied(store: &dyn Store, world: &World, ids: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for id in ids {
        if ledger::completed(store, &world.publication, "stripe", id).await.expect("ledger read") {
            out.insert(id.clone());
        }
    }
    out
}

/// The main Stripe account's sync-health figures of the last 24 hours.
async fn sync_figures(world: &World, provider: &str) -> Value {
    let (status, body) = world.get(&format!("/admin/publications/{PUBLICATION}/sync")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let account = (provider == "stripe").then_some("main");
    body["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["provider"] == provider && s["account"].as_str() == account))
        .map(|s| s["last24h"].clone())
        .unwrap_or_else(|| json!({"applied": 0, "ignored": 0, "duplicates": 0, "failed": 0}))
}

fn figure(figures: &Value, name: &str) -> i64 {
    figures[name].as_i64().unwrap_or_else(|| panic!("no {name} in {figures}"))
}

/// Checks every reader's record and the revenue report: each event applied exactly once. `others`:
/// customers of the publication that are not Stripe's.
async fn assert_applied_once(world: &World, readers: &[Reader], others: usize) {
    assert_eq!(world.customers().await.len(), readers.len() + others, "one customer per Stripe customer");
    for reader in readers {
        let record = world.record(&reader.email).await;
        let usd = |amount: i64| json!([{"currency": "usd", "amount": amount}]);
        assert_eq!(record["name"], reader.name.as_str(), "{record}");
        assert_eq!(record["stripeCustomerIds"], json!({"main": reader.stripe_id}), "{record}");
        assert_eq!(record["mrr"], usd(reader.amount), "{record}");
        let invoices = record["invoices"].as_array().expect("invoices");
        let paid: i64 =
            invoices.iter().filter(|i| i["status"] == "paid").map(|i| i["amountPaid"].as_i64().unwrap()).sum();
        assert_eq!(invoices.len(), 2, "{record}");
        assert_eq!(paid, 2 * reader.amount, "{record}");
        assert_eq!(record["lifetimeValue"], usd(paid), "LTV is the paid invoices, once: {record}");
        let activities = record["activities"].as_array().expect("activities");
        let objects: Vec<&str> = activities.iter().filter_map(|a| a["objectId"].as_str()).collect();
        let kinds: Vec<&str> = activities.iter().filter_map(|a| a["kind"].as_str()).collect();
        assert_eq!(activities.len(), 3, "subscription start and two payments, once each: {kinds:?}");
        let objects: BTreeSet<&str> = objects.into_iter().collect();
        let sub = reader.stripe_id.replace("cus_", "sub_");
        let invoice = |n: u8| format!("{}_{n}", reader.stripe_id.replace("cus_", "in_"));
        assert_eq!(objects, BTreeSet::from([sub.as_str(), &invoice(1), &invoice(2)]), "{kinds:?}");
        let cash: i64 = activities.iter().filter_map(|a| a["amount"]["amount"].as_i64()).sum();
        assert_eq!(cash, paid, "the payments' timeline entries: {activities:?}");
    }
    let (status, report) = world.get(&format!("/admin/publications/{PUBLICATION}/revenue")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let usd = &report["currencies"][0];
    assert_eq!(report["currencies"].as_array().map(Vec::len), Some(1), "{report}");
    let mrr: i64 = readers.iter().map(|r| r.amount).sum();
    assert_eq!(usd["mrr"], mrr, "MRR counts each subscription once: {usd}");
    assert_eq!(usd["activeSubscriptions"], readers.len(), "{usd}");
    assert_eq!(usd["actualRevenue"], 2 * mrr, "payments counted once each: {usd}");
    let months = usd["months"].as_array().expect("months");
    let sum = |field: &str| months.iter().map(|m| m[field].as_i64().unwrap_or(0)).sum::<i64>();
    assert_eq!(sum("newMrr"), mrr, "{usd}");
    assert_eq!(sum("newCustomers"), readers.len() as i64, "{usd}");
}

/// The proxy's figures, one line per operation.
fn print_ops(title: &str, ops: &BTreeMap<String, OpStats>) {
    eprintln!("{title}");
    for (op, s) in ops {
        eprintln!("  {op:<20} {:>5} requests {:>4} SDK retries  faults {:?}", s.requests, s.retries, s.faults);
    }
}

fn total(ops: &BTreeMap<String, OpStats>, f: impl Fn(&OpStats) -> u64) -> u64 {
    ops.values().map(f).sum()
}

fn faults_of(ops: &BTreeMap<String, OpStats>, fault: Fault) -> u64 {
    total(ops, |s| s.faults.get(&fault).copied().unwrap_or(0))
}

/// (a) DynamoDB throttles a share of the reads and writes, answers 500 after carrying out some writes
/// (the answer lost, not the write) and 503 to a share of the queries, refuses a cold webhook's
/// settings read three times, then fails a burst of 24 transactions, while Stripe delivers a stream
/// of 30 events of five customers and the worker applies them. The webhook refuses with 5xx what it
/// could not check (Stripe retries it), the worker retries what failed; once DynamoDB recovers every
/// accepted event is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_throttling_and_5xx_bursts_apply_each_accepted_event_once() {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let proxy = FaultProxy::for_emulator().await;
    let (direct, proxied) = support::dynamo_store_through(&proxy.url()).await;
    let world = World::new(direct.store.clone()).await;
    let queue = support::sqs_queue(&[EVENTS]).await;
    let state = AppState { store: proxied.clone(), queue: queue.clone(), ..world.state.clone() };
    let (readers, events) = stream(&world, 5);
    let ids: Vec<String> = events.iter().map(event_id).collect();

    proxy.inject(Rule::on(&["TransactWriteItems"], Fault::ThroughputExceeded).share(1, 5));
    proxy.inject(Rule::on(&["GetItem"], Fault::Throttling).share(1, 10));
    proxy.inject(Rule::on(&["PutItem", "TransactWriteItems"], Fault::InternalError).reaching_emulator().share(1, 6));
    proxy.inject(Rule::on(&["Query"], Fault::Unavailable).share(1, 3));
    let worker = Counting::new(EventWorker::new(proxied.clone(), Arc::new(world.stripe.client())));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(run_with_backoff(queue.clone(), EVENTS.name, worker.clone(), shutdown.clone(), AT_ONCE));

    let mut deliveries = Deliveries::default();
    let (first, second) = events.split_at(events.len() / 2);
    deliver_all(&state, first, deadline, &mut deliveries).await;
    until("the first half applied under throttling", Duration::from_secs(20), || async {
        applied(direct.store.as_ref(), &world, &ids).await.len() >= first.len()
    })
    .await;
    // A webhook instance that has not read the settings yet (a cold Lambda) meets three 503s on that
    // read: it refuses the delivery, Stripe retries. Then a burst: the next 24 TransactWriteItems fail
    // with a 503, more than the SDK's three attempts absorb, so the worker's messages fail and return.
    let cold_read = proxy.inject(Rule::on(&["GetItem"], Fault::Unavailable).containing("\"SETTINGS\"").next(3));
    let burst = proxy.inject(Rule::on(&["TransactWriteItems"], Fault::Unavailable).next(24));
    let cold = AppState::new(
        proxied.clone(),
        queue.clone(),
        shared::http::auth::AdminAuth::new(support::OPERATOR),
        world.state.stripe.clone(),
        world.state.piano.clone(),
    );
    deliver_all(&cold, &second[..1], deadline, &mut deliveries).await;
    assert_eq!(proxy.injected(cold_read), 3);
    deliver_all(&cold, &second[1..], deadline, &mut deliveries).await;
    until("the burst is spent", Duration::from_secs(20), || async { proxy.injected(burst) == 24 }).await;
    until("every accepted event applied, under throttling still", Duration::from_secs(30), || async {
        applied(direct.store.as_ref(), &world, &ids).await.len() == ids.len()
    })
    .await;
    proxy.heal();
    until("the queue drained", Duration::from_secs(10), || async {
        queue.depth(EVENTS.name).await.expect("depth") == 0
    })
    .await;
    shutdown.cancel();
    running.await.expect("worker loop");

    let ops = proxy.stats();
    print_ops("(a) DynamoDB through the fault proxy", &ops);
    eprintln!(
        "(a) {} events sent, {} accepted after {} attempts ({} refused with 5xx), {} applied; worker: {}; \
         health figures {}; {:.1} s",
        events.len(),
        deliveries.accepted,
        deliveries.attempts,
        deliveries.refused,
        applied(direct.store.as_ref(), &world, &ids).await.len(),
        worker.figures(),
        sync_figures(&world, "stripe").await,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(deliveries.accepted, events.len() as u64);
    for fault in [Fault::ThroughputExceeded, Fault::Throttling, Fault::InternalError, Fault::Unavailable] {
        assert!(faults_of(&ops, fault) > 0, "{fault:?} injected");
    }
    assert!(total(&ops, |s| s.retries) > 0, "the SDK retried");
    assert!(deliveries.refused > 0, "the cold webhook refused a delivery");
    assert!(worker.redelivered.load(Ordering::SeqCst) > 0, "the burst made the queue redeliver");
    assert_applied_once(&world, &readers, 0).await;
}

/// (b) The worker is killed mid-batch: the writes about one customer never get an answer (held before
/// DynamoDB sees them), so its batch never finishes; the batch's other events were applied, and none
/// of its messages was acknowledged. The worker task is aborted; a new worker (fresh caches, as a new
/// Lambda instance) gets the batch again once its visibility timeout (2 s) lapses and applies every
/// event exactly once: those applied before the kill are found duplicates, the others applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_batch_applies_each_event_once_after_redelivery() {
    const QUICK: QueueDef = QueueDef { visibility_timeout_secs: 2, ..EVENTS };
    let started = Instant::now();
    let proxy = FaultProxy::for_emulator().await;
    let (direct, proxied) = support::dynamo_store_through(&proxy.url()).await;
    let world = World::new(direct.store.clone()).await;
    let queue = support::sqs_queue(&[QUICK]).await;
    let state = AppState { queue: queue.clone(), ..world.state.clone() };
    let (readers, events) = stream(&world, 3);
    let ids: Vec<String> = events.iter().map(event_id).collect();
    let mut deliveries = Deliveries::default();
    deliver_all(&state, &events, started + Duration::from_secs(10), &mut deliveries).await;
    assert_eq!((deliveries.accepted, deliveries.refused), (events.len() as u64, 0), "the queue is healthy");

    let stuck = readers[0].stripe_id.clone();
    proxy.inject(Rule::on(DYNAMODB_WRITES, Fault::Hold).containing(&stuck));
    let stripe = || Arc::new(world.stripe.client());
    let first = Counting::new(EventWorker::new(proxied.clone(), stripe()));
    let running =
        tokio::spawn(run_with_backoff(queue.clone(), EVENTS.name, first.clone(), CancellationToken::new(), AT_ONCE));
    until("a batch stuck on a held write, its other events applied", Duration::from_secs(20), || async {
        let others: Vec<String> =
            first.last_batch().iter().filter(|m| !m.body.contains(&stuck)).filter_map(stripe_event_of).collect();
        proxy.held() > 0 && applied(direct.store.as_ref(), &world, &others).await.len() == others.len()
    })
    .await;
    let held = proxy.held();
    running.abort();
    assert!(running.await.expect_err("killed").is_cancelled());
    until("no call on its way to DynamoDB", Duration::from_secs(5), || async { proxy.forwarding() == 0 }).await;
    let killed: Vec<Received> = first.last_batch();
    let before = applied(direct.store.as_ref(), &world, &ids).await;
    let in_batch: Vec<String> = killed.iter().filter_map(stripe_event_of).collect();
    let applied_in_batch = in_batch.iter().filter(|id| before.contains(*id)).count();
    assert!(0 < applied_in_batch && applied_in_batch < in_batch.len(), "part of the batch applied: {before:?}");
    let health_before = sync_figures(&world, "stripe").await;
    proxy.heal();
    proxy.release_held();

    let second = Counting::new(EventWorker::new(proxied.clone(), stripe()));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(run_with_backoff(queue.clone(), EVENTS.name, second.clone(), shutdown.clone(), AT_ONCE));
    until("the killed batch handled again and every event applied", Duration::from_secs(20), || async {
        let done = second.done.lock().unwrap().clone();
        killed.iter().all(|m| done.contains(&m.id))
            && applied(direct.store.as_ref(), &world, &ids).await.len() == ids.len()
            && queue.depth(EVENTS.name).await.expect("depth") == 0
    })
    .await;
    shutdown.cancel();
    running.await.expect("worker loop");

    let health = sync_figures(&world, "stripe").await;
    let delta = |name: &str| figure(&health, name) - figure(&health_before, name);
    eprintln!(
        "(b) {} events accepted; killed in a batch of {} with {applied_in_batch} applied and {held} writes held \
         ({} events applied in all before the kill); then: {} applied, {} ignored, {} duplicates, {} failed; new \
         worker: {}; {:.1} s",
        deliveries.accepted,
        killed.len(),
        before.len(),
        delta("applied"),
        delta("ignored"),
        delta("duplicates"),
        delta("failed"),
        second.figures(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(delta("duplicates"), applied_in_batch as i64, "what the killed worker applied comes back a duplicate");
    assert_eq!(delta("applied") + delta("ignored"), (ids.len() - before.len()) as i64, "the rest applied once");
    assert_eq!(delta("failed"), 0);
    assert!(second.redelivered.load(Ordering::SeqCst) >= killed.len() as u64, "{}", second.figures());
    assert_applied_once(&world, &readers, 0).await;
}

/// A Piano `user_created` webhook's `data` for reader `uid`, encrypted as Piano sends it.
fn piano_data(uid: &str) -> String {
    let event = json!({"version": 2, "type": "user_created", "aid": "AidDaily01", "uid": uid,
                       "user_email": format!("{}@example.com", uid.to_lowercase())});
    shared::piano::webhook::encrypt(&event.to_string(), &Secret::new(PIANO_KEY))
}

/// (c) SQS unavailable at ingestion. First it refuses connections: the Stripe and Piano webhooks
/// answer every delivery 5xx. Then it is back but SendMessageBatch fails for three deliveries: with a
/// 503 before SQS sees it, or with a 500 after SQS queued the message (the answer lost): the webhook
/// cannot tell, answers 5xx, and the provider's retry queues one more copy. Once SQS is healthy the
/// providers' retries (the same events, signed again) are accepted; the worker applies each accepted
/// event once and finds the extra copies duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_unavailable_at_ingestion_answers_5xx_and_the_retry_is_applied_once() {
    let started = Instant::now();
    let proxy = FaultProxy::for_emulator().await;
    let store = support::dynamo_store().await;
    let world = World::new(store.store.clone()).await;
    world.add_piano(PIANO_KEY).await;
    let (queue, proxied_queue) = support::sqs_queue_through(&[EVENTS], &proxy.url()).await;
    let state = AppState { queue: proxied_queue, ..world.state.clone() };
    let (readers, events) = stream(&world, 2);
    let ids: Vec<String> = events.iter().map(event_id).collect();
    let piano = [piano_data("PNIfault1"), piano_data("PNIfault2")];

    proxy.set_down(true).await;
    let down = Instant::now();
    let stripe_refused = futures::future::join_all(events[..4].iter().map(|e| post_stripe(&state, e)));
    let (mut refused, piano_refused) = futures::future::join(stripe_refused, get_piano(&state, &piano[0])).await;
    refused.push(piano_refused);
    let down_secs = down.elapsed().as_secs_f64();
    assert!(refused.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE), "{refused:?}");
    proxy.set_down(false).await;

    let (lost, failed) = (&events[4], &events[5]);
    let after_queueing = proxy
        .inject(Rule::on(&["SendMessageBatch"], Fault::InternalError).reaching_emulator().containing(&event_id(lost)));
    proxy.inject(Rule::on(&["SendMessageBatch"], Fault::Unavailable).containing(&event_id(failed)));
    proxy.inject(Rule::on(&["SendMessageBatch"], Fault::InternalError).containing("PNIfault2"));
    let flaky = Instant::now();
    let answers =
        futures::future::join3(post_stripe(&state, lost), post_stripe(&state, failed), get_piano(&state, &piano[1]));
    let answers = answers.await;
    let flaky_secs = flaky.elapsed().as_secs_f64();
    assert!([answers.0, answers.1, answers.2].iter().all(StatusCode::is_server_error), "{answers:?}");
    proxy.heal();

    // The providers retry what was refused; the rest of the stream arrives.
    let mut deliveries = Deliveries::default();
    deliver_all(&state, &events, started + Duration::from_secs(40), &mut deliveries).await;
    for data in &piano {
        assert_eq!(get_piano(&state, data).await, StatusCode::OK, "Piano's retry");
    }
    let worker = Counting::new(EventWorker::new(store.store.clone(), Arc::new(world.stripe.client())));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(run_with_backoff(queue.clone(), EVENTS.name, worker.clone(), shutdown.clone(), AT_ONCE));
    until("every accepted event applied", Duration::from_secs(20), || async {
        applied(store.store.as_ref(), &world, &ids).await.len() == ids.len()
            && world.customers().await.len() == readers.len() + piano.len()
            && queue.depth(EVENTS.name).await.expect("depth") == 0
    })
    .await;
    shutdown.cancel();
    running.await.expect("worker loop");

    let ops = proxy.stats();
    print_ops("(c) SQS through the fault proxy (after it came back up)", &ops);
    let (stripe, piano_figures) = (sync_figures(&world, "stripe").await, sync_figures(&world, "piano").await);
    let copies = proxy.injected(after_queueing);
    eprintln!(
        "(c) down: {} deliveries refused with 503 in {down_secs:.1} s; flaky: 3 refused with 5xx in {flaky_secs:.1} \
         s, {copies} copies queued by the refused one; then {} Stripe events accepted ({} attempts) and 2 Piano \
         events; stripe figures {stripe}, piano figures {piano_figures}; worker: {}; {:.1} s",
        refused.len(),
        deliveries.accepted,
        deliveries.attempts,
        worker.figures(),
        started.elapsed().as_secs_f64()
    );
    assert!(copies > 0, "SQS queued the message whose answer was lost");
    assert_eq!(deliveries.accepted, events.len() as u64);
    assert_eq!(figure(&stripe, "applied") + figure(&stripe, "ignored"), ids.len() as i64, "accepted == applied");
    assert_eq!(figure(&stripe, "duplicates"), copies as i64, "each extra copy found a duplicate");
    assert_eq!(piano_figures, json!({"applied": 2, "ignored": 0, "duplicates": 0, "failed": 0}));
    assert_eq!(figure(&stripe, "failed"), 0);
    for uid in ["PNIfault1", "PNIfault2"] {
        let record = world.record(&format!("{}@example.com", uid.to_lowercase())).await;
        assert_eq!(record["pianoUid"], uid, "{record}");
    }
    assert_applied_once(&world, &readers, piano.len()).await;
}

/// (d) DynamoDB carries out the worker's write of a batch's sync figures but its answer is lost (500):
/// the SDK's retry finds the figures changed. Each batch is counted once all the same: one whose
/// figures are written in a transaction with its last applied event, one (only events the CRM does
/// not apply) whose figures are a single PutItem.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_answer_to_the_sync_figures_write_counts_the_batch_once() {
    let proxy = FaultProxy::for_emulator().await;
    let (direct, proxied) = support::dynamo_store_through(&proxy.url()).await;
    let world = World::new(direct.store.clone()).await;
    let (_, events) = stream(&world, 2);
    let header = Header {
        provider: Provider::Stripe,
        publication: world.publication.clone(),
        account: Some(AccountKey::parse("main").expect("account key")),
        received_at: now_epoch(),
        received_at_us: None,
        event_id: None,
        event_type: None,
    };
    let batch = |events: Vec<&Value>| -> Vec<Received> {
        let message = |e: &Value| Received {
            id: event_id(e),
            receipt: format!("receipt-{}", event_id(e)),
            body: envelope::encode(&header, &e.to_string()),
            receive_count: 1,
        };
        events.into_iter().map(message).collect()
    };
    let ignored = |e: &&Value| e["type"] == "payment_intent.created";
    let worker = EventWorker::new(proxied.clone(), Arc::new(world.stripe.client()));
    let figures_write = || {
        let sync_partition = format!("PUB#{PUBLICATION}#SYNC");
        proxy.inject(
            Rule::on(DYNAMODB_WRITES, Fault::InternalError).reaching_emulator().containing(&sync_partition).next(1),
        )
    };

    let lost = figures_write();
    assert_eq!(worker.handle(&batch(events.iter().filter(|e| !ignored(e)).collect())).await, Vec::<String>::new());
    assert_eq!(proxy.injected(lost), 1, "the figures' write was hit");
    assert_eq!(
        sync_figures(&world, "stripe").await,
        json!({"applied": 10, "ignored": 0, "duplicates": 0, "failed": 0})
    );
    let lost = figures_write();
    assert_eq!(worker.handle(&batch(events.iter().filter(ignored).collect())).await, Vec::<String>::new());
    assert_eq!(proxy.injected(lost), 1, "the figures' write was hit");
    assert_eq!(
        sync_figures(&world, "stripe").await,
        json!({"applied": 10, "ignored": 2, "duplicates": 0, "failed": 0})
    );
    print_ops("(d) DynamoDB through the fault proxy", &proxy.stats());
}
