//! A publication wired to the fake Stripe: Stripe objects and events built from Stripe's fixtures
//! (so every field Stripe sends is there), delivered through the worker or, signed, over HTTP;
//! customer records read back through the customers API.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::api::AppState;
use shared::domain::ids::{AccountKey, PublicationId};
use shared::domain::settings::PublicationSettings;
use shared::store::Store;
use shared::store::repo::publications::{self, StoredSettings};
use shared::sync::envelope::{self, Header, Provider};
use shared::sync::worker::EventWorker;
use shared::sync::{Outcome, SyncError};
use tower::ServiceExt;

use super::fake_stripe::{FakeStripe, fixture};

pub const PUBLICATION: &str = "daily";
pub const WEBHOOK_SECRET: &str = "whsec_daily_main_0123456789abcdef";
pub const SECOND_SECRET: &str = "whsec_daily_second_0123456789abcd";

pub struct World {
    pub store: Arc<dyn Store>,
    pub stripe: FakeStripe,
    pub worker: EventWorker,
    pub state: AppState,
    pub publication: PublicationId,
}

pub fn settings() -> Value {
    json!({
        "name": "The Daily",
        "origins": ["https://www.daily.example"],
        "stripeAccounts": [
            {"key": "main", "name": "Daily Media Ltd", "secretKey": "sk_test_daily_main_0123456789",
             "webhookSecrets": ["whsec_old_rotated_away_0123456789", WEBHOOK_SECRET]},
            {"key": "second", "name": "Daily Books Ltd", "secretKey": "sk_test_daily_books_0123456789",
             "webhookSecrets": [SECOND_SECRET]}
        ]
    })
}

impl World {
    pub async fn new(store: Arc<dyn Store>) -> Self {
        let stripe = FakeStripe::start().await;
        let publication = PublicationId::parse(PUBLICATION).unwrap();
        let parsed = PublicationSettings::parse(settings().to_string().as_bytes(), None).expect("valid settings");
        let stored = StoredSettings { publication_id: publication.clone(), settings: parsed, updated_at: 0 };
        publications::put(store.as_ref(), &stored, None).await.expect("store settings");
        let state = super::app_state_with(store.clone(), stripe.base_url());
        let worker = EventWorker::new(store.clone(), Arc::new(stripe.client())).with_queue(state.queue.clone());
        Self { store, stripe, worker, state, publication }
    }

    /// Sets Piano up too (region `us`, aid `AidDaily01`), with `private_key` decrypting its webhooks.
    pub async fn add_piano(&self, private_key: &str) {
        let mut settings = settings();
        settings["piano"] = json!({"aid": "AidDaily01", "apiToken": "piano-api-token-0123456789",
                                   "privateKey": private_key, "region": "us"});
        let parsed = PublicationSettings::parse(settings.to_string().as_bytes(), None).expect("valid settings");
        let held = publications::get(self.store.as_ref(), &self.publication).await.unwrap().expect("settings");
        let stored = StoredSettings { publication_id: self.publication.clone(), settings: parsed, updated_at: 1 };
        publications::put(self.store.as_ref(), &stored, Some(held.version)).await.expect("store settings");
    }

    /// Applies an event as the worker does for a queued message of `account`.
    pub async fn deliver_to(&self, account: &str, event: &Value) -> Result<Outcome, SyncError> {
        let header = Header {
            provider: Provider::Stripe,
            publication: self.publication.clone(),
            account: Some(AccountKey::parse(account).unwrap()),
            received_at: 0,
            received_at_us: None,
            event_id: None,
            // As ingestion names it: the worker reads the event in one pass.
            event_type: event["type"].as_str().map(str::to_owned),
        };
        self.worker.process(&envelope::encode(&header, &event.to_string())).await
    }

    pub async fn deliver(&self, event: &Value) -> Outcome {
        self.deliver_to("main", event).await.unwrap_or_else(|e| panic!("event {} failed: {e}", event["id"]))
    }

