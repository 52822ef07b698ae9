//! The Piano sync on both stores: users (profile fields read from Piano's API when the event lacks them,
//! email changes), subscriptions and payments (payment status and lifetime value next to Stripe's),
//! the catalogue (product names, unmapped resources), and the same idempotency and order guarantees as
//! the Stripe path: a property test delivers shuffled streams with duplicates.

mod support;

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::domain::customer::{Customer, Identity};
use shared::domain::ids::{Email, PublicationId};
use shared::domain::piano::PianoPaymentStatus;
use shared::domain::record::{CustomerRecord, products_of};
use shared::domain::settings::PublicationSettings;
use shared::store::Store;
use shared::store::repo::publications::{self, StoredSettings};
use shared::store::repo::{activities, customers, duplicates, ledger, payments, unmapped};
use shared::sync::Outcome;
use shared::sync::envelope::{self, Header, Provider};
use shared::sync::link::{self, Evidence};
use shared::sync::worker::EventWorker;
use support::fake_piano::FakePiano;

const AID: &str = "AidDaily01";
const API_TOKEN: &str = "piano-api-token-0123456789";

fn publication() -> PublicationId {
    PublicationId::parse("daily").unwrap()
}

async fn configure(store: &dyn Store) {
    let settings = json!({
        "name": "The Daily",
        "piano": {"aid": AID, "apiToken": API_TOKEN, "privateKey": "thestringliteralisexactlyfortych"},
        "catalogue": [{"sku": "EBOOK-42", "name": "Election guide (ebook)", "stripeProductIds": ["prod_guide"],
                       "pianoResourceIds": ["RGUIDE"]}],
        "automations": [{"id": "refunds", "on": "refund", "do": [{"logActivity": {"message": "Refunded"}}]}]
    });
    let parsed = PublicationSettings::parse(settings.to_string().as_bytes(), None).unwrap();
    let stored = StoredSettings { publication_id: publication(), settings: parsed, updated_at: 0 };
    publications::put(store, &stored, None).await.unwrap();
}

fn worker(store: Arc<dyn Store>, piano: &FakePiano) -> EventWorker {
    let stripe = shared::stripe::client::HttpStripe::new("http://127.0.0.1:9").unwrap();
    EventWorker::new(store, Arc::new(stripe)).with_piano(Arc::new(piano.client()), Some(piano.base_url().to_owned()))
}

/// A queue message for event `n` of a stream: Piano's JSON, received at second `1_800_000_000 + n`
/// (microsecond `n` within it, so order is total).
fn message(n: i64, event: &Value) -> String {
    let header = Header {
        provider: Provider::Piano,
        publication: publication(),
        account: None,
        received_at: 1_800_000_000 + n / 1000,
        received_at_us: Some(1_800_000_000_000_000 + n),
        event_id: Some(format!("pn_test{n:04}")),
        event_type: None,
    };
    envelope::encode(&header, &event.to_string())
}

fn event(kind: &str, uid: &str, extra: Value) -> Value {
    let mut event = json!({"version": 2, "type": kind, "aid": AID, "uid": uid});
    if let (Some(map), Value::Object(more)) = (event.as_object_mut(), extra) {
        map.extend(more);
    }
    event
}

async fn customer(store: &dyn Store, uid: &str) -> Customer {
    customers::find(store, &publication(), &Identity::Piano(uid.into())).await.unwrap().expect("customer of uid").value
}

/// The record as the customers API shows it.
async fn record(store: &dyn Store, uid: &str) -> Value {
    let c = customer(store, uid).await;
    let (acts, _) = activities::list(store, &publication(), &c.id, 100, None).await.unwrap();
    let settings = publications::get(store, &publication()).await.unwrap().unwrap().value.settings;
    let products = products_of(&c, &settings.catalogue, 1_800_000_000);
    serde_json::to_value(CustomerRecord::build(&c, acts, None, &Default::default(), products)).unwrap()
}

