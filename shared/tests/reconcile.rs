//! Issue 7's reconciliation acceptance: a fake Stripe account backfilled into the CRM reconciles with
//! no difference, for all time and for a period; after one record is tampered with in three ways and a
//! refund the CRM never saw is added at Stripe, the report names exactly those objects, nothing else.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use shared::domain::customer::Identity;
use shared::domain::ids::AccountKey;
use shared::reconcile::{self, Figure, Mismatches, Period, Report};
use shared::store::Store;
use shared::store::repo::{customers, payments};
use support::stripe_account;
use support::stripe_world::{World, refund};

fn main_account() -> AccountKey {
    AccountKey::parse("main").unwrap()
}

async fn reconcile(world: &World, period: Period) -> Report {
    let stripe = Arc::new(world.stripe.client());
    reconcile::run(world.store.as_ref(), stripe, &world.publication, &main_account(), period).await.expect("reconciles")
}

fn all_time() -> Period {
    Period::parse(None, None, shared::store::now_epoch()).unwrap()
}

/// Every listed id of a kind, by way of differing.
fn listed(m: &Mismatches) -> [Vec<String>; 3] {
    let ids = |l: &reconcile::Listed| l.items.iter().map(|d| d.id.clone()).collect();
    [ids(&m.missing_in_crm), ids(&m.not_at_stripe), ids(&m.different)]
}

/// Changes the record holding Stripe customer `stripe_id`.
async fn tamper(world: &World, stripe_id: &str, change: impl FnOnce(&mut shared::domain::customer::Customer)) {
    let identity = Identity::Stripe(main_account(), stripe_id.to_owned());
    let mut found = customers::find(world.store.as_ref(), &world.publication, &identity).await.unwrap().unwrap();
    payments::read_all(world.store.as_ref(), &mut found.value).await.unwrap();
    let mut after = found.value.clone();
    change(&mut after);
    customers::update(world.store.as_ref(), &found.value, &after, found.version).await.unwrap();
}

/// Paid amounts per currency of the seeded account's first `n` customers.
fn paid(n: usize) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for i in (0..n).filter(|&i| stripe_account::status(i) != "past_due") {
        let price = stripe_account::price_of(i);
        *out.entry(price["currency"].as_str().unwrap().to_owned()).or_default() +=
            price["unit_amount"].as_i64().unwrap();
    }
    out
}

