//! `GET /admin/publications/{id}/sync` on both stores: Stripe and Piano events go through the real
//! webhooks, the events queue and the worker loop (an ignored event, a redelivery, an event of an
//! account the settings no longer have, which fails until the dead-letter queue takes it), customers
//! sharing a Gmail mailbox or a name and postcode; the answer's figures, lists and verdict are checked,
//! then a changed email drops its customer out of the duplicates. Buckets of an hour 30 hours ago stay
//! out of the 24 hours, and a Stripe account quiet for days is told to catch up. Batches of parallel
//! workers sharing one `TallyWriter`, as under `crm serve`, count each event once, and additions made
//! at once (as by concurrent Lambda invocations) spread over the hour's buckets and count once.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use shared::domain::ids::AccountKey;
use shared::domain::secret::Secret;
use shared::domain::sync_health::{Counts, LastEvent, Source};
use shared::piano::webhook::encrypt;
use shared::queue::worker::{Backoff, run_batched, run_with_backoff};
use shared::queue::{EVENTS, FORWARD, OutMessage};
use shared::store::Store;
use shared::store::now_epoch;
use shared::store::repo::sync_stats::{self, Addition};
use shared::stripe::signature::sign;
use shared::sync::envelope::{self, Header, Provider};
use shared::sync::tally::TallyWriter;
use shared::sync::worker::EventWorker;
use support::stripe_world::{self as sw, PUBLICATION, World};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const PIANO_KEY: &str = "thestringliteralisexactlyfortych";