async fn users_take_missing_fields_from_piano_and_follow_email_changes(store: Arc<dyn Store>) {
    configure(store.as_ref()).await;
    let piano = FakePiano::start().await;
    piano.add_app(AID, API_TOKEN);
    piano.add_user(AID, "PNIann", "ann@example.com", "Ann", "Reader");
    let w = worker(store.clone(), &piano);

    // A Stripe-made record with Ann's email. A Piano event is no evidence that this Piano account owns
    // the address (anyone can open one claiming it): the user gets a record of its own, paired with
    // the Stripe-made one for review.
    let mut from_stripe = Customer::new(publication(), 0);
    from_stripe.email = Some(Email::parse("ann@example.com").unwrap());
    customers::create(store.as_ref(), &from_stripe).await.unwrap();

    // The event names only the uid: email and name come from Piano's user API.
    let outcome = w.process(&message(1, &event("user_created", "PNIann", json!({})))).await.unwrap();
    assert_eq!(outcome, Outcome::Applied);
    let calls: Vec<_> = piano.requests().into_iter().filter(|r| r.path == "/api/v3/publisher/user/get").collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].field("uid").as_deref(), Some("PNIann"));
    assert_eq!(calls[0].field("api_token").as_deref(), Some(API_TOKEN));
    let own = customer(store.as_ref(), "PNIann").await;
    assert_ne!(own.id, from_stripe.id, "an email alone links nothing");
    assert_eq!(own.email, None, "the address stays with the record holding it");
    assert_eq!(own.name.as_deref(), Some("Ann Reader"));
    let pairs = duplicates::list(store.as_ref(), &publication()).await.unwrap();
    let paired = |pairs: &[duplicates::PossibleDuplicate]| {
        pairs.iter().any(|d| d.customer_ids.contains(&own.id) && d.customer_ids.contains(&from_stripe.id))
    };
    assert!(paired(&pairs), "listed as possible duplicates: {pairs:?}");

    // Evidence (here an operator's link) folds the Piano user's record into the Stripe-made one.
    link::link_piano(store.as_ref(), &publication(), &from_stripe.id, "PNIann", Evidence::Operator, 5).await.unwrap();
    let ann = customer(store.as_ref(), "PNIann").await;
    assert_eq!(ann.id, from_stripe.id, "one person, one record");
    assert_eq!(ann.name.as_deref(), Some("Ann Reader"), "the Piano profile came along");
    assert!(customers::get(store.as_ref(), &publication(), &own.id).await.unwrap().is_none(), "folded away");
    assert!(!paired(&duplicates::list(store.as_ref(), &publication()).await.unwrap()), "no longer a pair");
    let pub_id = publication();
    let again = link::link_piano(store.as_ref(), &pub_id, &from_stripe.id, "PNIann", Evidence::Operator, 6).await;
    assert_eq!(again.unwrap().value.id, ann.id, "linking again changes nothing");

    // A complete event makes no call; a new email moves the record's email and its index entry.
    piano.clear_requests();
    let changed = event(
        "user_updated",
        "PNIann",
        json!({"user_email": "ann.new@example.com", "first_name": "Ann", "last_name": "Newname"}),
    );
    assert_eq!(w.process(&message(2, &changed)).await.unwrap(), Outcome::Applied);
    assert!(piano.requests().is_empty(), "nothing missing, no call");
    let ann = customer(store.as_ref(), "PNIann").await;
    assert_eq!(ann.email.as_ref().map(Email::as_str), Some("ann.new@example.com"));
    assert_eq!(ann.name.as_deref(), Some("Ann Newname"));
    let by_new = Identity::Email(Email::parse("ann.new@example.com").unwrap());
    assert_eq!(customers::find(store.as_ref(), &publication(), &by_new).await.unwrap().unwrap().value.id, ann.id);
    let by_old = Identity::Email(Email::parse("ann@example.com").unwrap());
    assert!(customers::find(store.as_ref(), &publication(), &by_old).await.unwrap().is_none(), "old email freed");

    // An email another customer holds stays with its holder.
    let mut bob = Customer::new(publication(), 0);
    bob.email = Some(Email::parse("bob@example.com").unwrap());
    customers::create(store.as_ref(), &bob).await.unwrap();
    let taken = event("user_updated", "PNIann", json!({"user_email": "bob@example.com", "first_name": "Ann"}));
    assert_eq!(w.process(&message(3, &taken)).await.unwrap(), Outcome::Applied);
    let ann = customer(store.as_ref(), "PNIann").await;
    assert_eq!(ann.email.as_ref().map(Email::as_str), Some("ann.new@example.com"));

    // Piano down: the event fails for a retry (nothing recorded); refused: applied with what it has.
    piano.fail_next(3, 503);
    let unknown = event("user_created", "PNIcarl", json!({}));
    let err = w.process(&message(4, &unknown)).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(w.process(&message(4, &unknown)).await.unwrap(), Outcome::Applied);
    assert!(customer(store.as_ref(), "PNIcarl").await.email.is_none());
}

