//! The automations engine on both stores: rules from settings run on fired triggers (built here, as the
//! worker builds them with `fired_by`), each action has its effect (lifecycle stage on the record, a task
//! listed then closed through the API, a note on the timeline, a notification job that the forwarder
//! delivers to a loopback server with its Idempotency-Key), conditions select rules, reruns and crashed
//! attempts change nothing, and a failing rule gives its claim up so a retry runs it.
//! `fired_by` itself is tested on customers built in code.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use serde_json::{Value, json};
use shared::api::AppState;
use shared::automation::{self, AutomationError, CLAIM_LEDGER, Fired, claim_id, fired_by};
use shared::domain::activity::{Activity, ActivityKind};
use shared::domain::automation::Trigger;
use shared::domain::billing::{ItemState, PriceState, SubscriptionState, Tracked};
use shared::domain::customer::Customer;
use shared::domain::ids::{AccountKey, CustomerId, Email, PublicationId};
use shared::domain::money::{Currency, Money};
use shared::domain::piano::PianoSubscription;
use shared::domain::settings::PublicationSettings;
use shared::piano::forward::{ForwardJob, ForwardWorker, Forwarder};
use shared::queue::worker::BatchHandler;
use shared::queue::{EVENTS, FORWARD, Queue, Received};
use shared::store::Store;
use shared::store::repo::keys_of;
use shared::store::repo::ledger::{self, Claim};
use shared::store::repo::publications::{self, StoredSettings};
use shared::store::repo::{activities, customers, tasks};
use support::send;
use tower::ServiceExt;

const PUBLICATION: &str = "daily";
/// Provider time of the events of these tests (2026-09-21).
const AT: i64 = 1_790_000_000;

/// When rules run: the real clock, which claims and markers expire by.
fn now() -> i64 {
    shared::store::now_epoch()
}

fn publication() -> PublicationId {
    PublicationId::parse(PUBLICATION).unwrap()
}

fn usd(amount: i64) -> Money {
    Money::new(amount, Currency::parse("usd").unwrap())
}

/// Settings with these rules, validated as the settings API validates them.
fn settings(automations: Value) -> PublicationSettings {
    let body = json!({ "name": "The Daily", "automations": automations });
    PublicationSettings::parse(body.to_string().as_bytes(), None).expect("valid settings")
}

/// The publication stored with `settings` (the admin API reads it), and a state over the store with
/// in-process queues.
async fn setup(store: &Arc<dyn Store>, settings: &PublicationSettings) -> AppState {
    let stored = StoredSettings { publication_id: publication(), settings: settings.clone(), updated_at: 0 };
    publications::put(store.as_ref(), &stored, None).await.expect("store settings");
    support::app_state(store.clone())
}

async fn customer(store: &Arc<dyn Store>, email: &str, name: &str) -> Customer {
    let mut c = Customer::new(publication(), AT - 1000);
    c.email = Some(Email::parse(email).unwrap());
    c.name = Some(name.to_owned());
    customers::create(store.as_ref(), &c).await.expect("create customer");
    c
}

fn fired(trigger: Trigger, customer: &CustomerId, event_id: &str) -> Fired {
    Fired {
        trigger,
        customer_id: customer.clone(),
        event_id: event_id.to_owned(),
        at: AT,
        amount: Some(usd(1500)),
        product_ids: vec!["prod_digital".into()],
        price_ids: vec!["price_monthly".into()],
        summary: "Payment of 15.00 USD failed (attempt 1)".into(),
        provider: "stripe".into(),
        fact: None,
    }
}

