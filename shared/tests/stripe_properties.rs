//! Property: a customer's record does not depend on how Stripe delivers the events.
//!
//! Proptest writes the story of one reader as Stripe would send it: the customer is created and
//! subscribes, then any sequence of payments, failed payments (with their retries), plan changes,
//! refunds, scheduled cancellations (and their withdrawal), the end of the subscription and renames,
//! each step either in a later second or in the same second as the previous one (same-second ties
//! are what the sync cannot order by time alone). Stripe's API answers the last state of every
//! object of the story, as it would once the story has happened.
//!
//! The story is delivered twice, each time into a fresh store and a fresh fake Stripe: once in
//! Stripe's order, once shuffled with every event delivered one to three times. Both customer
//! records must be equal, except for what depends on the wall clock or on generated ids.
//!
//! The in-order record is not compared with a hand-computed one: on a same-second tie between two
//! different states of one object the sync stores the object as Stripe holds it now, in order too.
//! A few figures that do not depend on that choice are checked against the story itself (invoice
//! count and statuses, lifetime value, subscription status, the timeline's entries, one customer).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};
use shared::sync::Outcome;
use support::TestStore;
use support::stripe_world::{self as w, World};
use tokio::runtime::Runtime;

const DAY: i64 = 86_400;
const T0: i64 = 1_750_000_000;
const EMAIL: &str = "reader@example.com";
const CUSTOMER: &str = "cus_P";
const SUBSCRIPTION: &str = "sub_P";
/// The prices a reader moves between: id, product, amount per interval, interval.
const PRICES: [(&str, &str, i64, &str); 3] = [
    ("price_basic", "prod_basic", 900, "month"),
    ("price_plus", "prod_plus", 1500, "month"),
    ("price_plus_yearly", "prod_plus", 15_000, "year"),
];
const PRODUCTS: [(&str, &str); 2] = [("prod_basic", "Basic"), ("prod_plus", "Plus")];

/// One runtime for every case: building one per case would cost more than the case.
static RT: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
});

/// What happens to the reader in one step of the story.
#[derive(Debug, Clone)]
enum Action {
    /// The invoice whose payment failed is paid on retry, or else the next period's invoice is paid.
    Pay,
    /// A payment attempt fails: on the invoice already failing, or else on the next period's invoice.
    Fail,
    /// The subscription moves to `PRICES[i]` (nothing happens if it is already there).
    ChangePlan(usize),
    /// Part of a charge that still has something to refund is refunded (`percent` of what remains).
    Refund { charge: usize, percent: i64 },
    /// Cancellation at the end of the period is scheduled, or withdrawn if it was scheduled.
    ToggleCancelAtPeriodEnd,
    /// The subscription ends now.
    End,
    /// The reader changes their name at Stripe.
    Rename,
}

#[derive(Debug, Clone)]
struct Step {
    /// Seconds after the previous step; 0 makes a same-second tie with it.
    gap: i64,
    action: Action,
}

#[derive(Debug, Clone)]
struct Plan {
    first_price: usize,
    steps: Vec<Step>,
}

fn price(i: usize) -> Value {
    let (id, product, amount, interval) = PRICES[i];
    w::price(id, product, amount, interval)
}

fn period_length(i: usize) -> i64 {
    if PRICES[i].3 == "year" { 365 * DAY } else { 30 * DAY }
}

/// The story as it unfolds at Stripe: every object's current state and the events sent so far.
struct Stripe {
    now: i64,
    events: Vec<Value>,
    customer: Value,
    subscription: Value,
    price: usize,
    ended: bool,
    invoices: usize,
    /// The invoice whose payment failed and that Stripe is still retrying.
    failing: Option<Value>,
    charges: Vec<Value>,
    refunds: usize,
}

impl Stripe {
    fn send(&mut self, kind: &str, object: &Value, previous: Option<Value>) {
        let id = format!("evt_{}", self.events.len() + 1);
        self.events.push(w::event(&id, kind, self.now, object.clone(), previous));
    }