async fn a_backfilled_account_reconciles_and_tampering_is_named(store: Arc<dyn Store>, n: usize) {
    let world = stripe_account::backfilled_world(store, n).await;
    let report = reconcile(&world, all_time()).await;
    assert!(report.matches, "{}", report.table());
    let f = &report.figures;
    let live = (0..n).filter(|&i| stripe_account::status(i) != "canceled").count() as i64;
    let refunds = (0..n).filter(|&i| stripe_account::has_refund(i)).count() as i64;
    assert_eq!(f.customers, Figure { stripe: n as i64, crm: n as i64 });
    assert_eq!(f.active_subscriptions, Figure { stripe: live, crm: live });
    assert_eq!(f.refunds, Figure { stripe: refunds, crm: refunds });
    let sums: BTreeMap<String, i64> = f.paid_invoices.iter().map(|(c, fig)| (c.clone(), fig.crm)).collect();
    assert_eq!(sums, paid(n));

    // A period: the customers (one every ten minutes from START) created on the second day.
    let period = Period::parse(Some("2023-11-15"), Some("2023-11-15"), shared::store::now_epoch()).unwrap();
    let in_day = (0..n).filter(|&i| period.contains(Some(stripe_account::START + i as i64 * 600))).count() as i64;
    assert!(in_day > 0 && in_day < n as i64);
    // A record from before profiles kept Stripe's creation time is dated by Stripe's listing.
    assert!(period.contains(Some(stripe_account::START + 12 * 600)));
    tamper(&world, "cus_bf00012", |c| c.stripe.profiles.get_mut("cus_bf00012").unwrap().state.created = None).await;
    let day = reconcile(&world, period).await;
    assert!(day.matches, "{}", day.table());
    assert_eq!(day.figures.customers, Figure { stripe: in_day, crm: in_day });
    let listed_in_day =
        world.stripe.requests().iter().any(|r| {
            r.path == "/v1/invoices" && r.param("created[gte]") == period.from.map(|f| f.to_string()).as_deref()
        });
    assert!(listed_in_day, "Stripe's list is asked for the period");

    // The CRM loses a customer's identity, a subscription, and an invoice's payment; Stripe gains a refund.
    tamper(&world, "cus_bf00011", |c| {
        c.stripe.profiles.remove("cus_bf00011");
        c.stripe_customer_ids.remove(&main_account());
    })
    .await;
    tamper(&world, "cus_bf00007", |c| {
        c.stripe.subscriptions.remove("sub_bf00007");
    })
    .await;
    tamper(&world, "cus_bf00003", |c| {
        let invoice = &mut c.stripe.invoices.get_mut("in_bf00003").unwrap().state;
        invoice.amount_paid -= 100;
    })
    .await;
    let mut extra = refund("re_unseen", "ch_bf00020", 125, stripe_account::START + 20 * 600 + 7_200);
    extra["currency"] = json!(stripe_account::price_of(20)["currency"]);
    world.stripe.put_object(extra);

    let report = reconcile(&world, all_time()).await;
    assert!(!report.matches);
    let none = || Vec::<String>::new();
    assert_eq!(listed(&report.customers), [vec!["cus_bf00011".to_owned()], none(), none()], "{}", report.table());
    assert_eq!(listed(&report.subscriptions), [vec!["sub_bf00007".to_owned()], none(), none()]);
    assert_eq!(listed(&report.invoices), [none(), none(), vec!["in_bf00003".to_owned()]]);
    assert_eq!(listed(&report.refunds), [vec!["re_unseen".to_owned()], none(), none()]);
    let invoice = &report.invoices.different.items[0];
    assert_eq!(invoice.stripe.as_deref().map(|s| s.starts_with("paid")), Some(true));
    assert_ne!(invoice.stripe, invoice.crm);
    let f = &report.figures;
    assert_eq!((f.customers.stripe - f.customers.crm, f.refunds.stripe - f.refunds.crm), (1, 1));
    assert_eq!(f.active_subscriptions.stripe - f.active_subscriptions.crm, 1, "sub_bf00007 is active");
    let usd = f.paid_invoices["usd"];
    assert_eq!(usd.stripe - usd.crm, 100, "in_bf00003 is a USD invoice");
    assert!(report.table().contains("in_bf00003"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_a_backfilled_account_reconciles_and_tampering_is_named() {
    let t = support::embedded_store();
    a_backfilled_account_reconciles_and_tampering_is_named(t.store.clone(), 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_a_backfilled_account_reconciles_and_tampering_is_named() {
    let t = support::dynamo_store().await;
    a_backfilled_account_reconciles_and_tampering_is_named(t.store.clone(), 60).await;
}

#[test]
fn periods_are_whole_utc_days() {
    let p = Period::parse(Some("2024-02-28"), Some("2024-02-29"), 0).unwrap();
    assert_eq!((p.from, p.to), (Some(1_709_078_400), 1_709_078_400 + 2 * 86_400));
    assert!(p.contains(Some(1_709_078_400)) && !p.contains(Some(p.to)) && !p.contains(None));
    assert!(Period::parse(None, None, 50).unwrap().contains(None));
    assert!(Period::parse(Some("2024-02-30"), None, 2_000_000_000).is_err());
    assert!(Period::parse(Some("2024-03-01"), Some("2024-02-01"), 0).is_err());
    assert!(Period::parse(Some("yesterday"), None, 0).is_err());
}