    /// An admin GET through every function's routes; answers status and JSON.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let request = Request::get(path)
            .header("authorization", format!("Bearer {}", super::OPERATOR))
            .body(Body::empty())
            .unwrap();
        let response = shared::api::all_routes(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Every customer of the publication, as listed.
    pub async fn customers(&self) -> Vec<Value> {
        let (status, body) = self.get(&format!("/admin/publications/{PUBLICATION}/customers?limit=200")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The full record of the customer holding this Stripe customer id (of any account).
    pub async fn record_by_stripe_id(&self, stripe_id: &str) -> Value {
        for summary in self.customers().await {
            let (_, record) = self
                .get(&format!("/admin/publications/{PUBLICATION}/customers/{}", summary["id"].as_str().unwrap()))
                .await;
            let ids = record["stripeCustomerIds"].as_object().cloned().unwrap_or_default();
            if ids.values().any(|v| v == stripe_id) {
                return record;
            }
        }
        panic!("no customer holds {stripe_id}")
    }

    /// The full record of the only customer with this email.
    pub async fn record(&self, email: &str) -> Value {
        let (_, list) = self.get(&format!("/admin/publications/{PUBLICATION}/customers?email={email}")).await;
        let id = list["data"][0]["id"].as_str().unwrap_or_else(|| panic!("no customer {email}: {list}")).to_owned();
        let (status, body) =
            self.get(&format!("/admin/publications/{PUBLICATION}/customers/{id}?activitiesLimit=200")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// An event as Stripe sends it (fixture envelope), at provider time `created`.
pub fn event(id: &str, kind: &str, created: i64, object: Value, previous: Option<Value>) -> Value {
    let mut e = fixture("event");
    e["id"] = json!(id);
    e["type"] = json!(kind);
    e["created"] = json!(created);
    e["api_version"] = json!("2025-03-31.basil");
    e["data"] = json!({ "object": object });
    if let Some(previous) = previous {
        e["data"]["previous_attributes"] = previous;
    }
    e
}

pub fn customer(id: &str, email: &str, name: &str) -> Value {
    let mut c = fixture("customer");
    c["id"] = json!(id);
    c["email"] = json!(email);
    c["name"] = json!(name);
    c["discount"] = Value::Null;
    c
}

pub fn price(id: &str, product: &str, amount: i64, interval: &str) -> Value {
    let mut p = fixture("price");
    p["id"] = json!(id);
    p["product"] = json!(product);
    p["unit_amount"] = json!(amount);
    p["unit_amount_decimal"] = json!(amount.to_string());
    p["recurring"]["interval"] = json!(interval);
    p["recurring"]["interval_count"] = json!(1);
    p
}

pub fn product(id: &str, name: &str) -> Value {
    let mut p = fixture("product");
    p["id"] = json!(id);
    p["name"] = json!(name);
    p
}

/// A subscription in the current API shape: the billing period on its item.
pub fn subscription(id: &str, customer: &str, status: &str, price: Value, created: i64, period: (i64, i64)) -> Value {
    let mut s = fixture("subscription");
    s["id"] = json!(id);
    s["customer"] = json!(customer);
    s["status"] = json!(status);
    s["created"] = json!(created);
    s["start_date"] = json!(created);
    s["cancel_at_period_end"] = json!(false);
    for field in ["cancel_at", "canceled_at", "ended_at", "trial_end", "trial_start", "schedule", "pause_collection"] {
        s[field] = Value::Null;
    }
    let mut item = s["items"]["data"][0].clone();
    item["price"] = price;
    item["plan"] = Value::Null;
    item["quantity"] = json!(1);
    item["subscription"] = json!(id);
    item["current_period_start"] = json!(period.0);
    item["current_period_end"] = json!(period.1);
    s["items"]["data"] = json!([item]);
    s
}

/// An invoice in the current API shape: its subscription under `parent.subscription_details`.
pub fn invoice(id: &str, customer: &str, subscription: &str, status: &str, amount: i64, created: i64) -> Value {
    let mut i = fixture("invoice");
    i["id"] = json!(id);
    i["customer"] = json!(customer);
    i["status"] = json!(status);
    i["created"] = json!(created);
    i["currency"] = json!("usd");
    i["amount_due"] = json!(amount);
    i["total"] = json!(amount);
    i["amount_paid"] = json!(if status == "paid" { amount } else { 0 });
    i["amount_remaining"] = json!(if status == "paid" { 0 } else { amount });
    i["attempt_count"] = json!(0);
    i["due_date"] = Value::Null;
    i["parent"] = json!({"type": "subscription_details", "quote_details": null,
                         "subscription_details": {"metadata": {}, "subscription": subscription}});
    i["status_transitions"] = json!({"finalized_at": created, "paid_at": if status == "paid" { json!(created) } else { Value::Null },
                                     "marked_uncollectible_at": null, "voided_at": null});
    i
}

pub fn charge(id: &str, customer: &str, amount: i64, refunded: i64, created: i64) -> Value {
    let mut c = fixture("charge");
    c["id"] = json!(id);
    c["customer"] = json!(customer);
    c["amount"] = json!(amount);
    c["amount_captured"] = json!(amount);
    c["amount_refunded"] = json!(refunded);
    c["refunded"] = json!(refunded == amount);
    c["created"] = json!(created);
    c
}

pub fn refund(id: &str, charge: &str, amount: i64, created: i64) -> Value {
    let mut r = fixture("refund");
    r["id"] = json!(id);
    r["charge"] = json!(charge);
    r["amount"] = json!(amount);
    r["created"] = json!(created);
    r
}
