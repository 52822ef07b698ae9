//! The Stripe sync end to end on both stores: events (fixture shapes, old API shapes, Stripe's real
//! sample events) through the worker into customer records, read back over the customers API.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use shared::store::Store;
use shared::sync::Outcome;
use support::stripe_world::{self as w, World};

const DAY: i64 = 86_400;
const T0: i64 = 1_750_000_000;

fn monthly() -> Value {
    w::price("price_monthly", "prod_digital", 1500, "month")
}

/// The story of one reader, in Stripe's order.
fn lifecycle() -> Vec<Value> {
    let sub = w::subscription("sub_1", "cus_A", "active", monthly(), T0, (T0, T0 + 30 * DAY));
    let mut past_due = sub.clone();
    past_due["status"] = json!("past_due");
    let mut failed = w::invoice("in_2", "cus_A", "sub_1", "open", 1500, T0 + 30 * DAY);
    failed["attempt_count"] = json!(1);
    vec![
        w::event("evt_prod", "product.created", T0 - 10, w::product("prod_digital", "Digital monthly"), None),
        w::event("evt_c1", "customer.created", T0, w::customer("cus_A", "Reader@Example.com", "A Reader"), None),
        w::event("evt_s1", "customer.subscription.created", T0 + 1, sub.clone(), None),
        w::event("evt_i1", "invoice.paid", T0 + 2, w::invoice("in_1", "cus_A", "sub_1", "paid", 1500, T0 + 2), None),
        w::event(
            "evt_i1b",
            "invoice.payment_succeeded",
            T0 + 2,
            w::invoice("in_1", "cus_A", "sub_1", "paid", 1500, T0 + 2),
            None,
        ),
        w::event("evt_i2", "invoice.payment_failed", T0 + 30 * DAY, failed, None),
        w::event(
            "evt_s2",
            "customer.subscription.updated",
            T0 + 30 * DAY + 1,
            past_due,
            Some(json!({"status": "active"})),
        ),
    ]
}

