//! The customers API beyond reading, on both stores with the fake Stripe over HTTP: creating a CRM
//! customer (and its Stripe customer, which the events Stripe sends back never duplicate), editing
//! email and name (pushed to Stripe first), and listing by payment status without a scan.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::store::Store;
use shared::sync::Outcome;
use support::stripe_world::{self as sw, PUBLICATION, World};

async fn send(world: &World, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    support::send(&world.state, method, path, body).await
}

fn customers_path() -> String {
    format!("/admin/publications/{PUBLICATION}/customers")
}

async fn creating_checks_the_email_and_can_create_in_stripe(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let (status, created) =
        send(&world, "POST", &customers_path(), Some(json!({"email": " Ann@Example.com ", "name": "Ann"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((created["email"].as_str(), created["name"].as_str()), (Some("ann@example.com"), Some("Ann")));
    assert!(world.stripe.requests().is_empty(), "no Stripe account asked for, no call");

    let (status, answer) = send(&world, "POST", &customers_path(), Some(json!({"email": "ann@example.com"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains(created["id"].as_str().unwrap()));
    for bad in [json!({"email": "not an email"}), json!({"name": "no email"}), json!({"email": "x@y.z", "extra": 1})] {
        assert_eq!(send(&world, "POST", &customers_path(), Some(bad)).await.0, StatusCode::BAD_REQUEST);
    }
    let unknown = json!({"email": "bob@example.com", "stripeAccount": "nope"});
    assert_eq!(send(&world, "POST", &customers_path(), Some(unknown)).await.0, StatusCode::BAD_REQUEST);

    // With a Stripe account: the Stripe customer carries the CRM id and the CRM id is the idempotency key.
    let body = json!({"email": "bob@example.com", "name": "Bob Reader", "stripeAccount": "main"});
    let (status, bob) = send(&world, "POST", &customers_path(), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{bob}");
    let bob_id = bob["id"].as_str().unwrap();
    let stripe_id = bob["stripeCustomerIds"]["main"].as_str().unwrap().to_owned();
    let call = world.stripe.requests().into_iter().find(|r| r.path == "/v1/customers").unwrap();
    assert_eq!(call.param("metadata[crm_customer_id]"), Some(bob_id));
    assert_eq!(call.param("email"), Some("bob@example.com"));
    assert_eq!(call.idempotency_key.as_deref(), Some(format!("crm-{bob_id}").as_str()));
    let in_stripe = world.stripe.object(&stripe_id).unwrap();
    assert_eq!(in_stripe["metadata"]["crm_customer_id"], bob_id);

    // Stripe's customer.created for it comes back: the same record, no second customer.
    let event = sw::event("evt_bob_created", "customer.created", 1_790_000_000, in_stripe, None);
    assert_eq!(world.deliver(&event).await, Outcome::Applied);
    let listed = world.customers().await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(world.record_by_stripe_id(&stripe_id).await["id"], bob_id);
}

async fn edits_reach_stripe_first_and_keep_emails_unique(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let body = json!({"email": "cara@example.com", "name": "Cara", "stripeAccount": "main"});
    let (_, cara) = send(&world, "POST", &customers_path(), Some(body)).await;
    let (_, dan) = send(&world, "POST", &customers_path(), Some(json!({"email": "dan@example.com"}))).await;
    let path = format!("{}/{}", customers_path(), cara["id"].as_str().unwrap());
    let stripe_id = cara["stripeCustomerIds"]["main"].as_str().unwrap().to_owned();

    let (status, edited) =
        send(&world, "PATCH", &path, Some(json!({"email": "cara.new@example.com", "name": "Cara N"}))).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!((edited["email"].as_str(), edited["name"].as_str()), (Some("cara.new@example.com"), Some("Cara N")));
    let in_stripe = world.stripe.object(&stripe_id).unwrap();
    assert_eq!(
        (in_stripe["email"].as_str(), in_stripe["name"].as_str()),
        (Some("cara.new@example.com"), Some("Cara N"))
    );
    let (_, found) = send(&world, "GET", &format!("{}?email=cara.new@example.com", customers_path()), None).await;
    assert_eq!(found["data"][0]["id"], cara["id"]);
    let (_, old) = send(&world, "GET", &format!("{}?email=cara@example.com", customers_path()), None).await;
    assert_eq!(old["data"], json!([]), "the old email is free again");

    // Stripe's customer.updated comes back with what was pushed: nothing moves.
    let event = sw::event("evt_cara_updated", "customer.updated", 1_790_000_100, in_stripe, None);
    world.deliver(&event).await;
    assert_eq!(world.record("cara.new@example.com").await["name"], "Cara N");

    // Another customer's email: 409, and Stripe was not asked.
    let calls = world.stripe.requests().len();
    let (status, _) = send(&world, "PATCH", &path, Some(json!({"email": dan["email"]}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(world.stripe.requests().len(), calls);
    // Stripe refusing the change: the CRM keeps the old values.
    world.stripe.fail_next(1, 400);
    let (status, _) = send(&world, "PATCH", &path, Some(json!({"name": "Never"}))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(world.record("cara.new@example.com").await["name"], "Cara N");
    let missing = format!("{}/cus_crm_01J8Z6W5V7QK3M2N4P6R8S0T1V", customers_path());
    assert_eq!(send(&world, "PATCH", &missing, Some(json!({"name": "x"}))).await.0, StatusCode::NOT_FOUND);
}

async fn listing_by_status_follows_payments(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let mut ids = Vec::new();
    for who in ["eve", "fay", "gus"] {
        let body = json!({"email": format!("{who}@example.com"), "stripeAccount": "main"});
        let (_, c) = send(&world, "POST", &customers_path(), Some(body)).await;
        ids.push((c["id"].as_str().unwrap().to_owned(), c["stripeCustomerIds"]["main"].as_str().unwrap().to_owned()));
    }
    let price = sw::price("price_monthly", "prod_digital", 1500, "month");
    let period = (1_790_000_000, 1_792_592_000);
    for (n, (status, (_, stripe_id))) in ["active", "past_due"].iter().zip(&ids).enumerate() {
        let sub = sw::subscription(&format!("sub_{n}"), stripe_id, status, price.clone(), 1_790_000_000, period);
        world
            .deliver(&sw::event(&format!("evt_sub_{n}"), "customer.subscription.created", 1_790_000_000, sub, None))
            .await;
    }
    let listed = |status: &'static str| {
        let world = &world;
        async move {
            let (code, body) = send(world, "GET", &format!("{}?status={status}&limit=1", customers_path()), None).await;
            assert_eq!(code, StatusCode::OK, "{body}");
            let mut found: Vec<String> =
                body["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
            let mut next = body["next"].as_str().map(str::to_owned);
            while let Some(cursor) = next {
                let path = format!("{}?status={status}&limit=1&cursor={cursor}", customers_path());
                let (_, page) = send(world, "GET", &path, None).await;
                found.extend(page["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()));
                next = page["next"].as_str().map(str::to_owned);
            }
            found
        }
    };
    assert_eq!(listed("current").await, [ids[0].0.clone()]);
    assert_eq!(listed("overdue").await, [ids[1].0.clone()]);
    assert_eq!(listed("none").await, [ids[2].0.clone()]);
    assert!(listed("cancelled").await.is_empty());

    // The past-due subscription is paid: the customer moves from overdue to current.
    let sub = sw::subscription("sub_1", &ids[1].1, "active", price, 1_790_000_000, period);
    world.deliver(&sw::event("evt_sub_1_paid", "customer.subscription.updated", 1_790_000_500, sub, None)).await;
    assert!(listed("overdue").await.is_empty());
    let mut current = listed("current").await;
    current.sort();
    let mut expected = vec![ids[0].0.clone(), ids[1].0.clone()];
    expected.sort();
    assert_eq!(current, expected);

    assert_eq!(
        send(&world, "GET", &format!("{}?status=late", customers_path()), None).await.0,
        StatusCode::BAD_REQUEST
    );
}

for_each_store!(
    creating_checks_the_email_and_can_create_in_stripe,
    edits_reach_stripe_first_and_keep_emails_unique,
    listing_by_status_follows_payments,
);
