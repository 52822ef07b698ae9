//! The Piano history import (issue 25) on both stores, against the fake Piano's lists: every user
//! becomes a record with its profile and access, subscriptions and payments land on them through the
//! webhook path's code, the run stops and resumes from its checkpoint, waits out Piano's failures,
//! links nobody to a Stripe-made record by email alone, and a second import changes nothing. The
//! admin route queues it and the jobs worker runs it in slices.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use shared::backfill::{PianoRunner, Stop};
use shared::domain::customer::{Customer, Identity};
use shared::domain::ids::{Email, PublicationId};
use shared::domain::settings::PublicationSettings;
use shared::jobs::{JobMessage, JobWorker};
use shared::piano::client::{ACCESS_LIST_PATH, USER_LIST_PATH};
use shared::queue::JOBS;
use shared::store::Store;
use shared::store::repo::backfill::{self as jobs, JobProvider, JobState};
use shared::store::repo::publications::{self, StoredSettings};
use shared::store::repo::{customers, duplicates};
use support::fake_piano::FakePiano;
use tokio_util::sync::CancellationToken;

const AID: &str = "AidDaily01";
const API_TOKEN: &str = "piano-api-token-0123456789";
/// Users seeded: three pages of `PAGE` (100) and a part.
const USERS: usize = 230;

fn publication() -> PublicationId {
    PublicationId::parse("daily").unwrap()
}

async fn configure(store: &dyn Store) {
    let settings = json!({
        "name": "The Daily",
        "piano": {"aid": AID, "apiToken": API_TOKEN, "privateKey": "thestringliteralisexactlyfortych"},
        "catalogue": [{"sku": "DIGI", "name": "Digital", "pianoResourceIds": ["RDIGI"]}]
    });
    let parsed = PublicationSettings::parse(settings.to_string().as_bytes(), None).unwrap();
    let stored = StoredSettings { publication_id: publication(), settings: parsed, updated_at: 0 };
    publications::put(store, &stored, None).await.unwrap();
}

fn uid(n: usize) -> String {
    format!("PNIimport{n:04}")
}

/// Piano's history: users, each with a granted access (every third one revoked), a subscription
/// (every fourth cancelled), and a payment of 9.99 EUR (plus a conversion without one).
async fn seeded() -> FakePiano {
    let piano = FakePiano::start().await;
    piano.add_app(AID, API_TOKEN);
    for n in 0..USERS {
        let uid = uid(n);
        piano.add_user(AID, &uid, &format!("reader{n}@example.com"), "Reader", &format!("N{n}"));
        piano.add_access(
            AID,
            &uid,
            json!({"access_id": format!("acc{n}"), "granted": n % 3 != 0, "resource": {"rid": "RDIGI"},
                   "user": {"uid": uid}, "expire_date": 1_900_000_000}),
        );
        let status = if n % 4 == 0 { "cancelled" } else { "active" };
        piano.add_subscription(
            AID,
            json!({"subscription_id": format!("sub{n}"), "status": status, "user": {"uid": uid},
                   "term": {"term_id": "TMDIGI", "resource": {"rid": "RDIGI"}}}),
        );
        piano.add_conversion(
            AID,
            json!({"term_conversion_id": format!("tc{n}"), "user": {"uid": uid},
                   "subscription": {"subscription_id": format!("sub{n}")},
                   "user_payment": {"user_payment_id": format!("up{n}"), "amount": 9.99, "currency": "EUR"}}),
        );
    }
    piano.add_conversion(AID, json!({"term_conversion_id": "tc-free", "user": {"uid": uid(1)}}));
    piano
}

async fn record_of(store: &dyn Store, uid: &str) -> Customer {
    customers::find(store, &publication(), &Identity::Piano(uid.into())).await.unwrap().expect("record of uid").value
}

