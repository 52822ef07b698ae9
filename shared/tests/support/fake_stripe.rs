//! A fake Stripe API for tests: a real HTTP server on 127.0.0.1 speaking Stripe's wire format (bearer
//! keys, form bodies in bracket notation, Idempotency-Key replay, Stripe's error JSON), answering objects
//! built from Stripe's own fixtures (`/work/shared/stripe/fixtures3.json`, see `fixture`). Tests put
//! objects in, inject failures (the next requests, or those of one path), and read back the requests it
//! received.
//!
//! Routes: `GET /v1/{customers|subscriptions|invoices|charges|refunds|products|prices|
//! subscription_schedules|webhook_endpoints}/{id}`; lists of customers, invoices, charges, refunds,
//! products, prices and events (`lists`); `GET /v1/account`; `GET|POST /v1/webhook_endpoints`,
//! `POST|DELETE /v1/webhook_endpoints/{id}`; `GET /v1/subscriptions` (by customer, status, price),
//! `POST /v1/subscriptions/{id}`; `POST /v1/subscription_schedules` (`from_subscription`),
//! `POST /v1/subscription_schedules/{id}` and `…/{id}/release`. Everything else answers Stripe's
//! "Unrecognized request URL"; a real parameter the fake does not implement answers a 400 with code
//! `fake_stripe_unsupported`. One object space for every account (the `Stripe-Account` header is only
//! recorded).

mod customers;
mod form;
mod lists;
mod routes;
mod schedules;
mod subscriptions;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use shared::stripe::client::HttpStripe;

pub use form::pairs_to_json;

/// Stripe's fixture set; the repository is /work/main and the reference folder /work/shared. Named
/// through the workspace so that the `crm` crate's tests, which include this support too, find it.
pub const FIXTURES_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/tests/data/stripe/fixtures3.json");

/// Stripe's example object for a resource (`"customer"`, `"webhook_endpoint"`, `"deleted_customer"`, …):
/// `resources.<name>` of the fixture file.
pub fn fixture(resource: &str) -> Value {
    static FIXTURES: OnceLock<Value> = OnceLock::new();
    let all = FIXTURES.get_or_init(|| {
        let text = std::fs::read_to_string(FIXTURES_PATH).unwrap_or_else(|e| panic!("read {FIXTURES_PATH}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {FIXTURES_PATH}: {e}"))
    });
    all["resources"].get(resource).cloned().unwrap_or_else(|| panic!("no fixture resources.{resource}"))
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The query (GET, DELETE) or form body (POST), decoded, in order; empty for a JSON body.
    pub params: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub stripe_account: Option<String>,
    /// The whole header, `Bearer sk_…`.
    pub authorization: Option<String>,
    pub stripe_version: Option<String>,
    pub content_type: Option<String>,
}

impl RecordedRequest {
    /// The first value of a parameter, by its bracket-notation name (`metadata[crm_customer_id]`).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The parameters as Stripe reads them: nested objects and arrays, every leaf a string.
    pub fn params_json(&self) -> Value {
        pairs_to_json(&self.params).unwrap_or_else(|e| panic!("malformed parameters {:?}: {e}", self.params))
    }
}