    fn item(&mut self) -> &mut Value {
        &mut self.subscription["items"]["data"][0]
    }

    /// A new invoice for the subscription's price; from the second one on, a new billing period
    /// starts with it (announced by the `customer.subscription.updated` the caller sends).
    fn next_invoice(&mut self, status: &str, previous: &mut serde_json::Map<String, Value>) -> Value {
        self.invoices += 1;
        if self.invoices > 1 {
            let item = self.item().clone();
            previous.insert(
                "items".into(),
                json!({"data": [{"current_period_start": item["current_period_start"],
                                  "current_period_end": item["current_period_end"]}]}),
            );
            let (now, length) = (self.now, period_length(self.price));
            self.item()["current_period_start"] = json!(now);
            self.item()["current_period_end"] = json!(now + length);
        }
        let id = format!("in_{}", self.invoices);
        w::invoice(&id, CUSTOMER, SUBSCRIPTION, status, PRICES[self.price].2, self.now)
    }

    /// The payment's charge, as `charge.succeeded` announces it.
    fn charge(&mut self, invoice: &Value) {
        let id = format!("ch_{}", self.charges.len() + 1);
        let mut charge = w::charge(&id, CUSTOMER, invoice["amount_paid"].as_i64().unwrap(), 0, self.now);
        charge["invoice"] = invoice["id"].clone();
        self.send("charge.succeeded", &charge, None);
        self.charges.push(charge);
    }

    /// Sends the subscription's update when something changed, with what it was before.
    fn subscription_updated(&mut self, previous: serde_json::Map<String, Value>) {
        if !previous.is_empty() {
            let subscription = self.subscription.clone();
            self.send("customer.subscription.updated", &subscription, Some(Value::Object(previous)));
        }
    }

    fn set_status(&mut self, status: &str, previous: &mut serde_json::Map<String, Value>) {
        if self.subscription["status"] != status {
            previous.insert("status".into(), self.subscription["status"].clone());
            self.subscription["status"] = json!(status);
        }
    }

    fn pay(&mut self) {
        let mut previous = serde_json::Map::new();
        let invoice = match self.failing.take() {
            Some(mut invoice) => {
                let amount = invoice["amount_due"].clone();
                invoice["status"] = json!("paid");
                invoice["amount_paid"] = amount;
                invoice["amount_remaining"] = json!(0);
                invoice["attempt_count"] = json!(invoice["attempt_count"].as_i64().unwrap() + 1);
                invoice["status_transitions"]["paid_at"] = json!(self.now);
                invoice
            }
            None => self.next_invoice("paid", &mut previous),
        };
        // Stripe announces one payment with both event types.
        self.send("invoice.paid", &invoice, None);
        self.send("invoice.payment_succeeded", &invoice, None);
        self.charge(&invoice);
        self.set_status("active", &mut previous);
        self.subscription_updated(previous);
    }

    fn fail(&mut self) {
        let mut previous = serde_json::Map::new();
        let mut invoice = match self.failing.take() {
            Some(invoice) => invoice,
            None => self.next_invoice("open", &mut previous),
        };
        invoice["attempt_count"] = json!(invoice["attempt_count"].as_i64().unwrap() + 1);
        self.send("invoice.payment_failed", &invoice, None);
        self.failing = Some(invoice);
        self.set_status("past_due", &mut previous);
        self.subscription_updated(previous);
    }

    fn change_plan(&mut self, to: usize) {
        if to == self.price {
            return;
        }
        let old = PRICES[self.price].0;
        self.price = to;
        self.item()["price"] = price(to);
        self.subscription_updated(json!({"items": {"data": [{"price": {"id": old}}]}}).as_object().unwrap().clone());
    }

