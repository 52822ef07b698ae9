//! Revenue reporting end to end on both stores: the worked example of docs/metrics.md (three
//! customers, January to March 2026, as Stripe events through the worker, some delivered twice)
//! gives exactly the figures the document states, through the revenue API.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use shared::store::Store;
use support::stripe_world::{self as sw, PUBLICATION, World};

const JAN_10: i64 = 1_768_003_200;
const JAN_20: i64 = 1_768_867_200;
const FEB_01: i64 = 1_769_904_000;
const FEB_10: i64 = 1_770_681_600;
const FEB_15: i64 = 1_771_113_600;
const FEB_16: i64 = 1_771_200_000;
const MAR_05: i64 = 1_772_668_800;
const MAR_10: i64 = 1_773_100_800;
const MAR_25: i64 = 1_774_396_800;

/// The example's events, in the order Stripe sent them.
pub fn worked_example() -> Vec<Value> {
    let monthly = |id: &str, amount| sw::price(id, "prod_digital", amount, "month");
    let period = |start: i64| (start, start + 30 * 86_400);
    let sub = |id: &str, customer: &str, status: &str, price: Value, created: i64| {
        sw::subscription(id, customer, status, price, created, period(created))
    };
    let paid = |id: &str, customer: &str, subscription: &str, amount, at| {
        sw::event(
            &format!("evt_{id}"),
            "invoice.paid",
            at,
            sw::invoice(id, customer, subscription, "paid", amount, at),
            None,
        )
    };
    let mut cara_trial =
        sub("sub_cara", "cus_cara", "trialing", sw::price("price_yearly", "prod_digital", 12_000, "year"), FEB_01);
    cara_trial["trial_end"] = json!(FEB_15);
    let mut cara_active = cara_trial.clone();
    cara_active["status"] = json!("active");
    let mut bob_canceled = sub("sub_bob", "cus_bob", "canceled", monthly("price_10", 1000), JAN_20);
    bob_canceled["canceled_at"] = json!(FEB_15);
    bob_canceled["ended_at"] = json!(FEB_15);
    vec![
        sw::event("evt_ann", "customer.created", JAN_10, sw::customer("cus_ann", "ann@example.com", "Ann"), None),
        sw::event(
            "evt_ann_sub",
            "customer.subscription.created",
            JAN_10 + 1,
            sub("sub_ann", "cus_ann", "active", monthly("price_15", 1500), JAN_10),
            None,
        ),
        paid("in_ann_1", "cus_ann", "sub_ann", 1500, JAN_10 + 2),
        sw::event("evt_bob", "customer.created", JAN_20, sw::customer("cus_bob", "bob@example.com", "Bob"), None),
        sw::event(
            "evt_bob_sub",
            "customer.subscription.created",
            JAN_20 + 1,
            sub("sub_bob", "cus_bob", "active", monthly("price_10", 1000), JAN_20),
            None,
        ),
        paid("in_bob_1", "cus_bob", "sub_bob", 1000, JAN_20 + 2),
        sw::event("evt_cara", "customer.created", FEB_01, sw::customer("cus_cara", "cara@example.com", "Cara"), None),
        sw::event("evt_cara_sub", "customer.subscription.created", FEB_01 + 1, cara_trial, None),
        paid("in_ann_2", "cus_ann", "sub_ann", 1500, FEB_10),
        sw::event("evt_bob_gone", "customer.subscription.deleted", FEB_15, bob_canceled, None),
        sw::event("evt_cara_active", "customer.subscription.updated", FEB_15 + 1, cara_active, None),
        paid("in_cara_1", "cus_cara", "sub_cara", 12_000, FEB_15 + 2),
        sw::event(
            "evt_bob_refund",
            "charge.refunded",
            FEB_16,
            sw::charge("ch_bob_1", "cus_bob", 1000, 500, JAN_20 + 2),
            None,
        ),
        sw::event(
            "evt_ann_up",
            "customer.subscription.updated",
            MAR_05,
            sub("sub_ann", "cus_ann", "active", monthly("price_25", 2500), JAN_10),
            None,
        ),
        paid("in_ann_3", "cus_ann", "sub_ann", 2500, MAR_10),
        sw::event(
            "evt_bob_back",
            "customer.subscription.created",
            MAR_25,
            sub("sub_bob_2", "cus_bob", "active", monthly("price_10", 1000), MAR_25),
            None,
        ),
        paid("in_bob_2", "cus_bob", "sub_bob_2", 1000, MAR_25 + 1),
    ]
}