async fn import_applies_history_resumes_and_changes_nothing_twice(store: Arc<dyn Store>) {
    configure(store.as_ref()).await;
    let piano = seeded().await;
    // A Stripe-made record with one Piano user's email: no evidence, no link.
    let mut stripe_made = Customer::new(publication(), 0);
    stripe_made.email = Some(Email::parse("reader7@example.com").unwrap());
    customers::create(store.as_ref(), &stripe_made).await.unwrap();

    let runner = PianoRunner::new(store.clone(), Arc::new(piano.client()), Some(piano.base_url().to_owned()));
    let zero = runner.start(&publication(), Some(0)).await.unwrap_err();
    assert!(zero.to_string().contains("1 to 100"), "{zero}");
    let (job, created) = runner.start(&publication(), Some(100)).await.unwrap();
    assert!(created);
    assert_eq!((job.provider, job.account.as_ref()), (JobProvider::Piano, None));

    // Interrupted after its first checkpoint, as Ctrl-C or a Lambda's deadline would.
    let token = CancellationToken::new();
    let checkpoints = AtomicUsize::new(0);
    let stop = Stop::on(token.clone());
    let paused = runner
        .run(&publication(), &stop, &|_| {
            checkpoints.fetch_add(1, Ordering::Relaxed);
            token.cancel();
        })
        .await
        .unwrap();
    assert_eq!(paused.state, JobState::Running);
    assert_eq!(paused.stages[0].cursor.as_deref(), Some("100"), "one page of users: {paused:?}");
    assert_eq!((paused.stages[0].objects, paused.stages[0].total), (200, Some(USERS as u64)), "users and accesses");
    assert_eq!(paused.lease_until, 0, "released");

    // Piano failing for longer than the client's own retries is waited out by the run (once, here);
    // the run resumes from the checkpoint.
    piano.clear_requests();
    piano.fail_next(shared::piano::client::MAX_RETRIES as usize + 2, 503);
    let done = runner.run(&publication(), &Stop::never(), &|_| {}).await.unwrap();
    assert_eq!(done.state, JobState::Done, "{:?}", done.error);
    let offsets: Vec<String> =
        piano.requests().iter().filter(|r| r.path == USER_LIST_PATH).filter_map(|r| r.field("offset")).collect();
    assert_eq!(offsets, ["100", "100", "100", "100", "100", "200"], "resumed at 100 (refused four times), then 200");
    assert_eq!(piano.calls_to(ACCESS_LIST_PATH), USERS - 100, "one access list per user of the rest");
    let counts: Vec<(u64, u64)> = done.stages.iter().map(|s| (s.objects, s.skipped)).collect();
    assert_eq!(counts, [(2 * USERS as u64, 0), (USERS as u64, 0), (USERS as u64, 0)]);
    assert_eq!(done.rate_limited, 1, "one failed request waited out: {done:?}");
    assert!(done.requests > USERS as u64, "{done:?}");

    // Every user is a record with what its webhooks would have set.
    for n in [0, 1, 4, 7, 229] {
        let record = record_of(store.as_ref(), &uid(n)).await;
        let entitlement = &record.piano.entitlements["RDIGI"].state;
        let granted = entitlement.status == shared::domain::access::EntitlementStatus::Active;
        assert_eq!(granted, n % 3 != 0, "user {n}");
        let subscription = &record.piano.subscriptions[&format!("sub{n}")].state;
        assert_eq!(subscription.status, if n % 4 == 0 { "canceled" } else { "active" }, "user {n}");
        let eur = shared::domain::money::Currency::parse("eur").unwrap();
        assert_eq!(record.lifetime_value().get(&eur), 999, "one payment, user {n}");
        assert_eq!(record.name.as_deref(), Some(format!("Reader N{n}").as_str()));
    }
    let seven = record_of(store.as_ref(), &uid(7)).await;
    assert_ne!(seven.id, stripe_made.id, "an email alone links nothing");
    let pairs = duplicates::list(store.as_ref(), &publication()).await.unwrap();
    assert!(pairs.iter().any(|d| d.customer_ids.contains(&seven.id) && d.customer_ids.contains(&stripe_made.id)));

    // A second import applies the same history again: the records are as they were.
    let before = customers::list(store.as_ref(), &publication(), 500, None).await.unwrap().0;
    let (again, created) = runner.start(&publication(), Some(100)).await.unwrap();
    assert!(created && again.id != done.id, "a finished import is followed by a new one");
    let second = runner.run(&publication(), &Stop::never(), &|_| {}).await.unwrap();
    assert_eq!(second.state, JobState::Done);
    let after = customers::list(store.as_ref(), &publication(), 500, None).await.unwrap().0;
    assert_eq!(after.len(), before.len(), "no new records");
    let value = |all: &[Customer]| all.iter().map(|c| format!("{:?}", c.lifetime_value())).collect::<Vec<_>>();
    assert_eq!(value(&after), value(&before), "no payment counted twice");
}

