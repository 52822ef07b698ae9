//! A fake Piano API for tests: a real HTTP server on 127.0.0.1 answering the calls the project makes
//! as Piano does (`/work/shared/piano/README.md`). Tests register the (application, API token, JWT)
//! triples that are valid, applications with their API token, and users; inject failures; and read back
//! the requests it received.
//!
//! Routes:
//! - `POST /id/api/v1/publisher/token/verify?aid=..&api_token=..&token=..`: a registered triple answers
//!   200 with `pub_id` and `email_confirmation_required`, anything else Piano's 403 `Invalid access token`.
//! - `POST /api/v3/publisher/user/get` (form `aid`, `api_token`, `uid`) and
//!   `POST /api/v3/publisher/webhook/settings/update` (form `aid`, `api_token`, `url`, `enabled`),
//!   `GET /api/v3/publisher/webhook/settings?aid=..&api_token=..`: Piano's v3 envelope, `{"code": 0, ...}`
//!   on success, a non-zero `code` and `message` (HTTP 200) for a wrong API token or an unknown user.
//! - The lists the history import reads, paged by `offset` and `limit` with Piano's `total`:
//!   `POST /api/v3/publisher/user/list` (`users`), `GET /api/v3/publisher/user/access/list?uid=..`
//!   (`accesses`), `GET /api/v3/publisher/subscription/list` (`subscriptions`) and
//!   `GET /api/v3/publisher/conversion/list` (`conversions`), in the order they were added.
//!
//! Other paths answer 404.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared::piano::client::{
    ACCESS_LIST_PATH, CONVERSION_LIST_PATH, HttpPiano, SUBSCRIPTION_LIST_PATH, TOKEN_VERIFY_PATH, USER_GET_PATH,
    USER_LIST_PATH, WEBHOOK_SETTINGS_PATH, WEBHOOK_SETTINGS_UPDATE_PATH,
};

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The query string, decoded, in order.
    pub query: Vec<(String, String)>,
    pub body: String,
}

impl RecordedRequest {
    /// The first value of a query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first value of a form-body field.
    pub fn field(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
    }
}

/// An injected failure: what the next request gets instead of being handled.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub body: Value,
}

impl Failure {
    /// A failure with an error list like Piano's for that status.
    pub fn status(status: u16) -> Self {
        Self { status, body: json!({"error_code_list": [{"message": format!("Injected failure {status}")}]}) }
    }
}