async fn a_lifecycle_builds_the_record(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    for event in lifecycle() {
        assert_eq!(world.deliver(&event).await, Outcome::Applied, "{}", event["id"]);
    }
    let record = world.record("reader@example.com").await;
    assert_eq!(record["email"], "reader@example.com");
    assert_eq!(record["name"], "A Reader");
    assert_eq!(record["stripeCustomerIds"], json!({"main": "cus_A"}));
    assert_eq!(record["paymentStatus"], "overdue");
    assert_eq!(record["plan"]["priceId"], "price_monthly");
    assert_eq!(record["plan"]["productName"], "Digital monthly");
    assert_eq!(record["plan"]["amount"], 1500);
    assert_eq!(record["plan"]["interval"], "month");
    assert_eq!(record["billingCycle"]["currentPeriodStart"], "2025-06-15T15:06:40Z");
    assert_eq!(record["lifetimeValue"], json!([{"currency": "usd", "amount": 1500}]));
    assert_eq!(record["mrr"], json!([{"currency": "usd", "amount": 1500}]));
    let statuses: Vec<&str> =
        record["invoices"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["past_due", "paid"]);
    let kinds: Vec<&str> =
        record["activities"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    // invoice.paid and invoice.payment_succeeded announce one payment: one entry.
    assert_eq!(kinds, ["payment_failed", "payment_succeeded", "subscription_started"]);
    assert_eq!(record["activities"][1]["at"], "2025-06-15T15:06:42Z", "one `at`, in RFC 3339");

    // The customer pays; a refund follows.
    let mut paid = w::invoice("in_2", "cus_A", "sub_1", "paid", 1500, T0 + 30 * DAY);
    paid["attempt_count"] = json!(2);
    world.deliver(&w::event("evt_i2p", "invoice.paid", T0 + 31 * DAY, paid, None)).await;
    let active = w::subscription("sub_1", "cus_A", "active", monthly(), T0, (T0 + 30 * DAY, T0 + 60 * DAY));
    world
        .deliver(&w::event(
            "evt_s3",
            "customer.subscription.updated",
            T0 + 31 * DAY,
            active,
            Some(json!({"status": "past_due"})),
        ))
        .await;
    let charge = w::charge("ch_1", "cus_A", 1500, 500, T0 + 2);
    world.stripe.put_object(charge.clone());
    world.deliver(&w::event("evt_ch", "charge.refunded", T0 + 32 * DAY, charge, None)).await;
    world
        .deliver(&w::event(
            "evt_re",
            "refund.created",
            T0 + 32 * DAY,
            w::refund("re_1", "ch_1", 500, T0 + 32 * DAY),
            None,
        ))
        .await;
    let record = world.record("reader@example.com").await;
    assert_eq!(record["paymentStatus"], "current");
    // 1500 + 1500 paid, 500 refunded once (seen on the charge and as a refund).
    assert_eq!(record["lifetimeValue"], json!([{"currency": "usd", "amount": 2500}]));
    assert_eq!(record["activities"][0]["kind"], "refund");
}

async fn redeliveries_change_nothing(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    for event in lifecycle() {
        world.deliver(&event).await;
    }
    let once = world.record("reader@example.com").await;
    for _ in 0..4 {
        for event in lifecycle() {
            assert_eq!(world.deliver(&event).await, Outcome::Duplicate, "{}", event["id"]);
        }
    }
    let five_times = world.record("reader@example.com").await;
    assert_eq!(strip_times(once), strip_times(five_times));
    assert_eq!(world.customers().await.len(), 1);
}

/// Record fields that depend on the wall clock, not on events.
fn strip_times(mut record: Value) -> Value {
    record["updatedAt"] = Value::Null;
    record["createdAt"] = Value::Null;
    record["id"] = Value::Null;
    record
}

async fn older_states_never_overwrite_newer_ones(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let events = lifecycle();
    for event in events.iter().rev() {
        world.deliver(event).await;
    }
    let record = world.record("reader@example.com").await;
    assert_eq!(record["paymentStatus"], "overdue");
    assert_eq!(record["subscriptions"][0]["status"], "past_due");
    assert_eq!(record["invoices"][0]["status"], "past_due");
}

async fn same_second_ties_are_settled_by_stripe(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let period = (T0, T0 + 30 * DAY);
    let active = w::subscription("sub_t", "cus_T", "active", monthly(), T0, period);
    let mut canceling = active.clone();
    canceling["cancel_at_period_end"] = json!(true);
    world.stripe.put_object(w::customer("cus_T", "tie@example.com", "Tie"));
    // Stripe's current state is the later one; the events carry the same second in the wrong order.
    world.stripe.put_object(canceling.clone());
    world
        .deliver(&w::event(
            "evt_t2",
            "customer.subscription.updated",
            T0 + 5,
            canceling,
            Some(json!({"cancel_at_period_end": false})),
        ))
        .await;
    world.stripe.clear_requests();
    world
        .deliver(&w::event(
            "evt_t1",
            "customer.subscription.updated",
            T0 + 5,
            active,
            Some(json!({"status": "trialing"})),
        ))
        .await;
    let asked: Vec<String> = world.stripe.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(asked, ["GET /v1/subscriptions/sub_t"]);
    let record = world.record("tie@example.com").await;
    assert_eq!(record["subscriptions"][0]["cancelAtPeriodEnd"], true);
}

async fn one_person_paying_through_two_accounts_is_one_customer(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    world
        .deliver_to(
            "main",
            &w::event("evt_m", "customer.created", T0, w::customer("cus_M", "two@example.com", "Two"), None),
        )
        .await
        .unwrap();
    world
        .deliver_to(
            "second",
            &w::event("evt_s", "customer.created", T0, w::customer("cus_S", "TWO@example.com ", "Two"), None),
        )
        .await
        .unwrap();
    let customers = world.customers().await;
    assert_eq!(customers.len(), 1, "{customers:?}");
    let record = world.record("two@example.com").await;
    assert_eq!(record["stripeCustomerIds"], json!({"main": "cus_M", "second": "cus_S"}));
}

async fn the_crm_id_in_stripe_metadata_links_to_that_customer(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    world
        .deliver(&w::event("evt_a", "customer.created", T0, w::customer("cus_1", "first@example.com", "Reader"), None))
        .await;
    let first = world.record("first@example.com").await;
    let mut other = w::customer("cus_2", "other-address@example.com", "Reader");
    other["metadata"] = json!({"crm_customer_id": first["id"]});
    world.deliver(&w::event("evt_b", "customer.created", T0 + 1, other, None)).await;
    assert_eq!(world.customers().await.len(), 1);
    let record = world.record("other-address@example.com").await;
    assert_eq!(record["id"], first["id"]);
    assert_eq!(record["additionalStripeCustomerIds"], json!([{"account": "main", "id": "cus_2"}]));
    assert_eq!(record["stripeCustomerIds"], json!({"main": "cus_1"}));
}

async fn concurrent_deliveries_create_one_customer(store: Arc<dyn Store>) {
    let world = Arc::new(World::new(store).await);
    world.stripe.put_object(w::customer("cus_R", "race@example.com", "Racer"));
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let world = world.clone();
            tokio::spawn(async move {
                let invoice = w::invoice(&format!("in_r{n}"), "cus_R", "sub_r", "paid", 100, T0 + n);
                world.deliver(&w::event(&format!("evt_r{n}"), "invoice.paid", T0 + n, invoice, None)).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Outcome::Applied);
    }
    assert_eq!(world.customers().await.len(), 1);
    let record = world.record("race@example.com").await;
    assert_eq!(record["invoices"].as_array().unwrap().len(), 12);
    assert_eq!(record["lifetimeValue"], json!([{"currency": "usd", "amount": 1200}]));
}

async fn old_api_shapes_give_the_same_record(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    // 2020-era shapes: period and plan on the subscription, `invoice.subscription`.
    let mut sub = w::subscription("sub_o", "cus_O", "active", monthly(), T0, (0, 0));
    let item = &mut sub["items"]["data"][0];
    item["plan"] = json!({"id": "price_monthly", "object": "plan", "amount": 1500, "currency": "usd", "interval": "month",
                          "interval_count": 1, "product": "prod_digital", "usage_type": "licensed"});
    item["price"] = Value::Null;
    item.as_object_mut().unwrap().remove("current_period_start");
    item.as_object_mut().unwrap().remove("current_period_end");
    sub["current_period_start"] = json!(T0);
    sub["current_period_end"] = json!(T0 + 30 * DAY);
    let mut invoice = w::invoice("in_o", "cus_O", "sub_o", "paid", 1500, T0);
    invoice["parent"] = Value::Null;
    invoice["subscription"] = json!("sub_o");
    world
        .deliver(&w::event("evt_o1", "customer.created", T0, w::customer("cus_O", "old@example.com", "Old"), None))
        .await;
    world.deliver(&w::event("evt_o2", "customer.subscription.created", T0, sub, None)).await;
    world.deliver(&w::event("evt_o3", "invoice.paid", T0, invoice, None)).await;
    let record = world.record("old@example.com").await;
    assert_eq!(record["plan"]["priceId"], "price_monthly");
    assert_eq!(record["plan"]["amount"], 1500);
    assert_eq!(record["billingCycle"]["currentPeriodStart"], "2025-06-15T15:06:40Z");
    assert_eq!(record["invoices"][0]["subscriptionId"], "sub_o");
    assert_eq!(record["mrr"], json!([{"currency": "usd", "amount": 1500}]));
}

/// Every fixture object of a type the sync reads, wrapped in each event type that carries it.
async fn every_fixture_shape_is_applied(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let cases = [
        ("customer", vec!["customer.created", "customer.updated"]),
        ("deleted_customer", vec!["customer.deleted"]),
        (
            "subscription",
            vec![
                "customer.subscription.created",
                "customer.subscription.updated",
                "customer.subscription.deleted",
                "customer.subscription.paused",
                "customer.subscription.resumed",
                "customer.subscription.trial_will_end",
            ],
        ),
        (
            "subscription_schedule",
            vec!["subscription_schedule.created", "subscription_schedule.updated", "subscription_schedule.released"],
        ),
        (
            "invoice",
            vec![
                "invoice.created",
                "invoice.finalized",
                "invoice.sent",
                "invoice.paid",
                "invoice.payment_succeeded",
                "invoice.payment_failed",
                "invoice.voided",
                "invoice.marked_uncollectible",
            ],
        ),
        ("invoice_payment", vec!["invoice_payment.paid"]),
        ("charge", vec!["charge.succeeded", "charge.failed", "charge.refunded"]),
        ("refund", vec!["refund.created", "refund.updated"]),
        ("product", vec!["product.created", "product.updated"]),
        ("deleted_product", vec!["product.deleted"]),
        ("price", vec!["price.created", "price.updated"]),
        ("deleted_price", vec!["price.deleted"]),
        ("plan", vec!["plan.created"]),
        ("checkout.session", vec!["checkout.session.completed"]),
    ];
    // The fixtures' charge has no customer; give the refund's charge one at "Stripe" so it can be attached.
    let mut charge = support::fake_stripe::fixture("charge");
    charge["customer"] = json!("cus_QXg1o8vcGmoR32");
    world.stripe.put_object(charge);
    let mut n = 0;
    for (resource, kinds) in cases {
        for kind in kinds {
            n += 1;
            let event = w::event(&format!("evt_fx{n}"), kind, T0 + n, support::fake_stripe::fixture(resource), None);
            let outcome = world.deliver(&event).await;
            assert!(
                matches!(outcome, Outcome::Applied | Outcome::Ignored(_)),
                "{kind} with the {resource} fixture: {outcome:?}"
            );
            if !["charge", "checkout.session", "invoice_payment"].contains(&resource) {
                assert_eq!(outcome, Outcome::Applied, "{kind} with the {resource} fixture");
            }
        }
    }
    let record = world.record_by_stripe_id("cus_QXg1o8vcGmoR32").await;
    assert_eq!(record["subscriptions"][0]["id"], "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw");
    assert_eq!(record["invoices"][0]["id"], "in_1Pgc6tB7WZ01zgkWu9fdqL6I");
}

/// Stripe's real events of an old API version: each is applied or acknowledged, never an error,
/// and a second delivery of each is a duplicate. The captured files reuse a few event ids (they were
/// test templates), so each is first delivered under an id of its own, then as captured.
async fn every_real_sample_event_is_applied_or_acknowledged(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stripe/sample-events");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 71);
    let events: Vec<Value> =
        files.iter().map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()).collect();
    let renamed: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(n, e)| {
            let mut e = e.clone();
            e["id"] = json!(format!("evt_sample{n}"));
            e
        })
        .collect();
    // Stripe holds the objects the events name; the sync reads a refund's charge and a payment's invoice there.
    for event in &events {
        if ["charge", "invoice"].contains(&event["data"]["object"]["object"].as_str().unwrap_or_default()) {
            world.stripe.put_object(event["data"]["object"].clone());
        }
    }
    // The invoice of the captured invoice_payment and the charge of the captured refunds are not among
    // the files: Stripe would hold them; stand in copies of captured ones.
    let captured = |kind: &str| events.iter().find(|e| e["type"] == kind).unwrap()["data"]["object"].clone();
    let mut invoice = captured("invoice.paid");
    invoice["id"] = captured("invoice_payment.paid")["invoice"].clone();
    world.stripe.put_object(invoice);
    let mut charge = captured("charge.succeeded");
    charge["id"] = captured("refund.created")["charge"].clone();
    world.stripe.put_object(charge);
    for (event, file) in renamed.iter().zip(&files) {
        let body = event.to_string();
        let parsed = shared::stripe::event::Event::parse(body.as_bytes()).unwrap();
        // The worker's one pass, when ingestion named the type, reads the same event.
        let in_one_pass = shared::stripe::event::Event::parse_as(body.as_bytes(), &parsed.kind).unwrap();
        assert_eq!(format!("{in_one_pass:?}"), format!("{parsed:?}"), "{}", file.display());
        let applies = !matches!(parsed.payload, shared::stripe::event::Payload::Other);
        let outcome = world.deliver(event).await;
        if applies {
            assert_eq!(outcome, Outcome::Applied, "{}", file.display());
        } else {
            assert!(matches!(outcome, Outcome::Ignored(_)), "{}: {outcome:?}", file.display());
        }
    }
    for event in &renamed {
        assert_eq!(world.deliver(event).await, Outcome::Duplicate, "{}", event["type"]);
    }
    for event in &events {
        world.deliver(event).await;
    }
    assert!(!world.customers().await.is_empty());
}