    fn refund(&mut self, pick: usize, percent: i64) {
        let refundable: Vec<usize> = (0..self.charges.len())
            .filter(|&i| self.charges[i]["amount_refunded"].as_i64() < self.charges[i]["amount"].as_i64())
            .collect();
        if refundable.is_empty() {
            return;
        }
        let charge = &mut self.charges[refundable[pick % refundable.len()]];
        let (amount, refunded) = (charge["amount"].as_i64().unwrap(), charge["amount_refunded"].as_i64().unwrap());
        let part = ((amount - refunded) * percent / 100).max(1);
        charge["amount_refunded"] = json!(refunded + part);
        charge["refunded"] = json!(refunded + part == amount);
        let charge = charge.clone();
        self.refunds += 1;
        let refund = w::refund(&format!("re_{}", self.refunds), charge["id"].as_str().unwrap(), part, self.now);
        self.send("charge.refunded", &charge, None);
        self.send("refund.created", &refund, None);
    }

    fn toggle_cancel_at_period_end(&mut self) {
        let s = &self.subscription;
        let previous = json!({"cancel_at_period_end": s["cancel_at_period_end"], "cancel_at": s["cancel_at"],
                              "canceled_at": s["canceled_at"]});
        let scheduled = !s["cancel_at_period_end"].as_bool().unwrap();
        let end = self.item()["current_period_end"].clone();
        let now = self.now;
        let s = &mut self.subscription;
        s["cancel_at_period_end"] = json!(scheduled);
        s["cancel_at"] = if scheduled { end } else { Value::Null };
        s["canceled_at"] = if scheduled { json!(now) } else { Value::Null };
        self.subscription_updated(previous.as_object().unwrap().clone());
    }

    fn end(&mut self) {
        let now = self.now;
        let s = &mut self.subscription;
        s["status"] = json!("canceled");
        s["ended_at"] = json!(now);
        if s["canceled_at"].is_null() {
            s["canceled_at"] = json!(now);
        }
        self.ended = true;
        let subscription = self.subscription.clone();
        self.send("customer.subscription.deleted", &subscription, None);
    }

    fn rename(&mut self) {
        let old = self.customer["name"].clone();
        self.customer["name"] = json!(format!("Reader {}", self.events.len()));
        let customer = self.customer.clone();
        self.send("customer.updated", &customer, Some(json!({ "name": old })));
    }
}

/// The events of the plan's story, in Stripe's order. Steps that cannot happen any more (a payment
/// after the subscription ended) are left out.
fn story(plan: &Plan) -> Vec<Value> {
    let subscription =
        w::subscription(SUBSCRIPTION, CUSTOMER, "active", price(plan.first_price), T0, (T0, T0 + 30 * DAY));
    let mut stripe = Stripe {
        now: T0 - 100,
        events: Vec::new(),
        customer: w::customer(CUSTOMER, "Reader@Example.com", "A Reader"),
        subscription,
        price: plan.first_price,
        ended: false,
        invoices: 0,
        failing: None,
        charges: Vec::new(),
        refunds: 0,
    };
    for (id, name) in PRODUCTS {
        stripe.send("product.created", &w::product(id, name), None);
    }
    stripe.now = T0;
    let (customer, subscription) = (stripe.customer.clone(), stripe.subscription.clone());
    stripe.send("customer.created", &customer, None);
    stripe.send("customer.subscription.created", &subscription, None);
    for step in &plan.steps {
        stripe.now += step.gap;
        match step.action {
            Action::Pay if !stripe.ended => stripe.pay(),
            Action::Fail if !stripe.ended => stripe.fail(),
            Action::ChangePlan(to) if !stripe.ended => stripe.change_plan(to),
            Action::ToggleCancelAtPeriodEnd if !stripe.ended => stripe.toggle_cancel_at_period_end(),
            Action::End if !stripe.ended => stripe.end(),
            Action::Refund { charge, percent } => stripe.refund(charge, percent),
            Action::Rename => stripe.rename(),
            _ => {}
        }
    }
    stripe.events
}