async fn call(world: &World, request: Request<Body>) -> (StatusCode, Value) {
    let response = shared::api::all_routes(world.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Posts `event` to the main account's webhook, signed as Stripe signs it.
async fn post_stripe(world: &World, event: &Value) {
    let body = serde_json::to_vec_pretty(event).unwrap();
    let request = Request::post(format!("/webhooks/stripe/{PUBLICATION}/main"))
        .header("stripe-signature", sign(&body, sw::WEBHOOK_SECRET, now_epoch()))
        .body(Body::from(body))
        .unwrap();
    let (status, answer) = call(world, request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn get_piano(world: &World, event: &Value) {
    let data = encrypt(&event.to_string(), &Secret::new(PIANO_KEY));
    let data: String = url::form_urlencoded::byte_serialize(data.as_bytes()).collect();
    let request = Request::get(format!("/webhooks/piano/{PUBLICATION}?data={data}")).body(Body::empty()).unwrap();
    let (status, answer) = call(world, request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Runs the worker loop over the events queue until it is empty and `dead` messages reached its
/// dead-letter queue.
async fn work_until_drained(world: &World, dead: u64) {
    let queue = world.state.queue.clone();
    let worker = Arc::new(EventWorker::new(world.store.clone(), Arc::new(world.stripe.client())));
    let shutdown = CancellationToken::new();
    let quick = Backoff { base: Duration::from_millis(1), max: Duration::from_millis(1) };
    let running = tokio::spawn(run_with_backoff(queue.clone(), EVENTS.name, worker, shutdown.clone(), quick));
    for _ in 0..1500 {
        let waiting = queue.depth(EVENTS.name).await.unwrap();
        if waiting == 0 && queue.depth(EVENTS.dlq_name).await.unwrap() == dead {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(queue.depth(EVENTS.name).await.unwrap(), 0, "the worker drained the queue");
}

fn customer(id: &str, email: &str, name: &str, postcode: Option<&str>) -> Value {
    let mut c = sw::customer(id, email, name);
    c["address"] = json!({"city": null, "country": "GB", "line1": null, "line2": null,
                          "postal_code": postcode, "state": null});
    c
}

async fn id_of(world: &World, email: &str) -> String {
    let email: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    world.record(&email).await["id"].as_str().unwrap().to_owned()
}

async fn health(world: &World) -> Value {
    let (status, body) = world.get(&format!("/admin/publications/{PUBLICATION}/sync")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn source<'a>(body: &'a Value, provider: &str, account: Option<&str>) -> &'a Value {
    body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["provider"] == provider && s["account"].as_str() == account)
        .unwrap_or_else(|| panic!("no source {provider}/{account:?} in {body}"))
}

async fn ingested_events_show_in_figures_lists_and_verdict(store: Arc<dyn Store>) {
    let world = World::new(store.clone()).await;
    world.add_piano(PIANO_KEY).await;
    let t = now_epoch() - 600;
    let price = sw::price("price_m", "prod_unmapped", 1500, "month");
    let jane =
        sw::event("evt_a", "customer.created", t, customer("cus_a", "Jane.Doe+news@gmail.com", "Jane Doe", None), None);
    for event in [
        jane.clone(),
        sw::event(
            "evt_b",
            "customer.created",
            t + 1,
            customer("cus_b", "janedoe@googlemail.com", "J. Doe", None),
            None,
        ),
        sw::event(
            "evt_c",
            "customer.created",
            t + 2,
            customer("cus_c", "zoe@example.com", "Zoë Martin", Some("SW1A 1AA")),
            None,
        ),
        sw::event(
            "evt_d",
            "customer.created",
            t + 3,
            customer("cus_d", "zm@example.org", "zoe  MARTIN", Some("sw1a1aa")),
            None,
        ),
        sw::event("evt_e", "payment_intent.created", t + 4, json!({"id": "pi_1", "object": "payment_intent"}), None),
        // Stripe delivers again: a duplicate.
        jane,
        sw::event(
            "evt_s",
            "customer.subscription.created",
            t + 5,
            sw::subscription("sub_a", "cus_a", "active", price, t, (t, t + 2_592_000)),
            None,
        ),
    ] {
        post_stripe(&world, &event).await;
    }
    get_piano(
        &world,
        &json!({"version": 2, "type": "user_created", "aid": "AidDaily01", "uid": "PNIreader01",
                               "user_email": "piano.reader@example.com"}),
    )
    .await;
    // An event queued for an account the settings no longer have: it fails until the dead-letter queue takes it.
    let header = Header {
        provider: Provider::Stripe,
        publication: world.publication.clone(),
        account: Some(AccountKey::parse("ghost").unwrap()),
        received_at: t,
        received_at_us: None,
        event_id: None,
        event_type: None,
    };
    let ghost = sw::event("evt_g", "customer.created", t, sw::customer("cus_g", "g@example.com", "G"), None);
    world
        .state
        .queue
        .send(EVENTS.name, &[OutMessage::new(envelope::encode(&header, &ghost.to_string()))])
        .await
        .unwrap();
    work_until_drained(&world, 1).await;

    let body = health(&world).await;
    let main = source(&body, "stripe", Some("main"));
    assert_eq!(main["configured"], true);
    assert_eq!(main["last24h"], json!({"applied": 5, "ignored": 1, "duplicates": 1, "failed": 0}), "{body}");
    assert_eq!(main["lastApplied"]["type"], "customer.subscription.created", "the latest event of the batch");
    assert_eq!(main["lastApplied"]["eventTime"], shared::domain::record::rfc3339(t + 5).unwrap());
    assert!(main["lastReceived"]["type"].as_str().is_some_and(|k| k.contains('.')), "{main}");
    assert!(main["lastReceived"]["at"].is_string() && main["lastProcessedAt"].is_string(), "{main}");
    let piano = source(&body, "piano", None);
    assert_eq!(piano["last24h"], json!({"applied": 1, "ignored": 0, "duplicates": 0, "failed": 0}));
    assert_eq!(
        (piano["lastApplied"]["type"].as_str(), piano["lastReceived"]["type"].as_str()),
        (Some("user_created"), Some("user_created"))
    );
    let second = source(&body, "stripe", Some("second"));
    assert_eq!((second["lastReceived"].is_null(), second["last24h"]["applied"].as_u64()), (true, Some(0)));
    let ghost = source(&body, "stripe", Some("ghost"));
    assert_eq!(ghost["configured"], false);
    assert_eq!(ghost["last24h"]["failed"], EVENTS.max_receive_count, "each attempt counts");
    assert_eq!(
        body["dlq"],
        json!([{"queue": EVENTS.dlq_name, "redrivesTo": EVENTS.name, "depth": 1},
               {"queue": FORWARD.dlq_name, "redrivesTo": FORWARD.name, "depth": 0}])
    );
    let unmapped: Vec<&str> =
        body["unmappedProducts"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(unmapped, ["prod_unmapped"]);

    let (a, b) = (id_of(&world, "jane.doe+news@gmail.com").await, id_of(&world, "janedoe@googlemail.com").await);
    let (c, d) = (id_of(&world, "zoe@example.com").await, id_of(&world, "zm@example.org").await);
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(
        body["possibleDuplicates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["reason"].clone(), p["key"].clone(), p["customerIds"].clone()))
            .collect::<Vec<_>>(),
        [
            (json!("email"), json!("janedoe@gmail.com"), json!(sorted(vec![a, b.clone()]))),
            (json!("namePostcode"), json!("zoe martin|SW1A1AA"), json!(sorted(vec![c, d]))),
        ]
    );

    assert_eq!(body["verdict"]["status"], "failing", "{body}");
    let actions: Vec<&str> =
        body["verdict"]["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(
        actions[0].starts_with("Redrive 1 event from events-dlq")
            && actions[0].ends_with("crm dlq redrive events --dynamodb"),
        "{actions:?}"
    );
    let mentions = |needle: &str| actions.iter().any(|a| a.contains(needle));
    assert!(mentions("stripe/ghost: 5 failed attempts in the last 24 hours"), "{actions:?}");
    assert!(mentions("stripe/second: no event received yet"), "{actions:?}");
    assert!(mentions("Map 1 product outside the catalogue") && mentions("stripe/main prod_unmapped"), "{actions:?}");
    assert!(mentions("Review 2 possible duplicate customer groups"), "{actions:?}");
    assert!(!mentions("stripe/main:") && !mentions("piano:"), "the flowing sources need nothing: {actions:?}");

    // The second reader's email changes: the mailbox is no longer shared.
    let moved =
        sw::event("evt_b2", "customer.updated", t + 9, customer("cus_b", "bee@example.com", "J. Doe", None), None);
    world.deliver(&moved).await;
    let body = health(&world).await;
    let left: Vec<&str> =
        body["possibleDuplicates"].as_array().unwrap().iter().map(|p| p["reason"].as_str().unwrap()).collect();
    assert_eq!(left, ["namePostcode"], "{body}");
    assert!(!body["possibleDuplicates"].to_string().contains(&b));
}

async fn only_the_last_24_hours_count_and_quiet_accounts_catch_up(store: Arc<dyn Store>) {
    let world = World::new(store.clone()).await;
    let now = now_epoch();
    let main = Source { provider: "stripe".into(), account: Some("main".into()) };
    let applied = |n| Counts { applied: n, ..Counts::default() };
    let old =
        LastEvent { event_type: Some("invoice.paid".into()), event_at: Some(now - 4 * 86_400), at: now - 4 * 86_400 };
    for (at, counts, last) in [(now - 30 * 3600, applied(7), Some(&old)), (now - 3600, applied(2), None)] {
        let id = ulid::Ulid::new().to_string();
        let addition = Addition { id: &id, source: &main, counts, applied: last, now: at };
        sync_stats::add(store.as_ref(), &world.publication, &addition).await.unwrap();
    }

    let body = health(&world).await;
    let figures = source(&body, "stripe", Some("main"));
    assert_eq!(figures["last24h"]["applied"], 2, "buckets of hours before the last 24 are left out: {body}");
    assert_eq!(figures["lastApplied"]["type"], "invoice.paid");
    assert_eq!(body["verdict"]["status"], "attention");
    let actions = body["verdict"]["actions"].to_string();
    assert!(actions.contains("crm catch-up --publication daily --account main"), "{actions}");
    assert!(!actions.contains("Redrive"), "empty dead-letter queues: {actions}");

    let (status, _) = world.get("/admin/publications/elsewhere/sync").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown publication");
}

/// Polls sync health until the main Stripe account's figures of the last 24 hours are `expected`.
async fn figures_become(world: &World, expected: Value) -> Value {
    for _ in 0..200 {
        let body = health(world).await;
        if source(&body, "stripe", Some("main"))["last24h"] == expected {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("figures never became {expected}: {}", health(world).await);
}

async fn parallel_batches_sharing_one_writer_count_each_event_once(store: Arc<dyn Store>) {
    let world = World::new(store.clone()).await;
    let t = now_epoch() - 600;
    let events: Vec<Value> = (0..48)
        .map(|i| {
            let id = format!("cus_p{i}");
            let body = customer(&id, &format!("reader{i}@example.com"), &format!("Reader {i}"), None);
            sw::event(&format!("evt_p{i}"), "customer.created", t + i, body, None)
        })
        .collect();
    let writer = Arc::new(TallyWriter::default());
    let worker = Arc::new(
        EventWorker::new(world.store.clone(), Arc::new(world.stripe.client())).with_tally_writer(writer.clone()),
    );
    let (shutdown, stop) = (CancellationToken::new(), CancellationToken::new());
    let writing = tokio::spawn({
        let (writer, store, queue, stop) = (writer.clone(), store.clone(), world.state.queue.clone(), stop.clone());
        async move { writer.run(store.as_ref(), Some(queue.as_ref()), stop).await }
    });
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (queue, worker, shutdown) = (world.state.queue.clone(), worker.clone(), shutdown.clone());
            tokio::spawn(run_batched(queue, EVENTS.name, worker, shutdown, Duration::from_millis(5)))
        })
        .collect();
    for event in &events {
        post_stripe(&world, event).await;
    }
    // The writer writes while the workers run: no stop is needed for the figures to show.
    figures_become(&world, json!({"applied": 48, "ignored": 0, "duplicates": 0, "failed": 0})).await;
    // Stripe delivers a few again, after the workers applied them.
    for event in events.iter().step_by(8) {
        post_stripe(&world, event).await;
    }
    while world.state.queue.depth(EVENTS.name).await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    for running in workers {
        running.await.unwrap();
    }
    // What was merged after the last write is written on stop.
    stop.cancel();
    writing.await.unwrap();
    let body = figures_become(&world, json!({"applied": 48, "ignored": 0, "duplicates": 6, "failed": 0})).await;
    let main = source(&body, "stripe", Some("main"));
    assert_eq!(main["lastApplied"]["eventTime"], shared::domain::record::rfc3339(t + 47).unwrap(), "{main}");
    assert_eq!(main["lastApplied"]["type"], "customer.created");
}

async fn concurrent_additions_spread_over_buckets_and_count_once(store: Arc<dyn Store>) {
    let world = World::new(store.clone()).await;
    let now = now_epoch();
    let main = Source { provider: "stripe".into(), account: Some("main".into()) };
    let ids: Vec<String> = (0..32).map(|_| ulid::Ulid::new().to_string()).collect();
    // As concurrent Lambda invocations do: each retries its own addition on a conflict.
    let add = |id: &str, i: i64| {
        let (store, publication, main, id) = (store.clone(), world.publication.clone(), main.clone(), id.to_owned());
        async move {
            let last = LastEvent { event_type: Some("invoice.paid".into()), event_at: Some(now - 100 + i), at: now };
            let counts = Counts { applied: 2, duplicates: 1, ..Counts::default() };
            let addition = Addition { id: &id, source: &main, counts, applied: Some(&last), now };
            loop {
                match sync_stats::add(store.as_ref(), &publication, &addition).await {
                    Err(shared::store::StoreError::ConditionFailed { .. }) => tokio::task::yield_now().await,
                    other => return other.unwrap(),
                }
            }
        }
    };
    let running: Vec<_> = ids.iter().zip(0..).map(|(id, i)| tokio::spawn(add(id, i))).collect();
    for r in running {
        r.await.unwrap();
    }
    // A retry of an addition whose answer was lost.
    add(&ids[5], 5).await;

    let body = health(&world).await;
    let figures = source(&body, "stripe", Some("main"));
    assert_eq!(figures["last24h"], json!({"applied": 64, "ignored": 0, "duplicates": 32, "failed": 0}), "{body}");
    let latest = shared::domain::record::rfc3339(now - 100 + 31).unwrap();
    assert_eq!(figures["lastApplied"]["eventTime"], latest, "the latest event, whichever addition ran last: {body}");
    let buckets = sync_stats::buckets_since(store.as_ref(), &world.publication, now).await.unwrap();
    assert!(buckets.len() > 1, "32 additions in one bucket: {buckets:?}");
    assert!(buckets.len() as u64 <= sync_stats::BUCKET_SHARDS);
}

for_each_store!(
    concurrent_additions_spread_over_buckets_and_count_once,
    ingested_events_show_in_figures_lists_and_verdict,
    only_the_last_24_hours_count_and_quiet_accounts_catch_up,
    parallel_batches_sharing_one_writer_count_each_event_once
);
