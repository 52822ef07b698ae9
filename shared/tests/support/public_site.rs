//! A publication set up for the public subscription routes: Piano application (aid, API token, JWT
//! secret), winback offers, readers with Piano uids and Stripe customers, subscriptions at the fake
//! Stripe, a fake Piano that accepts the reader's token. Used by the route tests and the browser test.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::api::{ApiConfig, AppState};
use shared::domain::customer::Customer;
use shared::domain::ids::{AccountKey, PublicationId};
use shared::domain::settings::PublicationSettings;
use shared::store::Store;
use shared::store::repo::customers;
use shared::store::repo::publications::{self, StoredSettings};
use tower::ServiceExt;

use super::fake_piano::FakePiano;
use super::fake_stripe::FakeStripe;
use super::stripe_world as w;

pub const ORIGIN: &str = "https://www.daily.example";
pub const AID: &str = "AidDaily01";
pub const API_TOKEN: &str = "piano-api-token-0123456789";
pub const JWT_SECRET: &str = "piano-jwt-secret-for-the-daily-0123";
pub const READER: &str = "PNIreader0001";

pub struct Site {
    /// The reader's token, the one Piano accepts.
    pub token: String,
    pub state: AppState,
    pub stripe: FakeStripe,
    pub piano: FakePiano,
    store: super::TestStore,
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn jwt(claims: Value, secret: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).unwrap()
}

pub fn reader_token() -> String {
    jwt(json!({"aud": AID, "sub": READER, "exp": now() + 3600, "email": "reader@example.com"}), JWT_SECRET)
}

async fn customer(store: &dyn Store, uid: &str, stripe: &[(&str, &str)]) {
    let publication = PublicationId::parse("daily").unwrap();
    let mut c = Customer::new(publication, now());
    c.piano_uid = Some(uid.into());
    for (account, id) in stripe {
        c.stripe_customer_ids.insert(AccountKey::parse(account).unwrap(), (*id).into());
    }
    customers::create(store, &c).await.unwrap();
}

impl Site {
    /// The publication `daily` serving pages from `ORIGIN`.
    pub async fn new() -> Self {
        Self::serving(ORIGIN).await
    }

    /// The publication `daily` serving pages from `origin`.
    pub async fn serving(origin: &str) -> Self {
        Self::build(origin, Some(JWT_SECRET)).await
    }

    /// The publication `daily` with no Piano JWT secret (`jwtSecret: null`, as in the seed's example):
    /// only Piano can verify its readers' tokens.
    pub async fn without_jwt_secret() -> Self {
        Self::build(ORIGIN, None).await
    }

    async fn build(origin: &str, jwt_secret: Option<&str>) -> Self {
        let store = super::embedded_store();
        let stripe = FakeStripe::start().await;
        let piano = FakePiano::start().await;
        let mut settings = w::settings();
        settings["origins"] = json!([origin]);
        settings["piano"] = json!({"aid": AID, "apiToken": API_TOKEN, "privateKey": "thestringliteralisexactlyfortych",
                                   "jwtSecret": jwt_secret, "region": "eu"});
        settings["winbackOffers"] = json!([
            {"priceId": "price_half", "label": "Half price", "appliesToPriceIds": ["price_monthly"], "changeAt": "now"},
            {"priceId": "price_deal", "label": "Deal from next month", "appliesToPriceIds": ["price_monthly"], "changeAt": "period_end"}
        ]);
        let parsed = PublicationSettings::parse(settings.to_string().as_bytes(), None).unwrap();
        let publication = PublicationId::parse("daily").unwrap();
        let stored = StoredSettings { publication_id: publication, settings: parsed, updated_at: 0 };
        publications::put(store.store.as_ref(), &stored, None).await.unwrap();
        customer(store.store.as_ref(), READER, &[("main", "cus_R")]).await;
        customer(store.store.as_ref(), "PNIother0002", &[("main", "cus_O")]).await;
        customer(store.store.as_ref(), "PNInostripe3", &[]).await;

        for (id, amount) in [("price_monthly", 1500), ("price_half", 750), ("price_deal", 1000)] {
            stripe.put_object(w::price(id, "prod_digital", amount, "month"));
        }
        let period = (now() - 86_400, now() + 29 * 86_400);
        stripe.put_object(w::subscription(
            "sub_R1",
            "cus_R",
            "active",
            stripe.object("price_monthly").unwrap(),
            now() - 86_400,
            period,
        ));
        stripe.put_object(w::subscription(
            "sub_R0",
            "cus_R",
            "canceled",
            stripe.object("price_monthly").unwrap(),
            now() - 900_000,
            period,
        ));
        stripe.put_object(w::subscription(
            "sub_O1",
            "cus_O",
            "active",
            stripe.object("price_monthly").unwrap(),
            now() - 86_400,
            period,
        ));
        let token = reader_token();
        piano.accept_token(AID, API_TOKEN, &token, READER);

        let config = ApiConfig { piano_api_base: Some(piano.base_url().to_owned()), ..ApiConfig::default() };
        let mut state = super::app_state_with(store.store.clone(), stripe.base_url()).with_config(config);
        state.piano = Arc::new(piano.client());
        Site { token, state, stripe, piano, store }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        origin: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = shared::api::all_routes(self.state.clone()).oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// The site's store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.store.clone()
    }

    /// A reader as a Stripe backfill leaves them: a record with their email and Stripe customer
    /// `stripe_id` in account `main`, no Piano uid, and an active subscription `subscription`.
    pub async fn backfilled_reader(&self, email: &str, stripe_id: &str, subscription: &str) -> Customer {
        let mut c = Customer::new(PublicationId::parse("daily").unwrap(), now());
        c.email = Some(shared::domain::ids::Email::parse(email).unwrap());
        c.stripe_customer_ids.insert(AccountKey::parse("main").unwrap(), stripe_id.into());
        customers::create(self.store.store.as_ref(), &c).await.unwrap();
        let period = (now() - 86_400, now() + 29 * 86_400);
        let price = self.stripe.object("price_monthly").unwrap();
        self.stripe.put_object(w::subscription(subscription, stripe_id, "active", price, now() - 86_400, period));
        c
    }

    /// Every customer of the publication as stored, to show a request changed nothing.
    pub async fn customers(&self) -> Vec<Customer> {
        let publication = PublicationId::parse("daily").unwrap();
        customers::list(self.store.store.as_ref(), &publication, 100, None).await.unwrap().0
    }

    pub async fn list(&self, token: &str, origin: Option<&str>) -> (StatusCode, Value) {
        let (status, _, body) = self.call("GET", &format!("/api/subscriptions?token={token}"), origin, None).await;
        (status, body)
    }
}