/// The JSON block of docs/metrics.md's worked example.
fn documented() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md")).unwrap();
    let start = text.find("```json\n").expect("docs/metrics.md has a ```json block") + "```json\n".len();
    let end = start + text[start..].find("```").unwrap();
    serde_json::from_str(&text[start..end]).expect("the worked example is JSON")
}

async fn the_worked_example_gives_the_documented_report(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    for (n, event) in worked_example().iter().enumerate() {
        world.deliver(event).await;
        if n % 3 == 0 {
            // Redeliveries change nothing.
            world.deliver(event).await;
        }
    }
    let (status, report) =
        world.get(&format!("/admin/publications/{PUBLICATION}/revenue?from=2026-01&to=2026-03")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report, documented(), "{}", serde_json::to_string_pretty(&report).unwrap());
}

async fn ranges_are_checked(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    for bad in ["from=2026-13", "from=2026-03&to=2026-01", "to=26-01", "from=2000-01&to=2026-01"] {
        let (status, body) = world.get(&format!("/admin/publications/{PUBLICATION}/revenue?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = world.get(&format!("/admin/publications/{PUBLICATION}/revenue")).await;
    assert_eq!(status, 200);
    assert_eq!(body["currencies"], json!([]), "no movements yet");
    assert_eq!(
        shared::domain::revenue::months_between(body["from"].as_str().unwrap(), body["to"].as_str().unwrap()).len(),
        12
    );
}

/// Settled movements are folded into the stored summary once; later ones (recent or settled since)
/// join it; every answer counts each movement exactly once.
async fn the_summary_folds_each_movement_once(store: Arc<dyn Store>) {
    use shared::domain::ids::{CustomerId, PublicationId};
    use shared::domain::money::Currency;
    use shared::domain::revenue::{Movement, MovementKind};
    use shared::store::repo::revenue::{self, SETTLE_MS};

    let publication = PublicationId::parse("daily").unwrap();
    let movement = |n: i64| Movement {
        at: JAN_10 + n,
        customer: CustomerId::generate(),
        currency: Currency::parse("eur").unwrap(),
        mrr_before: 0,
        mrr_after: 100,
        subscriptions_before: 0,
        subscriptions_after: 1,
        cash: 100,
        kind: Some(MovementKind::New),
        event_id: format!("evt_{n}"),
    };
    let now = 1_800_000_000_000;
    let write = |n: i64, recorded_ms: i64| {
        let op = revenue::put(&publication, &movement(n), recorded_ms).unwrap();
        let store = store.clone();
        async move { store.write(vec![op]).await.unwrap() }
    };
    let customers = |summary: &shared::domain::revenue::Summary| {
        summary.report("2026-01", "2026-01").currencies[0].months[0].figures.new_customers
    };
    for n in 0..5 {
        write(n, now - 10 * SETTLE_MS + n).await;
    }
    write(5, now - 1000).await;
    assert_eq!(customers(&revenue::summary(store.as_ref(), &publication, now).await.unwrap()), 6);
    // Again, with the five settled ones now read from the stored summary.
    assert_eq!(customers(&revenue::summary(store.as_ref(), &publication, now).await.unwrap()), 6);
    // A minute later the sixth has settled too; new ones keep joining.
    write(6, now + 5).await;
    write(7, now + 2 * SETTLE_MS).await;
    let later = now + 2 * SETTLE_MS + 1;
    assert_eq!(customers(&revenue::summary(store.as_ref(), &publication, later).await.unwrap()), 8);
    assert_eq!(customers(&revenue::summary(store.as_ref(), &publication, later + 10 * SETTLE_MS).await.unwrap()), 8);
}

for_each_store!(
    the_worked_example_gives_the_documented_report,
    ranges_are_checked,
    the_summary_folds_each_movement_once
);