/// Stripe may show an email that another CRM customer holds: the event applies, the email stays unique.
async fn an_email_taken_by_another_customer_is_not_moved(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    world
        .deliver(&w::event("evt_e1", "customer.created", T0, w::customer("cus_E1", "one@example.com", "One"), None))
        .await;
    world
        .deliver(&w::event("evt_e2", "customer.created", T0, w::customer("cus_E2", "two@example.com", "Two"), None))
        .await;
    let changed = w::customer("cus_E2", "one@example.com", "Two Renamed");
    assert_eq!(world.deliver(&w::event("evt_e3", "customer.updated", T0 + 1, changed, None)).await, Outcome::Applied);
    assert_eq!(world.customers().await.len(), 2);
    let two = world.record("two@example.com").await;
    assert_eq!(two["name"], "Two Renamed");
    assert_eq!(world.record("one@example.com").await["stripeCustomerIds"], json!({"main": "cus_E1"}));
}

/// A batch reports only its failed messages (SQS partial batch response): the others are done.
async fn a_batch_fails_only_its_bad_messages(store: Arc<dyn Store>) {
    use shared::queue::Received;
    use shared::queue::worker::BatchHandler;
    let world = World::new(store).await;
    let message =
        |id: &str, body: String| Received { id: id.into(), receipt: format!("r-{id}"), body, receive_count: 1 };
    let good = w::event("evt_ok", "customer.created", T0, w::customer("cus_ok", "ok@example.com", "Ok"), None);
    let header = |publication: &str| {
        serde_json::to_string(
            &json!({"provider": "stripe", "publication": publication, "account": "main", "receivedAt": 0}),
        )
        .unwrap()
    };
    let batch = vec![
        message("m1", format!("{}\n{}", header("daily"), good)),
        message("m2", format!("{}\n{}", header("unknown-publication"), good)),
        message("m3", "not a queue message".into()),
    ];
    let mut failed = world.worker.handle(&batch).await;
    failed.sort();
    assert_eq!(failed, ["m2", "m3"]);
    assert_eq!(world.record("ok@example.com").await["stripeCustomerIds"], json!({"main": "cus_ok"}));
}

for_each_store!(
    an_email_taken_by_another_customer_is_not_moved,
    a_batch_fails_only_its_bad_messages,
    a_lifecycle_builds_the_record,
    redeliveries_change_nothing,
    older_states_never_overwrite_newer_ones,
    same_second_ties_are_settled_by_stripe,
    one_person_paying_through_two_accounts_is_one_customer,
    the_crm_id_in_stripe_metadata_links_to_that_customer,
    concurrent_deliveries_create_one_customer,
    old_api_shapes_give_the_same_record,
    every_fixture_shape_is_applied,
    every_real_sample_event_is_applied_or_acknowledged,
);