/// An injected failure: what the next request gets instead of being handled.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    /// Sent as `Stripe-Should-Retry` when set.
    pub should_retry: Option<bool>,
    /// Sent as `Retry-After` (seconds) when set.
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Failure {
    /// A failure with Stripe's error JSON for that status (rate limit for 429, `api_error` for 5xx).
    pub fn status(status: u16) -> Self {
        let error = match status {
            429 => json!({
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
            }),
            409 => json!({
                "type": "invalid_request_error",
                "code": "lock_timeout",
                "message": "This object cannot be accessed right now because another API request or Stripe process is currently accessing it."
            }),
            s if s >= 500 => json!({
                "type": "api_error",
                "message": "An unknown error occurred. If this problem persists, please contact us at https://support.stripe.com/contact."
            }),
            _ => json!({"type": "invalid_request_error", "message": format!("Injected failure {status}.")}),
        };
        Self { status, should_retry: None, retry_after: None, body: json!({ "error": error }) }
    }

    pub fn should_retry(mut self, retry: bool) -> Self {
        self.should_retry = Some(retry);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// A failure for the requests of one method whose path starts with a prefix.
#[derive(Debug, Clone)]
struct PathFailure {
    method: String,
    path_prefix: String,
    /// How many more requests it fails; `None` for all of them until cleared.
    remaining: Option<usize>,
    failure: Failure,
}

/// What the server holds; the route handlers in `routes` work on it under the lock.
#[derive(Default)]
struct State {
    objects: HashMap<String, Value>,
    /// Ids in creation order, for lists (newest first, like Stripe).
    order: Vec<String>,
    /// The same per `object` type, so a list of one type does not walk every object of the account.
    order_by_type: HashMap<String, Vec<String>>,
    requests: Vec<RecordedRequest>,
    failures: VecDeque<Failure>,
    path_failures: Vec<PathFailure>,
    valid_key: Option<String>,
    /// Every n-th request answers 429 (`rate_limit_every`), counted in `served`.
    rate_limit_every: Option<usize>,
    served: usize,
    rate_limited: usize,
    /// `created` of `GET /v1/account` (the fixture's when `None`).
    account_created: Option<i64>,
    /// (account, Idempotency-Key) → the first request's fingerprint and answer.
    idempotency: HashMap<(String, String), StoredAnswer>,
}

#[derive(Clone)]
struct StoredAnswer {
    fingerprint: String,
    status: u16,
    body: Value,
}

impl State {
    fn insert(&mut self, object: Value) {
        let id = object["id"].as_str().expect("object with an id").to_owned();
        let kind = object["object"].as_str().unwrap_or_default().to_owned();
        if self.objects.insert(id.clone(), object).is_none() {
            self.order.push(id.clone());
            self.order_by_type.entry(kind).or_default().push(id);
        }
    }

    fn remove(&mut self, id: &str) -> Option<Value> {
        self.order.retain(|known| known != id);
        let removed = self.objects.remove(id)?;
        if let Some(ids) = self.order_by_type.get_mut(removed["object"].as_str().unwrap_or_default()) {
            ids.retain(|known| known != id);
        }
        Some(removed)
    }

    /// The objects of one type, newest first.
    fn newest_first(&self, object_type: &str) -> impl Iterator<Item = &Value> {
        self.order_by_type.get(object_type).into_iter().flat_map(|ids| ids.iter().rev()).map(|id| &self.objects[id])
    }

    fn periodic_rate_limit(&mut self) -> Option<Failure> {
        self.served += 1;
        let every = self.rate_limit_every?;
        if !self.served.is_multiple_of(every) {
            return None;
        }
        self.rate_limited += 1;
        Some(Failure::status(429))
    }

    /// The failure that a request of `method` to `path` gets from `fail_path*`, counted off.
    fn path_failure(&mut self, method: &str, path: &str) -> Option<Failure> {
        let index = self.path_failures.iter().position(|f| {
            f.method.eq_ignore_ascii_case(method) && path.starts_with(&f.path_prefix) && f.remaining != Some(0)
        })?;
        let entry = &mut self.path_failures[index];
        let failure = entry.failure.clone();
        if let Some(remaining) = &mut entry.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                self.path_failures.remove(index);
            }
        }
        Some(failure)
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running server; it stops when this is dropped.
pub struct FakeStripe {
    base_url: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FakeStripe {
    /// Starts a server on a free port of 127.0.0.1. Any `Bearer sk_…`/`rk_…` key is accepted until
    /// `set_valid_key`.
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let app = axum::Router::new().fallback(routes::handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake Stripe server");
        });
        Self { base_url: format!("http://{address}"), state, server }
    }

    /// `http://127.0.0.1:port`, for `HttpStripe::new` or `CRM_STRIPE_API_BASE`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A client for this server with a 1 ms backoff.
    pub fn client(&self) -> HttpStripe {
        HttpStripe::new(&self.base_url).expect("client for the fake Stripe").with_backoff(Duration::from_millis(1))
    }

    /// Stores (or replaces) an object; it needs string `id` and `object` fields.
    pub fn put_object(&self, object: Value) {
        assert!(object["id"].is_string() && object["object"].is_string(), "a Stripe object has `id` and `object`");
        lock(&self.state).insert(object);
    }

    pub fn object(&self, id: &str) -> Option<Value> {
        lock(&self.state).objects.get(id).cloned()
    }

    /// Every stored object of one type (`"webhook_endpoint"`), oldest first.
    pub fn objects(&self, object_type: &str) -> Vec<Value> {
        let state = lock(&self.state);
        state.order.iter().map(|id| &state.objects[id]).filter(|o| o["object"] == object_type).cloned().collect()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }

    /// The next `n` requests fail with `status` and Stripe's error JSON for it.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.fail_next_with(n, Failure::status(status));
    }

    pub fn fail_next_with(&self, n: usize, failure: Failure) {
        let mut state = lock(&self.state);
        state.failures.extend(std::iter::repeat_n(failure, n));
    }

    /// Every request of `method` (`"POST"`) whose path starts with `path_prefix`
    /// (`"/v1/subscription_schedules/sub_sched_1/release"`) fails with `status` and Stripe's error JSON
    /// for it (`api_error` for 5xx), until `clear_path_failures`. Every one, because `HttpStripe`
    /// retries 5xx, 409 and 429: a single failure would be retried away. Other paths are untouched.
    pub fn fail_path(&self, method: &str, path_prefix: &str, status: u16) {
        self.push_path_failure(method, path_prefix, None, Failure::status(status));
    }

    /// Only the next `n` matching requests fail, with `failure` (`Failure::status(500)`, …).
    pub fn fail_path_next(&self, method: &str, path_prefix: &str, n: usize, failure: Failure) {
        if n > 0 {
            self.push_path_failure(method, path_prefix, Some(n), failure);
        }
    }

    pub fn clear_path_failures(&self) {
        lock(&self.state).path_failures.clear();
    }

    fn push_path_failure(&self, method: &str, path_prefix: &str, remaining: Option<usize>, failure: Failure) {
        let entry = PathFailure { method: method.to_owned(), path_prefix: path_prefix.to_owned(), remaining, failure };
        lock(&self.state).path_failures.push(entry);
    }

    /// From now on every `n`-th request (any route) answers Stripe's 429 rate-limit error.
    pub fn rate_limit_every(&self, n: usize) {
        lock(&self.state).rate_limit_every = Some(n.max(1));
    }

    /// 429 answers given by `rate_limit_every`.
    pub fn rate_limited(&self) -> usize {
        lock(&self.state).rate_limited
    }

    /// Sets the account's creation time (`GET /v1/account`).
    pub fn set_account_created(&self, created: i64) {
        lock(&self.state).account_created = Some(created);
    }

    /// Stores many objects under one lock (a seeded account).
    pub fn put_objects(&self, objects: impl IntoIterator<Item = Value>) {
        let mut state = lock(&self.state);
        for object in objects {
            state.insert(object);
        }
    }

    /// From now on only this bearer key is accepted; others get Stripe's 401.
    pub fn set_valid_key(&self, key: &str) {
        lock(&self.state).valid_key = Some(key.to_owned());
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}