async fn subscriptions_and_payments_feed_status_and_lifetime_value(store: Arc<dyn Store>) {
    configure(store.as_ref()).await;
    let piano = FakePiano::start().await;
    let w = worker(store.clone(), &piano);
    let uid = "PNIdora";
    let base =
        json!({"user_email": "dora@example.com", "subscription_id": "SU1", "term_id": "TMmonthly", "rid": "RGUIDE"});
    let with = |more: Value| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        v
    };
    let stream = [
        event("subscription_created", uid, with(json!({"expires": 1_900_000_000}))),
        event("payment_completed", uid, with(json!({"payment_id": "UP1", "amount": "9.99", "currency": "USD"}))),
        event("payment_failed", uid, with(json!({"payment_id": "UP2", "amount": 9.99, "currency": "USD"}))),
    ];
    for (n, e) in stream.iter().enumerate() {
        assert_eq!(w.process(&message(n as i64 + 1, e)).await.unwrap(), Outcome::Applied);
    }
    let r = record(store.as_ref(), uid).await;
    assert_eq!(r["paymentStatus"], "overdue");
    assert_eq!(r["lifetimeValue"], json!([{"currency": "usd", "amount": 999}]));
    assert_eq!(r["subscriptions"][0]["provider"], "piano");
    assert_eq!(r["subscriptions"][0]["status"], "active");
    assert_eq!(r["subscriptions"][0]["termId"], "TMmonthly");

    let later = [
        event("payment_completed", uid, with(json!({"payment_id": "UP2", "amount": "9.99", "currency": "usd"}))),
        event("subscription_canceled", uid, with(json!({}))),
        event("payment_refund", uid, json!({"payment_id": "UP1", "refund_amount": "3", "currency": "usd"})),
    ];
    for (n, e) in later.iter().enumerate() {
        assert_eq!(w.process(&message(n as i64 + 10, e)).await.unwrap(), Outcome::Applied);
    }
    let r = record(store.as_ref(), uid).await;
    assert_eq!(r["lifetimeValue"], json!([{"currency": "usd", "amount": 999 + 999 - 300}]));
    // The payments and the refund are items of their own; the customer item holds their figures.
    let mut c = customer(store.as_ref(), uid).await;
    assert!(c.piano.payments.is_empty() && c.piano.refunds.is_empty(), "{:?}", c.piano);
    payments::read_piano_payment(store.as_ref(), &mut c, "UP2").await.unwrap();
    assert_eq!(c.piano.payments["UP2"].state.status, PianoPaymentStatus::Completed, "{:?}", c.piano);
    // The refund's automation names what the refunded payment bought, though its subscription ended:
    // the refund event read the payment's item.
    let fired = ledger::pending(store.as_ref(), &publication(), "piano", "pn_test0012").await.unwrap();
    assert_eq!(fired.iter().map(|f| &f.product_ids).collect::<Vec<_>>(), [&["RGUIDE".to_owned()]], "{fired:?}");
    assert_eq!(r["subscriptions"][0]["status"], "canceled");
    assert_eq!(r["paymentStatus"], "cancelled");
    let kinds: Vec<&str> = r["activities"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "refund",
            "cancellation_scheduled",
            "payment_succeeded",
            "payment_failed",
            "payment_succeeded",
            "subscription_started"
        ]
    );
    // The catalogue names the resource.
    let started = &r["activities"][5];
    assert_eq!(started["summary"], "Piano Election guide (ebook) started");
}