/// Every object as Stripe's API answers it after the story: the last state the story gave it.
fn latest_states(events: &[Value]) -> BTreeMap<String, Value> {
    let mut latest = BTreeMap::new();
    for event in events {
        let object = &event["data"]["object"];
        latest.insert(object["id"].as_str().unwrap().to_owned(), object.clone());
    }
    latest
}

/// A fresh store and a fake Stripe holding the objects' latest states.
async fn world(latest: &BTreeMap<String, Value>) -> (TestStore, World) {
    let store = support::embedded_store();
    let world = World::new(store.store.clone()).await;
    for object in latest.values() {
        world.stripe.put_object(object.clone());
    }
    (store, world)
}

/// Delivers `events[i]` for each `i` of `order`: the first delivery of an event is applied, every
/// further one is recognised as a duplicate.
async fn deliver_all(world: &World, events: &[Value], order: &[usize]) {
    let mut seen = BTreeSet::new();
    for &i in order {
        let outcome = world.deliver(&events[i]).await;
        let expected = if seen.insert(i) { Outcome::Applied } else { Outcome::Duplicate };
        assert_eq!(outcome, expected, "{} {}", events[i]["id"], events[i]["type"]);
    }
}

/// The record without what depends on the wall clock or on generated ids.
fn comparable(mut record: Value) -> Value {
    let fields = record.as_object_mut().expect("a record is an object");
    for field in ["id", "createdAt", "updatedAt"] {
        fields.remove(field);
    }
    record
}

/// The paths where two JSON values differ, with both values, for a readable failure.
fn differences(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                differences(&x.get(key).cloned().unwrap_or(Value::Null), &y.get(key).cloned().unwrap_or(Value::Null),
                            format!("{path}.{key}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                differences(x, y, format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: in order {a}, shuffled {b}")),
        _ => {}
    }
}

fn usd(totals: &Value) -> i64 {
    totals.as_array().unwrap().iter().filter(|m| m["currency"] == "usd").map(|m| m["amount"].as_i64().unwrap()).sum()
}

/// The timeline entries the story's facts give, by kind: one per payment, failed attempt, refund,
/// plan change, scheduled or withdrawn cancellation, start and end.
fn expected_timeline(events: &[Value]) -> BTreeMap<String, usize> {
    let mut facts = BTreeSet::new();
    for event in events {
        let (kind, object) = (event["type"].as_str().unwrap(), &event["data"]["object"]);
        let previous = &event["data"]["previous_attributes"];
        let fact = match kind {
            "customer.subscription.created" => Some(("subscription_started", object["id"].clone())),
            "customer.subscription.deleted" => Some(("subscription_canceled", object["id"].clone())),
            "invoice.paid" | "invoice.payment_succeeded" => Some(("payment_succeeded", object["id"].clone())),
            "invoice.payment_failed" => Some(("payment_failed", event["id"].clone())),
            "refund.created" => Some(("refund", object["id"].clone())),
            "customer.subscription.updated" if previous["items"]["data"][0]["price"].is_object() => {
                Some(("plan_changed", event["id"].clone()))
            }
            "customer.subscription.updated" if previous["cancel_at_period_end"].is_boolean() => {
                let scheduled = object["cancel_at_period_end"] == true;
                Some((if scheduled { "cancellation_scheduled" } else { "cancellation_withdrawn" }, event["id"].clone()))
            }
            _ => None,
        };
        facts.extend(fact.map(|(kind, id)| (kind, id.to_string())));
    }
    let mut counts = BTreeMap::new();
    for (kind, _) in facts {
        *counts.entry(kind.to_owned()).or_default() += 1;
    }
    counts
}