async fn a_publication_without_piano_cannot_import(store: Arc<dyn Store>) {
    let settings = PublicationSettings::parse(br#"{"name": "No Piano"}"#, None).unwrap();
    let stored = StoredSettings { publication_id: publication(), settings, updated_at: 0 };
    publications::put(store.as_ref(), &stored, None).await.unwrap();
    let piano = FakePiano::start().await;
    let runner = PianoRunner::new(store.clone(), Arc::new(piano.client()), Some(piano.base_url().to_owned()));
    let refused = runner.start(&publication(), None).await.unwrap_err();
    assert!(refused.to_string().contains("has no Piano application"), "{refused}");
    assert!(jobs::get_piano(store.as_ref(), &publication()).await.unwrap().is_none());
}

for_each_store!(import_applies_history_resumes_and_changes_nothing_twice, a_publication_without_piano_cannot_import);

/// The admin route starts it, the jobs worker runs it in slices (each stops at its deadline and
/// queues the next), and the report shows it with its progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_route_queues_an_import_that_slices_run_to_the_end() {
    let store = support::embedded_store();
    configure(store.store.as_ref()).await;
    let piano = seeded().await;
    let config = shared::api::ApiConfig { piano_api_base: Some(piano.base_url().to_owned()), ..Default::default() };
    let mut state = support::app_state(store.store.clone()).with_config(config);
    state.piano = Arc::new(piano.client());

    let (status, body) = support::send(
        &state,
        "POST",
        "/admin/publications/daily/backfill",
        Some(json!({"provider": "piano", "rate": 100})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!((body["provider"].as_str(), &body["account"]), (Some("piano"), &Value::Null));
    let (status, body) = support::send(
        &state,
        "POST",
        "/admin/publications/daily/backfill",
        Some(json!({"provider": "piano", "account": "main"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (axum::http::StatusCode::BAD_REQUEST, Some("account names a Stripe account; a Piano import takes none"))
    );
    let (status, _) = support::send(&state, "POST", "/admin/publications/daily/backfill", Some(json!({}))).await;
    assert_eq!(status, 400, "a Stripe backfill needs its account");

    let worker = JobWorker::for_state(&state, std::time::Duration::ZERO);
    let mut slices = 0;
    loop {
        let batch = state.queue.receive(JOBS.name, 10, std::time::Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            break;
        }
        let message: JobMessage = serde_json::from_str(&batch[0].body).unwrap();
        assert_eq!(message, JobMessage::PianoBackfill { publication: publication() });
        assert!(worker.handle_until(&batch, tokio::time::Instant::now()).await.is_empty());
        let receipts: Vec<String> = batch.iter().map(|m| m.receipt.clone()).collect();
        state.queue.delete(JOBS.name, &receipts).await.unwrap();
        slices += 1;
        assert!(slices < 50, "the import never finished");
    }
    assert!(slices >= 7, "{slices} slices: one page each");
    let (status, report) = support::send(&state, "GET", "/admin/publications/daily/backfill", None).await;
    assert_eq!(status, 200);
    let job = report["data"].as_array().unwrap().iter().find(|j| j["provider"] == "piano").unwrap().clone();
    assert_eq!(job["state"], "done");
    let stages: Vec<(&str, f64)> = job["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["objectType"].as_str().unwrap(), s["progress"].as_f64().unwrap()))
        .collect();
    assert_eq!(stages, [("users", 1.0), ("subscriptions", 1.0), ("payments", 1.0)]);
    assert_eq!(customers::list(store.store.as_ref(), &publication(), 500, None).await.unwrap().0.len(), USERS);
}
