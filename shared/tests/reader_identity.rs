//! Issue 25: a reader's subscriptions are reachable only by the reader. A Piano account claiming
//! someone's email reaches nothing, through a webhook or on a first visit; a reader whose Piano
//! account sent no event since go-live is found on their first visit when Piano says they confirmed
//! their email; a Piano user's own record is folded into the reader's when that evidence arrives.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::domain::customer::{Customer, Identity};
use shared::domain::ids::PublicationId;
use shared::store::repo::{customers, duplicates};
use shared::sync::Outcome;
use shared::sync::envelope::{self, Header, Provider};
use shared::sync::worker::EventWorker;
use support::public_site::{AID, API_TOKEN, JWT_SECRET, ORIGIN, Site, jwt, now};

const VICTIM_EMAIL: &str = "vera@example.com";

fn publication() -> PublicationId {
    PublicationId::parse("daily").unwrap()
}

fn token_of(uid: &str) -> String {
    jwt(json!({"aud": AID, "sub": uid, "exp": now() + 3600}), JWT_SECRET)
}

fn error(message: &str) -> Value {
    json!({ "error": message })
}

/// Applies a Piano `user_created` event for `uid` showing `email`, as the webhook worker does.
async fn piano_user_event(site: &Site, uid: &str, email: &str, n: i64) {
    let stripe = shared::stripe::client::HttpStripe::new(site.stripe.base_url()).unwrap();
    let worker = EventWorker::new(site.store(), Arc::new(stripe))
        .with_piano(Arc::new(site.piano.client()), Some(site.piano.base_url().to_owned()));
    let event = json!({"version": 2, "type": "user_created", "aid": AID, "uid": uid, "user_email": email,
                       "first_name": "Someone", "last_name": "Else"});
    let header = Header {
        provider: Provider::Piano,
        publication: publication(),
        account: None,
        received_at: now(),
        received_at_us: Some(now() * 1_000_000 + n),
        event_id: Some(format!("pn_identity{n:04}")),
        event_type: None,
    };
    let outcome = worker.process(&envelope::encode(&header, &event.to_string())).await.unwrap();
    assert_eq!(outcome, Outcome::Applied);
}

/// Every public route for `token`, on the victim's subscription.
fn every_route(token: &str) -> [(&'static str, String, Option<Value>); 3] {
    [
        ("GET", format!("/api/subscriptions?token={token}"), None),
        ("DELETE", format!("/api/subscriptions/sub_V1?token={token}"), None),
        (
            "POST",
            format!("/api/subscriptions/winback?token={token}"),
            Some(json!({"subscriptionId": "sub_V1", "newPriceId": "price_half"})),
        ),
    ]
}

/// Stripe was never asked about the victim's subscriptions, and the victim's one is as it was.
fn victim_untouched(site: &Site) {
    let asked: Vec<_> = site.stripe.requests().into_iter().filter(|r| r.path.contains("subscriptions")).collect();
    assert!(asked.is_empty(), "Stripe was asked: {asked:?}");
    let sub = site.stripe.object("sub_V1").unwrap();
    assert_eq!(sub["cancel_at_period_end"], false);
    assert_eq!(sub["items"]["data"][0]["price"]["id"], "price_monthly");
}

async fn record_of(site: &Site, id: &shared::domain::ids::CustomerId) -> Customer {
    customers::get(site.store().as_ref(), &publication(), id).await.unwrap().unwrap().value
}

/// The takeover as it was reproduced: an attacker's Piano account with the victim's email sends a
/// Piano event, then uses the public routes with its own valid token.
#[tokio::test]
async fn a_piano_account_claiming_a_readers_email_reaches_nothing_through_a_webhook() {
    let site = Site::new().await;
    let victim = site.backfilled_reader(VICTIM_EMAIL, "cus_V", "sub_V1").await;
    let attacker = token_of("PNIattacker1");
    site.piano.add_app(AID, API_TOKEN);
    site.piano.add_user(AID, "PNIattacker1", VICTIM_EMAIL, "Someone", "Else");
    site.piano.accept_token_unconfirmed(AID, API_TOKEN, &attacker, "PNIattacker1");

    piano_user_event(&site, "PNIattacker1", VICTIM_EMAIL, 1).await;
    assert_eq!(record_of(&site, &victim.id).await, victim, "the victim's record is untouched");
    let own = customers::find(site.store().as_ref(), &publication(), &Identity::Piano("PNIattacker1".into()))
        .await
        .unwrap()
        .expect("the attacker's Piano user has a record of its own")
        .value;
    assert_ne!(own.id, victim.id);
    let pairs = duplicates::list(site.store().as_ref(), &publication()).await.unwrap();
    assert!(
        pairs.iter().any(|d| d.customer_ids.contains(&own.id) && d.customer_ids.contains(&victim.id)),
        "listed for review: {pairs:?}"
    );

    let before = site.customers().await;
    for (method, path, body) in every_route(&attacker) {
        let (status, _, answer) = site.call(method, &path, Some(ORIGIN), body).await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, error("CRM Stripe accounts not found.")), "{method}");
    }
    victim_untouched(&site);
    assert_eq!(site.customers().await, before, "the store is unchanged");
}

