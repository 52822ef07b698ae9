//! A Stripe account with a history, for the fake Stripe: `n` customers, each with a subscription and
//! its invoice, now and then a one-off charge and a refund; every object built from Stripe's fixtures
//! by `stripe_world`'s builders. Deterministic: customer `i` is the same in every run, and the helpers
//! say what their record must show.

use std::sync::Arc;

use serde_json::{Value, json};
use shared::backfill::{Runner, Stop};
use shared::domain::ids::AccountKey;
use shared::store::Store;
use shared::store::repo::backfill::JobState;

use super::stripe_world::{World, charge, customer, invoice, price, product, refund, subscription};

/// The first customer's creation time; each next one is ten minutes later.
pub const START: i64 = 1_700_000_000;

pub fn catalogue() -> Vec<Value> {
    let mut eur = price("price_bf_eur_month", "prod_bf_digital", 1500, "month");
    eur["currency"] = json!("eur");
    vec![
        product("prod_bf_digital", "Digital"),
        product("prod_bf_print", "Print"),
        price("price_bf_month", "prod_bf_digital", 999, "month"),
        price("price_bf_year", "prod_bf_print", 9900, "year"),
        eur,
    ]
}

/// How customer `i` stands: one in ten canceled, one in seventeen past due, the others active.
pub fn status(i: usize) -> &'static str {
    if i.is_multiple_of(10) {
        "canceled"
    } else if i.is_multiple_of(17) {
        "past_due"
    } else {
        "active"
    }
}

/// Customer `i`'s price: monthly USD, yearly USD or monthly EUR, in turn.
pub fn price_of(i: usize) -> Value {
    catalogue()[2 + i % 3].clone()
}

/// Customer `i` holds a one-off charge when `i` is a multiple of 10, half refunded for multiples of 50.
pub fn has_charge(i: usize) -> bool {
    i.is_multiple_of(10)
}

pub fn has_refund(i: usize) -> bool {
    i.is_multiple_of(50)
}

/// Everything customer `i` has at Stripe: the customer, a subscription, its invoice (paid, or open
/// when past due), and the charge and refund above.
pub fn customer_objects(i: usize) -> Vec<Value> {
    let created = START + i as i64 * 600;
    let cus = format!("cus_bf{i:05}");
    let mut c = customer(&cus, &format!("reader{i}@example.com"), &format!("Reader {i}"));
    c["created"] = json!(created);
    let price = price_of(i);
    let amount = price["unit_amount"].as_i64().unwrap_or(0);
    let currency = price["currency"].clone();
    let sub_id = format!("sub_bf{i:05}");
    let mut s = subscription(&sub_id, &cus, status(i), price, created + 60, (created + 60, created + 60 + 30 * 86_400));
    if status(i) == "canceled" {
        s["canceled_at"] = json!(created + 86_400);
        s["ended_at"] = json!(created + 86_400);
    }
    let invoice_status = if status(i) == "past_due" { "open" } else { "paid" };
    let mut inv = invoice(&format!("in_bf{i:05}"), &cus, &sub_id, invoice_status, amount, created + 60);
    inv["currency"] = currency.clone();
    let mut out = vec![c, s, inv];
    if has_charge(i) {
        let refunded = if has_refund(i) { 250 } else { 0 };
        let mut ch = charge(&format!("ch_bf{i:05}"), &cus, 500, refunded, created + 300);
        ch["currency"] = currency.clone();
        out.push(ch);
    }
    if has_refund(i) {
        let mut re = refund(&format!("re_bf{i:05}"), &format!("ch_bf{i:05}"), 250, created + 3_600);
        re["currency"] = currency;
        out.push(re);
    }
    out
}

/// The whole account: catalogue, then `n` customers' objects.
pub fn objects(n: usize) -> Vec<Value> {
    catalogue().into_iter().chain((0..n).flat_map(customer_objects)).collect()
}

/// A publication whose main Stripe account holds `n` customers' history, backfilled into `store`.
pub async fn backfilled_world(store: Arc<dyn Store>, n: usize) -> World {
    let world = World::new(store.clone()).await;
    world.stripe.put_objects(objects(n));
    let runner = Runner::new(store, Arc::new(world.stripe.client()));
    let account = AccountKey::parse("main").expect("account key");
    runner.start(&world.publication, &account, Some(100)).await.expect("backfill starts");
    let job = runner.run(&world.publication, &account, &Stop::never(), &|_| {}).await.expect("backfill runs");
    assert_eq!(job.state, JobState::Done, "{job:?}");
    world
}