async fn unmapped_resources_are_recorded_once_each(store: Arc<dyn Store>) {
    configure(store.as_ref()).await;
    let piano = FakePiano::start().await;
    let w = worker(store.clone(), &piano);
    let access = |rid: &str| event("access_granted", "PNIeve", json!({"user_email": "eve@example.com", "rid": rid}));
    for (n, rid) in ["RGUIDE", "RPODCAST", "RPODCAST", "RVIDEO"].iter().enumerate() {
        w.process(&message(n as i64 + 1, &access(rid))).await.unwrap();
    }
    let listed = unmapped::list(store.as_ref(), &publication()).await.unwrap();
    let ids: Vec<(&str, &str, &str)> =
        listed.iter().map(|u| (u.provider.as_str(), u.id.as_str(), u.last_event_id.as_str())).collect();
    assert_eq!(ids, [("piano", "RPODCAST", "pn_test0003"), ("piano", "RVIDEO", "pn_test0004")]);
    let r = record(store.as_ref(), "PNIeve").await;
    assert_eq!(r["entitlements"].as_array().unwrap().len(), 3);
    assert_eq!(r["products"], json!([{"sku": "EBOOK-42", "name": "Election guide (ebook)", "via": ["piano"]}]));
}

/// An ebook sold through Stripe (a product) and Piano (a resource) is one catalogue product on the
/// customer; a Stripe product outside the catalogue is recorded as unmapped with its account.
async fn one_product_whichever_provider_sold_it(store: Arc<dyn Store>) {
    use support::stripe_world::{self as sw, World};
    let world = World::new(store.clone()).await;
    let mut settings = sw::settings();
    settings["piano"] = json!({"aid": AID, "apiToken": API_TOKEN, "privateKey": "thestringliteralisexactlyfortych"});
    settings["catalogue"] = json!([{"sku": "EBOOK-42", "name": "Election guide (ebook)",
                                    "stripeProductIds": ["prod_guide"], "pianoResourceIds": ["RGUIDE"]}]);
    let parsed = PublicationSettings::parse(settings.to_string().as_bytes(), None).unwrap();
    let stored = StoredSettings { publication_id: publication(), settings: parsed, updated_at: 0 };
    let version = publications::get(store.as_ref(), &publication()).await.unwrap().unwrap().version;
    publications::put(store.as_ref(), &stored, Some(version)).await.unwrap();

    // The publication's checkout named the reader's Piano uid: evidence the two are one person.
    let mut customer = sw::customer("cus_both", "both@example.com", "Bo Th");
    customer["metadata"] = json!({"piano_uid": "PNIboth"});
    world.deliver(&sw::event("evt_c1", "customer.created", 1_750_000_000, customer, None)).await;
    let period = (1_750_000_000, 1_752_592_000);
    for (n, product) in ["prod_guide", "prod_other"].iter().enumerate() {
        let price = sw::price(&format!("price_{product}"), product, 900, "month");
        let sub = sw::subscription(&format!("sub_{n}"), "cus_both", "active", price, 1_750_000_001, period);
        let event =
            sw::event(&format!("evt_s{n}"), "customer.subscription.created", 1_750_000_001 + n as i64, sub, None);
        assert_eq!(world.deliver(&event).await, Outcome::Applied);
    }
    let record = world.record("both@example.com").await;
    assert_eq!(record["products"], json!([{"sku": "EBOOK-42", "name": "Election guide (ebook)", "via": ["stripe"]}]));

    let piano = FakePiano::start().await;
    let access = event("access_granted", "PNIboth", json!({"user_email": "both@example.com", "rid": "RGUIDE"}));
    assert_eq!(worker(store.clone(), &piano).process(&message(1, &access)).await.unwrap(), Outcome::Applied);
    let record = world.record("both@example.com").await;
    assert_eq!(record["pianoUid"], "PNIboth", "the Stripe-made record");
    assert_eq!(
        record["products"],
        json!([{"sku": "EBOOK-42", "name": "Election guide (ebook)", "via": ["stripe", "piano"]}])
    );
    let listed = unmapped::list(store.as_ref(), &publication()).await.unwrap();
    let ids: Vec<(&str, Option<&str>, &str)> =
        listed.iter().map(|u| (u.provider.as_str(), u.account.as_deref(), u.id.as_str())).collect();
    assert_eq!(ids, [("stripe", Some("main"), "prod_other")]);
}