/// No webhook before: the attacker's first visit. Piano says the email is unconfirmed: nothing links.
#[tokio::test]
async fn an_unconfirmed_email_on_a_first_visit_links_nothing() {
    let site = Site::new().await;
    site.backfilled_reader(VICTIM_EMAIL, "cus_V", "sub_V1").await;
    let attacker = token_of("PNIattacker2");
    site.piano.add_app(AID, API_TOKEN);
    site.piano.add_user(AID, "PNIattacker2", VICTIM_EMAIL, "Someone", "Else");
    site.piano.accept_token_unconfirmed(AID, API_TOKEN, &attacker, "PNIattacker2");
    let before = site.customers().await;
    for (method, path, body) in every_route(&attacker) {
        let (status, _, answer) = site.call(method, &path, Some(ORIGIN), body).await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, error("Piano user not found.")), "{method}");
    }
    victim_untouched(&site);
    assert_eq!(site.customers().await, before, "the store is unchanged");
    let user_reads = site.piano.requests().iter().filter(|r| r.path.ends_with("/user/get")).count();
    assert_eq!(user_reads, 0, "an unconfirmed email is not even looked up");
    assert_eq!(site.piano.verify_calls(), 1, "Piano's answer is reused by the next routes within the minute");
}

/// The reader whose Piano account sent no event since go-live: found on their first visit.
#[tokio::test]
async fn a_confirmed_email_on_a_first_visit_links_the_reader_within_the_request() {
    let site = Site::new().await;
    let reader = site.backfilled_reader(VICTIM_EMAIL, "cus_V", "sub_V1").await;
    let token = token_of("PNIvera");
    site.piano.add_app(AID, API_TOKEN);
    site.piano.add_user(AID, "PNIvera", VICTIM_EMAIL, "Vera", "Reader");
    site.piano.accept_token(AID, API_TOKEN, &token, "PNIvera");

    let (status, body) = site.list(&token, Some(ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["subscriptions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["sub_V1"]);
    let linked = record_of(&site, &reader.id).await;
    assert_eq!(linked.piano_uid.as_deref(), Some("PNIvera"));

    // Linked now: the next visit neither asks Piano again nor reads the user.
    site.piano.clear_requests();
    let (status, _) = site.list(&token, Some(ORIGIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(site.piano.requests().is_empty(), "{:?}", site.piano.requests());
}

/// The reader's Piano events made a record of their own first (no evidence then); the confirmed
/// email on their first visit folds it into the Stripe-made record.
#[tokio::test]
async fn a_first_visit_folds_the_piano_users_own_record_into_the_readers() {
    let site = Site::new().await;
    let reader = site.backfilled_reader(VICTIM_EMAIL, "cus_V", "sub_V1").await;
    let token = token_of("PNIvera");
    site.piano.add_app(AID, API_TOKEN);
    site.piano.add_user(AID, "PNIvera", VICTIM_EMAIL, "Vera", "Reader");
    site.piano.accept_token(AID, API_TOKEN, &token, "PNIvera");
    piano_user_event(&site, "PNIvera", VICTIM_EMAIL, 1).await;
    let own = customers::find(site.store().as_ref(), &publication(), &Identity::Piano("PNIvera".into()))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_ne!(own.id, reader.id, "a webhook alone links nothing");

    let (status, body) = site.list(&token, Some(ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let linked = record_of(&site, &reader.id).await;
    assert_eq!(linked.piano_uid.as_deref(), Some("PNIvera"));
    assert!(linked.piano.profile.is_some(), "the Piano profile came along");
    assert!(customers::get(site.store().as_ref(), &publication(), &own.id).await.unwrap().is_none());
}

/// Evidence never moves a uid that already belongs to a record with Stripe customers, and a record
/// already linked to one Piano user is not given another.
#[tokio::test]
async fn an_operator_link_refuses_what_would_join_two_people() {
    let site = Site::new().await;
    let reader = site.backfilled_reader(VICTIM_EMAIL, "cus_V", "sub_V1").await;
    let store = site.store();
    let linking = |uid: &'static str| {
        let (store, id) = (store.clone(), reader.id.clone());
        async move {
            shared::sync::link::link_piano(
                store.as_ref(),
                &publication(),
                &id,
                uid,
                shared::sync::link::Evidence::Operator,
                now(),
            )
            .await
        }
    };
    // `PNIreader0001` is the Site's reader, a record with a Stripe customer of its own.
    let err = linking(support::public_site::READER).await.unwrap_err();
    assert!(matches!(err, shared::sync::link::LinkError::HeldElsewhere(_)), "{err}");
    linking("PNIvera").await.unwrap();
    let err = linking("PNIsomeoneelse").await.unwrap_err();
    assert!(matches!(err, shared::sync::link::LinkError::OtherPianoUser), "{err}");
    assert_eq!(record_of(&site, &reader.id).await.piano_uid.as_deref(), Some("PNIvera"));
}
