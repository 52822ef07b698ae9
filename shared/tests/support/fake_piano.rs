//! A fake Piano API for tests: a real HTTP server on 127.0.0.1 answering Piano ID's token verification
//! as Piano does (`/work/shared/piano/README.md`). Tests register the (application, API token, JWT)
//! triples that are valid, inject failures, and read back the requests it received.
//!
//! Route: `POST /id/api/v1/publisher/token/verify?aid=..&api_token=..&token=..`: a registered triple
//! answers 200 with `pub_id`, anything else Piano's 403 `Invalid access token`. Other paths answer 404.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared::piano::client::{HttpPiano, TOKEN_VERIFY_PATH};

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
    /// (aid, api_token, token) → uid.
    valid: HashMap<(String, String, String), String>,
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

    /// From now on `token` verifies for application `aid` with `api_token`, as user `uid`.
    pub fn accept_token(&self, aid: &str, api_token: &str, token: &str, uid: &str) {
        lock(&self.state).valid.insert((aid.to_owned(), api_token.to_owned(), token.to_owned()), uid.to_owned());
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
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
    if recorded.path != TOKEN_VERIFY_PATH {
        return respond(404, json!({"error_code_list": [{"message": "Not found"}]}));
    }
    if method != Method::POST {
        return respond(405, json!({"error_code_list": [{"message": "Method not allowed"}]}));
    }
    let triple = (
        recorded.param("aid").unwrap_or_default().to_owned(),
        recorded.param("api_token").unwrap_or_default().to_owned(),
        recorded.param("token").unwrap_or_default().to_owned(),
    );
    match state.valid.get(&triple) {
        Some(uid) => respond(
            200,
            json!({
                "access_token": triple.2,
                "token_type": "Bearer",
                "expires_in": 3600,
                "email_confirmation_required": false,
                "pub_id": uid,
            }),
        ),
        None => respond(403, json!({"error_code_list": [{"message": "Invalid access token"}]})),
    }
}

fn respond(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}