/// What must hold of a record whatever the order: figures that follow from Stripe's latest states.
fn check_against_story(record: &Value, events: &[Value], latest: &BTreeMap<String, Value>) {
    let invoices: BTreeMap<&str, &Value> =
        latest.iter().filter(|(id, _)| id.starts_with("in_")).map(|(id, v)| (id.as_str(), v)).collect();
    let shown: BTreeMap<&str, &str> = record["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    let expected: BTreeMap<&str, &str> = invoices
        .iter()
        .map(|(id, i)| {
            let failed = i["status"] == "open" && i["attempt_count"].as_i64() > Some(0);
            (*id, if failed { "past_due" } else { i["status"].as_str().unwrap() })
        })
        .collect();
    assert_eq!(shown, expected, "invoices");

    let paid: i64 = invoices.values().filter(|i| i["status"] == "paid").map(|i| i["amount_paid"].as_i64().unwrap()).sum();
    let refunded: i64 =
        latest.iter().filter(|(id, _)| id.starts_with("re_")).map(|(_, r)| r["amount"].as_i64().unwrap()).sum();
    assert_eq!(usd(&record["lifetimeValue"]), paid - refunded, "lifetime value");

    let subscription = &latest[SUBSCRIPTION];
    assert_eq!(record["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(record["subscriptions"][0]["status"], subscription["status"], "subscription status");
    assert_eq!(record["subscriptions"][0]["cancelAtPeriodEnd"], subscription["cancel_at_period_end"]);
    assert_eq!(record["subscriptions"][0]["items"][0]["priceId"], subscription["items"]["data"][0]["price"]["id"]);
    assert_eq!(record["name"], latest[CUSTOMER]["name"], "name");

    let mut timeline: BTreeMap<String, usize> = BTreeMap::new();
    for activity in record["activities"].as_array().unwrap() {
        *timeline.entry(activity["kind"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(timeline, expected_timeline(events), "timeline");
}

async fn in_order_equals_shuffled(plan: &Plan, order: &[usize]) {
    let events = story(plan);
    let latest = latest_states(&events);

    let (_in_order_store, in_order) = world(&latest).await;
    deliver_all(&in_order, &events, &(0..events.len()).collect::<Vec<_>>()).await;
    let expected = in_order.record(EMAIL).await;

    let (_shuffled_store, shuffled) = world(&latest).await;
    deliver_all(&shuffled, &events, order).await;
    assert_eq!(shuffled.customers().await.len(), 1, "one reader, one customer");
    let actual = shuffled.record(EMAIL).await;

    check_against_story(&expected, &events, &latest);
    let mut diff = Vec::new();
    differences(&comparable(expected), &comparable(actual), String::new(), &mut diff);
    assert!(diff.is_empty(), "the shuffled delivery gave another record:\n{}", diff.join("\n"));
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => Just(Action::Pay),
        2 => Just(Action::Fail),
        2 => (0..PRICES.len()).prop_map(Action::ChangePlan),
        2 => (0..4usize, 1..=100i64).prop_map(|(charge, percent)| Action::Refund { charge, percent }),
        1 => Just(Action::ToggleCancelAtPeriodEnd),
        1 => Just(Action::End),
        1 => Just(Action::Rename),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    // Same second often, so ties between states of one object are common; a few seconds; a period.
    let gap = prop_oneof![2 => Just(0), 1 => 1..=2i64, 2 => Just(30 * DAY)];
    (gap, action()).prop_map(|(gap, action)| Step { gap, action })
}

/// A plan and a delivery order of its story: each event one to three times, shuffled.
fn plan_and_order() -> impl Strategy<Value = (Plan, Vec<usize>)> {
    (0..PRICES.len(), vec(step(), 0..=12))
        .prop_map(|(first_price, steps)| Plan { first_price, steps })
        .prop_flat_map(|plan| {
            let count = story(&plan).len();
            let order = vec(1..=3usize, count)
                .prop_map(|times| times.iter().enumerate().flat_map(|(i, &n)| std::iter::repeat_n(i, n)).collect())
                .prop_shuffle();
            (Just(plan), order)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        // Minimal failing cases are printed; nothing is written into the repository.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_delivery_order_gives_the_in_order_record((plan, order) in plan_and_order()) {
        RT.block_on(in_order_equals_shuffled(&plan, &order));
    }
}