async fn record(state: &AppState, id: &CustomerId) -> Value {
    let (status, body) =
        send(state, "GET", &format!("/admin/publications/{PUBLICATION}/customers/{id}?activitiesLimit=200"), None)
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn notes(record: &Value) -> Vec<String> {
    record["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "note")
        .map(|a| a["summary"].as_str().unwrap().to_owned())
        .collect()
}

/// Every job waiting on the forward queue (received, so they stay invisible for the test's duration).
async fn forward_jobs(queue: &Arc<dyn Queue>) -> Vec<Received> {
    let mut out = Vec::new();
    loop {
        let batch = queue.receive(FORWARD.name, 10, Duration::from_millis(50)).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

fn job_of(message: &Received) -> ForwardJob {
    serde_json::from_str(&message.body).expect("a forward job")
}

fn every_action(notify_url: &str) -> Value {
    json!([{
        "id": "dunning",
        "on": "payment_failed",
        "do": [
            {"setStatus": "At risk"},
            {"createTask": {"title": "Payment failed: call {customer.name} <{customer.email}> about {amount} ({event.type})",
                            "assignee": "am@example.com", "dueInDays": 3}},
            {"logActivity": {"message": "Dunning started for {customer.email}"}},
            {"notify": {"url": notify_url}}
        ]
    }])
}

async fn each_action_has_its_effect(store: Arc<dyn Store>) {
    let rules = settings(every_action("https://hooks.example.com/crm?channel=billing"));
    let state = setup(&store, &rules).await;
    let ann = customer(&store, "ann@example.com", "Ann Reader").await;
    let pub_id = publication();
    let failed = fired(Trigger::PaymentFailed, &ann.id, "evt_failed_1");
    // A trigger no rule is on changes nothing.
    let paid = fired(Trigger::PaymentSucceeded, &ann.id, "evt_paid_1");
    automation::run(store.as_ref(), state.queue.as_ref(), &rules, &pub_id, &[paid, failed], now()).await.unwrap();

    let shown = record(&state, &ann.id).await;
    assert_eq!(shown["lifecycleStage"], "At risk");
    assert_eq!(notes(&shown), ["Dunning started for ann@example.com"]);
    let note = shown["activities"].as_array().unwrap().iter().find(|a| a["kind"] == "note").unwrap();
    assert_eq!((note["provider"].as_str(), note["eventId"].as_str()), (Some("crm"), Some("evt_failed_1")));
    let open = shown["openTasks"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{shown}");
    let task = &open[0];
    assert_eq!(task["title"], "Payment failed: call Ann Reader <ann@example.com> about 15.00 USD (payment_failed)");
    assert_eq!(task["assignee"], "am@example.com");
    assert_eq!(task["dueAt"], "2026-09-24T14:13:20Z", "due three days after the event");
    assert_eq!((task["status"].as_str(), task["customerId"].as_str()), (Some("open"), Some(ann.id.as_str())));
    assert_eq!((task["rule"].as_str(), task["eventId"].as_str()), (Some("dunning"), Some("evt_failed_1")));

    // Listed open, closed through PATCH, then listed done and gone from the record.
    let tasks_path = format!("/admin/publications/{PUBLICATION}/tasks");
    let (status, listed) = send(&state, "GET", &tasks_path, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["id"], task["id"]);
    let task_path = format!("{tasks_path}/{}", task["id"].as_str().unwrap());
    let (status, closed) = send(&state, "PATCH", &task_path, Some(json!({"status": "done"}))).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "done");
    assert!(closed["closedAt"].is_string());
    let (_, open_now) = send(&state, "GET", &format!("{tasks_path}?status=open"), None).await;
    assert_eq!(open_now["data"], json!([]));
    let (_, done) = send(&state, "GET", &format!("{tasks_path}?status=done"), None).await;
    assert_eq!(done["data"][0]["id"], task["id"]);
    assert_eq!(record(&state, &ann.id).await["openTasks"], json!([]));
    let (status, reopened) = send(&state, "PATCH", &task_path, Some(json!({"status": "open"}))).await;
    assert_eq!((status, reopened["status"].as_str()), (StatusCode::OK, Some("open")));
    assert!(reopened["closedAt"].is_null());
    assert_eq!(record(&state, &ann.id).await["openTasks"].as_array().unwrap().len(), 1);

    // Refusals.
    let unknown = format!("{tasks_path}/tsk_01J8Z6W5V7QK3M2N4P6R8S0T1V");
    assert_eq!(send(&state, "PATCH", &unknown, Some(json!({"status": "done"}))).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&state, "PATCH", &format!("{tasks_path}/nope"), Some(json!({"status": "done"}))).await.0,
        StatusCode::NOT_FOUND
    );
    for bad in [json!({"status": "closed"}), json!({}), json!({"status": "done", "title": "x"})] {
        assert_eq!(send(&state, "PATCH", &task_path, Some(bad)).await.0, StatusCode::BAD_REQUEST);
    }
    assert_eq!(send(&state, "GET", &format!("{tasks_path}?status=late"), None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(send(&state, "GET", &format!("{tasks_path}?cursor=bogus"), None).await.0, StatusCode::BAD_REQUEST);
    let anonymous = Request::get(&tasks_path).body(Body::empty()).unwrap();
    let response = shared::api::all_routes(state.clone()).oneshot(anonymous).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // One notification job on the forward queue: a JSON POST carrying the Idempotency-Key.
    let jobs = forward_jobs(&state.queue).await;
    assert_eq!(jobs.len(), 1);
    let job = job_of(&jobs[0]);
    assert_eq!((job.method.as_str(), job.url.as_str()), ("POST", "https://hooks.example.com/crm"));
    assert_eq!(job.query.as_deref(), Some("channel=billing"), "the target's own query is kept");
    assert_eq!(job.content_type.as_deref(), Some("application/json"));
    assert_eq!(job.headers, [("Idempotency-Key".to_owned(), "evt_failed_1:dunning".to_owned())]);
    let payload: Value = serde_json::from_str(&job.body).unwrap();
    assert_eq!(payload["trigger"], "payment_failed");
    assert_eq!(payload["rule"], "dunning");
    assert_eq!(payload["publication"], PUBLICATION);
    assert_eq!(payload["customer"], json!({"id": ann.id, "email": "ann@example.com", "name": "Ann Reader"}));
    assert_eq!(payload["eventId"], "evt_failed_1");
    assert_eq!(payload["amount"], json!({"amount": 1500, "currency": "usd"}));
    assert_eq!(payload["at"], "2026-09-21T14:13:20Z");
    assert!(payload["text"].as_str().unwrap().contains("Payment of 15.00 USD failed"), "{payload}");
}

type Seen = Arc<Mutex<Vec<(String, String, HeaderMap, Value)>>>;

/// A chat webhook on loopback that records what it receives and answers `status`.
async fn hook(status: StatusCode) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let record = record.clone();
        async move {
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            record.lock().unwrap().push((method.to_string(), uri.to_string(), headers, json));
            (status, "ok")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/crm?token=t0k", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn notifications_reach_the_hook_with_their_key(store: Arc<dyn Store>) {
    let (url, seen) = hook(StatusCode::OK).await;
    let (down_url, down_seen) = hook(StatusCode::SERVICE_UNAVAILABLE).await;
    let rules = settings(json!([
        {"on": "refund", "do": [{"notify": {"url": url}}]},
        {"id": "down", "on": "refund", "do": [{"notify": {"url": down_url}}]}
    ]));
    let state = setup(&store, &rules).await;
    let bob = customer(&store, "bob@example.com", "Bob").await;
    let mut refund = fired(Trigger::Refund, &bob.id, "evt_refund_1");
    refund.fact = Some("refund:re_1".into());
    refund.summary = "Refund of 15.00 USD".into();
    automation::run(store.as_ref(), state.queue.as_ref(), &rules, &publication(), &[refund], now()).await.unwrap();

    let jobs = forward_jobs(&state.queue).await;
    assert_eq!(jobs.len(), 2);
    let worker = ForwardWorker::new(Arc::new(Forwarder::new(true)));
    let failed = worker.handle(&jobs).await;
    // The failing endpoint's message is reported failed: the queue retries it with backoff and its
    // dead-letter queue takes it at the end; the other is delivered.
    assert_eq!(failed.len(), 1);
    assert_eq!(job_of(jobs.iter().find(|m| m.id == failed[0]).unwrap()).url, down_url.split('?').next().unwrap());
    assert_eq!(down_seen.lock().unwrap().len(), 1);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (method, uri, headers, body) = &seen[0];
    assert_eq!((method.as_str(), uri.as_str()), ("POST", "/hooks/crm?token=t0k"));
    assert_eq!(headers["content-type"], "application/json");
    // A fact announced by several events: keyed by the fact, so every announcing event shares the key.
    assert_eq!(headers["idempotency-key"], "refund:re_1:rule0");
    assert_eq!(body["idempotencyKey"], "refund:re_1:rule0");
    assert_eq!(body["trigger"], "refund");
    assert_eq!(body["rule"], "rule0");
    assert_eq!(body["customer"]["email"], "bob@example.com");
    assert_eq!(body["eventId"], "evt_refund_1");
    assert_eq!(body["summary"], "Refund of 15.00 USD");
}

async fn conditions_select_the_rules(store: Arc<dyn Store>) {
    let note = |text: &str| json!([{"logActivity": {"message": text}}]);
    let rules = settings(json!([
        {"id": "product", "on": "payment_succeeded", "if": {"productIds": ["prod_print", "prod_digital"]}, "do": note("product")},
        {"id": "price", "on": "payment_succeeded", "if": {"priceIds": ["price_yearly"]}, "do": note("price")},
        {"id": "big", "on": "payment_succeeded", "if": {"minAmount": 1500}, "do": note("big")},
        {"id": "both", "on": "payment_succeeded", "if": {"productIds": ["prod_digital"], "minAmount": 1500}, "do": note("both")},
        {"on": "payment_succeeded", "do": note("any")},
        {"on": "refund", "do": note("refund")}
    ]));
    let state = setup(&store, &rules).await;
    let pub_id = publication();
    let mut cases = Vec::new();
    // (products, prices, amount) → the notes expected, in settings order.
    for (n, (products, prices, amount, expected)) in [
        (vec!["prod_digital"], vec!["price_monthly"], Some(1500), vec!["product", "big", "both", "any"]),
        (vec!["prod_digital"], vec!["price_monthly"], Some(1499), vec!["product", "any"]),
        (vec!["prod_other"], vec!["price_yearly"], Some(99_999), vec!["price", "big", "any"]),
        (vec![], vec![], None, vec!["any"]),
    ]
    .into_iter()
    .enumerate()
    {
        let c = customer(&store, &format!("c{n}@example.com"), "C").await;
        let mut f = fired(Trigger::PaymentSucceeded, &c.id, &format!("evt_paid_{n}"));
        f.product_ids = products.into_iter().map(str::to_owned).collect();
        f.price_ids = prices.into_iter().map(str::to_owned).collect();
        f.amount = amount.map(usd);
        cases.push((c.id, f, expected));
    }
    let all: Vec<Fired> = cases.iter().map(|(_, f, _)| f.clone()).collect();
    automation::run(store.as_ref(), state.queue.as_ref(), &rules, &pub_id, &all, now()).await.unwrap();
    for (id, f, expected) in &cases {
        let mut found = notes(&record(&state, id).await);
        found.sort();
        let mut expected = expected.clone();
        expected.sort();
        assert_eq!(found, expected, "{f:?}");
        // `matching` names the same rules, by key (`rule4`: the rule without an id).
        let mut keys: Vec<String> = automation::matching(&rules, f).into_iter().map(|(key, _)| key).collect();
        keys.sort();
        let mut by_note: Vec<String> =
            expected.iter().map(|n| if *n == "any" { "rule4".to_owned() } else { (*n).to_owned() }).collect();
        by_note.sort();
        assert_eq!(keys, by_note, "{f:?}");
    }
}

/// Counts of (tasks, notes, forward jobs) of a customer after running.
async fn effects(store: &Arc<dyn Store>, queue: &Arc<dyn Queue>, customer: &CustomerId) -> (usize, usize, usize) {
    let pub_id = publication();
    let all_tasks = tasks::of_customer(store.as_ref(), &pub_id, customer, None).await.unwrap();
    let (timeline, _) = activities::list(store.as_ref(), &pub_id, customer, 200, None).await.unwrap();
    let notes = timeline.iter().filter(|a| a.kind == ActivityKind::Note).count();
    (all_tasks.len(), notes, forward_jobs(queue).await.len())
}

async fn reruns_and_crashed_attempts_change_nothing(store: Arc<dyn Store>) {
    let rules = settings(every_action("https://hooks.example.com/crm"));
    let state = setup(&store, &rules).await;
    let pub_id = publication();
    let run = |f: Fired| {
        let (store, state, rules, pub_id) = (store.clone(), state.clone(), rules.clone(), pub_id.clone());
        async move { automation::run(store.as_ref(), state.queue.as_ref(), &rules, &pub_id, &[f], now()).await }
    };

    // Twice in a row (a redelivery): the second run finds the rule completed.
    let cara = customer(&store, "cara@example.com", "Cara").await;
    let first = fired(Trigger::PaymentFailed, &cara.id, "evt_twice");
    run(first.clone()).await.unwrap();
    run(first.clone()).await.unwrap();
    assert_eq!(effects(&store, &state.queue, &cara.id).await, (1, 1, 1));

    // A crashed attempt that claimed the rule and died before any action: its claim expired.
    let dan = customer(&store, "dan@example.com", "Dan").await;
    let crashed = fired(Trigger::PaymentFailed, &dan.id, "evt_crashed_early");
    let id = claim_id(&crashed, "dunning");
    assert!(matches!(
        ledger::claim(store.as_ref(), &pub_id, CLAIM_LEDGER, &id, now() - 1).await.unwrap(),
        Claim::Claimed(_)
    ));
    run(crashed.clone()).await.unwrap();
    run(crashed).await.unwrap();
    assert_eq!(effects(&store, &state.queue, &dan.id).await, (1, 1, 1));

    // A crashed attempt that ran every action and died before completing: the rerun redoes them all,
    // and each finds its own trace (task id, note key, stage and notification markers).
    let eve = customer(&store, "eve@example.com", "Eve").await;
    let late = fired(Trigger::PaymentFailed, &eve.id, "evt_crashed_late");
    run(late.clone()).await.unwrap();
    let claim = keys_of::event(&pub_id, CLAIM_LEDGER, &claim_id(&late, "dunning"));
    store.write(vec![shared::store::WriteOp::Delete { key: claim, cond: shared::store::Cond::Exists }]).await.unwrap();
    let version = customers::get(store.as_ref(), &pub_id, &eve.id).await.unwrap().unwrap().version;
    run(late).await.unwrap();
    assert_eq!(effects(&store, &state.queue, &eve.id).await, (1, 1, 1));
    let after = customers::get(store.as_ref(), &pub_id, &eve.id).await.unwrap().unwrap();
    assert_eq!(after.version, version, "the stage was not written again");
    assert_eq!(after.value.lifecycle_stage.as_deref(), Some("At risk"));

    // An attempt running now holds the claim: a transient error, nothing done.
    let fay = customer(&store, "fay@example.com", "Fay").await;
    let held = fired(Trigger::PaymentFailed, &fay.id, "evt_held");
    ledger::claim(store.as_ref(), &pub_id, CLAIM_LEDGER, &claim_id(&held, "dunning"), now() + 300).await.unwrap();
    let err = run(held).await.unwrap_err();
    assert!(matches!(err, AutomationError::InProgress(_)) && err.is_transient(), "{err}");
    assert_eq!(effects(&store, &state.queue, &fay.id).await, (0, 0, 0));
}

async fn a_failing_rule_gives_its_claim_up(store: Arc<dyn Store>) {
    let rules = settings(json!([
        {"id": "notify-first", "on": "payment_failed", "do": [
            {"createTask": {"title": "Call {customer.email}"}},
            {"notify": {"url": "https://hooks.example.com/crm"}},
            {"logActivity": {"message": "after the notification"}}
        ]},
        {"id": "independent", "on": "payment_failed", "do": [{"setStatus": "At risk"}]}
    ]));
    let state = setup(&store, &rules).await;
    let pub_id = publication();
    let gus = customer(&store, "gus@example.com", "Gus").await;
    let f = fired(Trigger::PaymentFailed, &gus.id, "evt_failing");

    // No forward queue to send to: the notification fails, the rule releases its claim.
    let no_forward: Arc<dyn Queue> = support::memory_queue(&[EVENTS]);
    let err = automation::run(store.as_ref(), no_forward.as_ref(), &rules, &pub_id, std::slice::from_ref(&f), now())
        .await
        .unwrap_err();
    assert!(matches!(err, AutomationError::Queue(_)), "{err}");
    assert!(!err.is_transient(), "an unknown queue is not transient");
    let claim = keys_of::event(&pub_id, CLAIM_LEDGER, &claim_id(&f, "notify-first"));
    assert!(store.get(&claim).await.unwrap().is_none(), "the claim was released");
    // The actions before the failure happened, the ones after did not; the other rule ran.
    assert_eq!(effects(&store, &state.queue, &gus.id).await, (1, 0, 0));
    assert_eq!(record(&state, &gus.id).await["lifecycleStage"], "At risk");

    // The retry runs it: still one task, now the note and one notification.
    automation::run(store.as_ref(), state.queue.as_ref(), &rules, &pub_id, &[f], now()).await.unwrap();
    assert_eq!(effects(&store, &state.queue, &gus.id).await, (1, 1, 1));
}

async fn a_stage_from_an_older_event_never_replaces_a_newer_one(store: Arc<dyn Store>) {
    let rules = settings(json!([
        {"on": "payment_succeeded", "do": [{"setStatus": "Active Customer"}]},
        {"on": "payment_failed", "do": [{"setStatus": "At risk"}]}
    ]));
    let state = setup(&store, &rules).await;
    let pub_id = publication();
    let hal = customer(&store, "hal@example.com", "Hal").await;
    let mut newer = fired(Trigger::PaymentSucceeded, &hal.id, "evt_newer");
    newer.at = AT + 100;
    let older = fired(Trigger::PaymentFailed, &hal.id, "evt_older");
    automation::run(store.as_ref(), state.queue.as_ref(), &rules, &pub_id, &[newer], now()).await.unwrap();
    automation::run(store.as_ref(), state.queue.as_ref(), &rules, &pub_id, &[older], now()).await.unwrap();
    assert_eq!(record(&state, &hal.id).await["lifecycleStage"], "Active Customer");
}

async fn task_listing_pages_with_stable_cursors(store: Arc<dyn Store>) {
    let rules =
        settings(json!([{"on": "trial_will_end", "do": [{"createTask": {"title": "Trial ends: {customer.email}"}}]}]));
    let state = setup(&store, &rules).await;
    let pub_id = publication();
    let mut expected = Vec::new();
    for n in 0..5 {
        let c = customer(&store, &format!("t{n}@example.com"), "T").await;
        let mut f = fired(Trigger::TrialWillEnd, &c.id, &format!("evt_trial_{n}"));
        f.at = AT + n;
        automation::run(store.as_ref(), state.queue.as_ref(), &rules, &pub_id, &[f], now()).await.unwrap();
        expected.push(format!("Trial ends: t{n}@example.com"));
    }
    let path = format!("/admin/publications/{PUBLICATION}/tasks?status=open&limit=2");
    let (_, mut page) = send(&state, "GET", &path, None).await;
    let mut titles = Vec::new();
    loop {
        titles.extend(page["data"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_owned()));
        let Some(next) = page["next"].as_str() else { break };
        page = send(&state, "GET", &format!("{path}&cursor={next}"), None).await.1;
    }
    assert_eq!(titles, expected, "oldest first, every task once");
    // A cursor of the open listing does not read the done one.
    let (_, first) = send(&state, "GET", &path, None).await;
    let cursor = first["next"].as_str().unwrap();
    let other = format!("/admin/publications/{PUBLICATION}/tasks?status=done&cursor={cursor}");
    assert_eq!(send(&state, "GET", &other, None).await.0, StatusCode::BAD_REQUEST);
}

for_each_store!(
    each_action_has_its_effect,
    notifications_reach_the_hook_with_their_key,
    conditions_select_the_rules,
    reruns_and_crashed_attempts_change_nothing,
    a_failing_rule_gives_its_claim_up,
    a_stage_from_an_older_event_never_replaces_a_newer_one,
    task_listing_pages_with_stable_cursors,
);

// ---- fired_by, on customers built in code ----

fn account() -> AccountKey {
    AccountKey::parse("main").unwrap()
}

fn subscription(id: &str, status: &str, price: &str, product: &str, amount: i64) -> Tracked<SubscriptionState> {
    Tracked {
        as_of: AT,
        state: SubscriptionState {
            account: account(),
            id: id.into(),
            status: status.into(),
            items: vec![ItemState {
                price: PriceState {
                    price_id: price.into(),
                    product_id: Some(product.into()),
                    nickname: None,
                    unit_amount: Some(amount),
                    currency: Some(Currency::parse("usd").unwrap()),
                    interval: Some("month".into()),
                    interval_count: 1,
                    metered: false,
                },
                quantity: 1,
            }],
            current_period_start: Some(AT),
            current_period_end: Some(AT + 30 * 86_400),
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_end: None,
            created: Some(AT - 86_400),
            schedule_id: None,
            discounts: Vec::new(),
        },
    }
}

fn with_subscription(sub: Tracked<SubscriptionState>) -> Customer {
    let mut c = Customer::new(publication(), AT);
    c.stripe.subscriptions.insert(sub.state.id.clone(), sub);
    c
}

fn entry(kind: ActivityKind, key: &str, event_id: Option<&str>, amount: Option<Money>, object: &str) -> Activity {
    Activity {
        key: key.into(),
        at: AT,
        kind,
        summary: format!("{kind:?}"),
        amount,
        provider: "stripe".into(),
        account: Some(account()),
        object_id: Some(object.into()),
        event_id: event_id.map(str::to_owned),
    }
}

#[test]
fn plan_changes_fire_upgrades_and_downgrades_by_mrr() {
    let monthly = with_subscription(subscription("sub_1", "active", "price_monthly", "prod_digital", 1000));
    let mut premium = monthly.clone();
    premium
        .stripe
        .subscriptions
        .insert("sub_1".into(), subscription("sub_1", "active", "price_premium", "prod_premium", 2500));
    let change = [entry(ActivityKind::PlanChanged, "PlanChanged:evt_up", Some("evt_up"), None, "sub_1")];

    let up = fired_by(&monthly, &premium, &change, "evt_up");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].trigger, Trigger::SubscriptionUpgraded);
    assert_eq!(up[0].amount, Some(usd(1500)), "the MRR change");
    assert_eq!(up[0].customer_id, premium.id);
    assert_eq!((up[0].event_id.as_str(), up[0].fact.as_deref(), up[0].occurrence()), ("evt_up", None, "evt_up"));
    // Products and prices held after the change: the new plan's.
    assert_eq!(up[0].product_ids, ["prod_premium"]);
    assert_eq!(up[0].price_ids, ["price_premium"]);

    let down = fired_by(&premium, &monthly, &change, "evt_down");
    assert_eq!(down.iter().map(|f| f.trigger).collect::<Vec<_>>(), [Trigger::SubscriptionDowngraded]);
    assert_eq!(down[0].amount, Some(usd(1500)));

    // Same MRR (another price of the same amount): neither.
    let mut same = monthly.clone();
    same.stripe
        .subscriptions
        .insert("sub_1".into(), subscription("sub_1", "active", "price_other", "prod_digital", 1000));
    assert!(fired_by(&monthly, &same, &change, "evt_same").is_empty());
}

#[test]
fn payments_failures_and_refunds_fire_with_their_amounts() {
    let c = with_subscription(subscription("sub_1", "active", "price_monthly", "prod_digital", 1000));
    let mut invoiced = c.clone();
    invoiced.stripe.invoices.insert(
        "in_1".into(),
        Tracked {
            as_of: AT,
            state: serde_json::from_value(json!({
                "account": "main", "id": "in_1", "number": null, "status": "paid", "currency": "usd",
                "amountDue": 1000, "amountPaid": 1000, "amountRemaining": 0, "attemptCount": 1,
                "created": AT, "dueDate": null, "paidAt": AT, "periodStart": null, "periodEnd": null,
                "subscriptionId": "sub_1", "hostedInvoiceUrl": null
            }))
            .unwrap(),
        },
    );
    let entries = [
        entry(ActivityKind::PaymentSucceeded, "payment:in_1", None, Some(usd(1000)), "in_1"),
        entry(ActivityKind::SubscriptionStarted, "subscription-started:sub_1", None, None, "sub_1"),
        entry(ActivityKind::Refund, "refund:re_1", None, Some(usd(300)), "re_1"),
        entry(ActivityKind::PaymentFailed, "PaymentFailed:evt_1", Some("evt_1"), Some(usd(1000)), "in_1"),
        entry(ActivityKind::PaymentFailed, "PaymentFailed:evt_1:b", Some("evt_1"), Some(usd(2000)), "in_1"),
    ];
    let out = fired_by(&c, &invoiced, &entries, "evt_1");
    let triggers: Vec<Trigger> = out.iter().map(|f| f.trigger).collect();
    assert_eq!(triggers, [Trigger::PaymentSucceeded, Trigger::Refund, Trigger::PaymentFailed], "one per trigger");
    let paid = &out[0];
    assert_eq!(paid.amount, Some(usd(1000)));
    assert_eq!(paid.fact.as_deref(), Some("payment:in_1"), "a fact runs rules once whichever event announces it");
    assert_eq!(paid.occurrence(), "payment:in_1");
    assert_eq!(
        (&paid.product_ids, &paid.price_ids),
        (&vec!["prod_digital".to_owned()], &vec!["price_monthly".to_owned()])
    );
    assert_eq!(out[1].amount, Some(usd(300)));
    assert_eq!(out[2].amount, Some(usd(1000)), "the first failure entry");
    assert_eq!(out[2].fact, None);
    assert_eq!((out[2].at, out[2].provider.as_str(), out[2].summary.as_str()), (AT, "stripe", "PaymentFailed"));

    // Fired values travel with the event's ledger entry: camelCase JSON that reads back the same.
    let json = serde_json::to_value(paid).unwrap();
    assert_eq!(json["trigger"], "payment_succeeded");
    assert_eq!(json["customerId"], c.id.as_str());
    assert_eq!(serde_json::from_value::<Fired>(json).unwrap(), *paid);
}

#[test]
fn cancellations_and_revoked_access_name_what_ended() {
    let live = with_subscription(subscription("sub_1", "active", "price_monthly", "prod_digital", 1000));
    let ended = with_subscription(subscription("sub_1", "canceled", "price_monthly", "prod_digital", 1000));
    let canceled = [entry(ActivityKind::SubscriptionCanceled, "subscription-canceled:sub_1", None, None, "sub_1")];
    let out = fired_by(&live, &ended, &canceled, "evt_deleted");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].trigger, Trigger::SubscriptionCanceled);
    assert_eq!(out[0].product_ids, ["prod_digital"], "the canceled subscription's product");

    // Piano: a live subscription's resource counts as a product; revoked access names its resource.
    let mut piano = Customer::new(publication(), AT);
    piano.piano.subscriptions.insert(
        "sub_p".into(),
        Tracked {
            as_of: AT,
            state: PianoSubscription {
                id: "sub_p".into(),
                status: "active".into(),
                term_id: Some("TM1".into()),
                resource_id: Some("RPRINT".into()),
                expires_at: None,
            },
        },
    );
    let mut revoked = entry(ActivityKind::AccessRevoked, "000001.AccessRevoked:e1", Some("e1"), None, "RDIGITAL");
    revoked.provider = "piano".into();
    piano.piano.entitlements.insert(
        "RDIGITAL".into(),
        Tracked {
            as_of: AT,
            state: serde_json::from_value(
                json!({"resourceId": "RDIGITAL", "termId": null, "expiresAt": null, "status": "revoked"}),
            )
            .unwrap(),
        },
    );
    let out = fired_by(&piano, &piano, &[revoked], "e1");
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].trigger, out[0].provider.as_str()), (Trigger::AccessRevoked, "piano"));
    assert_eq!(out[0].product_ids, ["RDIGITAL", "RPRINT"]);
    assert!(out[0].price_ids.is_empty());
}