for_each_store!(
    users_take_missing_fields_from_piano_and_follow_email_changes,
    subscriptions_and_payments_feed_status_and_lifetime_value,
    unmapped_resources_are_recorded_once_each,
    one_product_whichever_provider_sold_it,
);

/// One reader's Piano life: every kind of event the sync applies.
fn life() -> Vec<Value> {
    let uid = "PNIprop";
    let sub = |more: Value| {
        let mut v =
            json!({"user_email": "prop@example.com", "subscription_id": "SUP", "term_id": "TM1", "rid": "RGUIDE"});
        v.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        v
    };
    vec![
        event("user_created", uid, json!({"user_email": "prop@example.com", "first_name": "Pat", "last_name": "Prop"})),
        event("access_granted", uid, sub(json!({"expires": 1_900_000_000}))),
        event("subscription_created", uid, sub(json!({"expires": 1_900_000_000}))),
        event("payment_completed", uid, sub(json!({"payment_id": "P1", "amount": "5.00", "currency": "eur"}))),
        event("payment_failed", uid, sub(json!({"payment_id": "P2", "amount": "5.00", "currency": "eur"}))),
        event("user_updated", uid, json!({"user_email": "pat@example.com", "first_name": "Pat", "last_name": "Prop"})),
        event("payment_completed", uid, sub(json!({"payment_id": "P2", "amount": "5.00", "currency": "eur"}))),
        event("term_change", uid, sub(json!({"term_id": "TM2", "expires": 1_950_000_000}))),
        event("access_modified", uid, sub(json!({"term_id": "TM2", "expires": 1_950_000_000}))),
        event(
            "payment_refund",
            uid,
            sub(json!({"payment_id": "P1", "refund_amount": "2.50", "currency": "eur", "term_id": "TM2"})),
        ),
        event("subscription_canceled", uid, sub(json!({"term_id": "TM2"}))),
        event("access_revoked", uid, sub(json!({"term_id": "TM2"}))),
    ]
}

/// Applies messages `order` (indexes into `life()`) to a fresh embedded store; the record without its
/// store-assigned fields.
async fn outcome_of(order: &[usize]) -> Value {
    let t = support::embedded_store();
    configure(t.store.as_ref()).await;
    let piano = FakePiano::start().await;
    let w = worker(t.store.clone(), &piano);
    let events = life();
    for &i in order {
        w.process(&message(i as i64 + 1, &events[i])).await.unwrap();
    }
    let mut r = record(t.store.as_ref(), "PNIprop").await;
    for volatile in ["id", "createdAt", "updatedAt"] {
        r.as_object_mut().unwrap().remove(volatile);
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Shuffled delivery with duplicates gives the record in-order delivery gives.
    #[test]
    fn shuffled_deliveries_with_duplicates_give_the_in_order_record(
        order in Just((0..life().len()).collect::<Vec<_>>()).prop_shuffle(),
        duplicates in proptest::collection::vec(0..life().len(), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let expected = runtime.block_on(outcome_of(&(0..life().len()).collect::<Vec<_>>()));
        let mut delivered = order.clone();
        for (k, d) in duplicates.iter().enumerate() {
            delivered.insert((k * 3) % (delivered.len() + 1), *d);
        }
        let got = runtime.block_on(outcome_of(&delivered));
        prop_assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn the_in_order_record_is_the_whole_story() {
    let r = outcome_of(&(0..life().len()).collect::<Vec<_>>()).await;
    assert_eq!(r["email"], "pat@example.com");
    assert_eq!(r["name"], "Pat Prop");
    assert_eq!(r["paymentStatus"], "cancelled");
    assert_eq!(r["lifetimeValue"], json!([{"currency": "eur", "amount": 500 + 500 - 250}]));
    assert_eq!(r["entitlements"][0]["status"], "revoked");
    assert_eq!(r["entitlements"][0]["termId"], "TM2");
    assert_eq!(r["subscriptions"][0]["termId"], "TM2");
    assert_eq!(r["activities"].as_array().unwrap().len(), 10);
}