#[derive(Default)]
struct State {
    /// (aid, api_token, token) → (uid, whether the user's email is confirmed).
    valid: HashMap<(String, String, String), (String, bool)>,
    /// aid → API token, for the v3 calls.
    apps: HashMap<String, String>,
    /// (aid, uid) → Piano's `user` object.
    users: HashMap<(String, String), Value>,
    /// aid → uids in the order added (`user/list`).
    user_order: HashMap<String, Vec<String>>,
    /// (aid, uid) → the user's accesses.
    accesses: HashMap<(String, String), Vec<Value>>,
    /// aid → subscriptions, conversions.
    subscriptions: HashMap<String, Vec<Value>>,
    conversions: HashMap<String, Vec<Value>>,
    /// aid → webhook settings object.
    webhooks: HashMap<String, Value>,
    /// Updates of the webhook settings answer success but change nothing (a stale or misbehaving API).
    ignore_webhook_updates: bool,
    requests: Vec<RecordedRequest>,
    failures: VecDeque<Failure>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running server; it stops when this is dropped.
pub struct FakePiano {
    base_url: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FakePiano {
    /// Starts a server on a free port of 127.0.0.1 that accepts no token until `accept_token`.
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake Piano server");
        });
        Self { base_url: format!("http://{address}"), state, server }
    }

    /// `http://127.0.0.1:port`, the `base` of every `PianoApi` call or `CRM_PIANO_API_BASE`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A client with a 1 ms backoff.
    pub fn client(&self) -> HttpPiano {
        HttpPiano::new().with_backoff(Duration::from_millis(1))
    }

    /// From now on `token` verifies for application `aid` with `api_token`, as user `uid` whose email
    /// is confirmed.
    pub fn accept_token(&self, aid: &str, api_token: &str, token: &str, uid: &str) {
        self.accept(aid, api_token, token, uid, true);
    }

    /// `accept_token` for a user who has not confirmed their email (`email_confirmation_required: true`).
    pub fn accept_token_unconfirmed(&self, aid: &str, api_token: &str, token: &str, uid: &str) {
        self.accept(aid, api_token, token, uid, false);
    }

    fn accept(&self, aid: &str, api_token: &str, token: &str, uid: &str, confirmed: bool) {
        let triple = (aid.to_owned(), api_token.to_owned(), token.to_owned());
        lock(&self.state).valid.insert(triple, (uid.to_owned(), confirmed));
    }

    /// An application the v3 calls accept with `api_token`.
    pub fn add_app(&self, aid: &str, api_token: &str) {
        lock(&self.state).apps.insert(aid.to_owned(), api_token.to_owned());
    }

    /// A user of application `aid`, as Piano's `user/get` shows it.
    pub fn add_user(&self, aid: &str, uid: &str, email: &str, first_name: &str, last_name: &str) {
        let user = json!({
            "uid": uid, "email": email, "first_name": first_name, "last_name": last_name,
            "personal_name": format!("{first_name} {last_name}"), "create_date": 1_700_000_000,
        });
        let mut state = lock(&self.state);
        if state.users.insert((aid.to_owned(), uid.to_owned()), user).is_none() {
            state.user_order.entry(aid.to_owned()).or_default().push(uid.to_owned());
        }
    }

    /// An access of user `uid`, as `user/access/list` shows it.
    pub fn add_access(&self, aid: &str, uid: &str, access: Value) {
        lock(&self.state).accesses.entry((aid.to_owned(), uid.to_owned())).or_default().push(access);
    }

    /// A subscription, as `subscription/list` shows it.
    pub fn add_subscription(&self, aid: &str, subscription: Value) {
        lock(&self.state).subscriptions.entry(aid.to_owned()).or_default().push(subscription);
    }

    /// A conversion, as `conversion/list` shows it.
    pub fn add_conversion(&self, aid: &str, conversion: Value) {
        lock(&self.state).conversions.entry(aid.to_owned()).or_default().push(conversion);
    }

    /// How many requests went to `path`.
    pub fn calls_to(&self, path: &str) -> usize {
        lock(&self.state).requests.iter().filter(|r| r.path == path).count()
    }

    /// The webhook settings Piano holds for `aid`.
    pub fn webhook_settings(&self, aid: &str) -> Option<Value> {
        lock(&self.state).webhooks.get(aid).cloned()
    }

    /// From now on webhook settings updates succeed without effect.
    pub fn ignore_webhook_updates(&self) {
        lock(&self.state).ignore_webhook_updates = true;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// How many token verifications were asked for (`TOKEN_VERIFY_PATH`), answered or failed.
    pub fn verify_calls(&self) -> usize {
        lock(&self.state).requests.iter().filter(|r| r.path == TOKEN_VERIFY_PATH).count()
    }

    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }

    /// The next `n` requests fail with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.fail_next_with(n, Failure::status(status));
    }

    pub fn fail_next_with(&self, n: usize, failure: Failure) {
        lock(&self.state).failures.extend(std::iter::repeat_n(failure, n));
    }
}

impl Drop for FakePiano {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(AxumState(shared): AxumState<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let mut state = lock(&shared);
    state.requests.push(recorded.clone());

    if let Some(failure) = state.failures.pop_front() {
        return respond(failure.status, failure.body);
    }
    match recorded.path.as_str() {
        TOKEN_VERIFY_PATH if method == Method::POST => verify(&state, &recorded),
        USER_GET_PATH | WEBHOOK_SETTINGS_UPDATE_PATH | USER_LIST_PATH if method == Method::POST => {
            v3(&mut state, &recorded)
        }
        WEBHOOK_SETTINGS_PATH | ACCESS_LIST_PATH | SUBSCRIPTION_LIST_PATH | CONVERSION_LIST_PATH
            if method == Method::GET =>
        {
            v3(&mut state, &recorded)
        }
        TOKEN_VERIFY_PATH
        | USER_GET_PATH
        | WEBHOOK_SETTINGS_UPDATE_PATH
        | WEBHOOK_SETTINGS_PATH
        | USER_LIST_PATH
        | ACCESS_LIST_PATH
        | SUBSCRIPTION_LIST_PATH
        | CONVERSION_LIST_PATH => respond(405, json!({"error_code_list": [{"message": "Method not allowed"}]})),
        _ => respond(404, json!({"error_code_list": [{"message": "Not found"}]})),
    }
}

fn verify(state: &State, recorded: &RecordedRequest) -> Response {
    let triple = (
        recorded.param("aid").unwrap_or_default().to_owned(),
        recorded.param("api_token").unwrap_or_default().to_owned(),
        recorded.param("token").unwrap_or_default().to_owned(),
    );
    match state.valid.get(&triple) {
        Some((uid, confirmed)) => respond(
            200,
            json!({
                "access_token": triple.2,
                "token_type": "Bearer",
                "expires_in": 3600,
                "email_confirmation_required": !confirmed,
                "pub_id": uid,
            }),
        ),
        None => respond(403, json!({"error_code_list": [{"message": "Invalid access token"}]})),
    }
}

/// The v3 calls: parameters from the form body (POST) or the query (GET), Piano's envelope back.
fn v3(state: &mut State, recorded: &RecordedRequest) -> Response {
    let get = |key: &str| recorded.field(key).or_else(|| recorded.param(key).map(str::to_owned)).unwrap_or_default();
    let aid = get("aid");
    if state.apps.get(&aid).is_none_or(|token| *token != get("api_token")) {
        return respond(200, json!({"code": 401, "ts": 1_700_000_000, "message": "Access denied"}));
    }
    let page = |all: Vec<Value>, field: &str| {
        let offset = get("offset").parse::<usize>().unwrap_or(0);
        let limit = get("limit").parse::<usize>().unwrap_or(100).min(1000);
        let items: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
        let mut body = json!({"code": 0, "ts": 1_700_000_000, "offset": offset, "limit": limit,
                              "count": items.len(), "total": all.len()});
        body[field] = Value::Array(items);
        respond(200, body)
    };
    match recorded.path.as_str() {
        USER_LIST_PATH => {
            let uids = state.user_order.get(&aid).cloned().unwrap_or_default();
            let users = uids.iter().filter_map(|uid| state.users.get(&(aid.clone(), uid.clone())).cloned()).collect();
            page(users, "users")
        }
        ACCESS_LIST_PATH => {
            page(state.accesses.get(&(aid.clone(), get("uid"))).cloned().unwrap_or_default(), "accesses")
        }
        SUBSCRIPTION_LIST_PATH => page(state.subscriptions.get(&aid).cloned().unwrap_or_default(), "subscriptions"),
        CONVERSION_LIST_PATH => page(state.conversions.get(&aid).cloned().unwrap_or_default(), "conversions"),
        USER_GET_PATH => match state.users.get(&(aid, get("uid"))) {
            Some(user) => respond(200, json!({"code": 0, "ts": 1_700_000_000, "user": user})),
            None => respond(200, json!({"code": 2, "ts": 1_700_000_000, "message": "User not found"})),
        },
        WEBHOOK_SETTINGS_UPDATE_PATH => {
            let settings = json!({"url": get("url"), "enabled": get("enabled") == "true"});
            if !state.ignore_webhook_updates {
                state.webhooks.insert(aid, settings.clone());
            }
            respond(200, json!({"code": 0, "ts": 1_700_000_000, "webhook_settings": settings}))
        }
        _ => {
            let settings = state.webhooks.get(&aid).cloned().unwrap_or_else(|| json!({"url": null, "enabled": false}));
            respond(200, json!({"code": 0, "ts": 1_700_000_000, "webhook_settings": settings}))
        }
    }
}

fn respond(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}
