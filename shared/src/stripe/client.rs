//! Stripe's REST API as a port (`StripeApi`) and its HTTP adapter (`HttpStripe`): form parameters in
//! Stripe's bracket notation (`Params`), Stripe's error JSON as a typed `StripeError`, and for every call
//! a timeout, bounded retries with exponential backoff and full jitter, and an Idempotency-Key on writes.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::domain::secret::Secret;
use crate::http::outbound::LazyClient;

/// Where the real Stripe API lives.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// Optional environment variable pointing the client elsewhere (a fake server in tests).
pub const API_BASE_ENV: &str = "CRM_STRIPE_API_BASE";
/// The same, under the name the public-routes specification uses; `CRM_STRIPE_API_BASE` wins.
pub const API_BASE_ENV_ALIAS: &str = "STRIPE_API_BASE";
/// The API version every request pins, so responses keep one shape whatever the account's default.
pub const API_VERSION: &str = "2025-03-31.basil";
/// Retries after the first attempt, at most.
pub const MAX_RETRIES: u32 = 3;
/// First backoff step; doubles with every retry up to `MAX_BACKOFF`, with full jitter.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A `Retry-After` longer than this is shortened to it: a request path cannot wait longer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(20);
const USER_AGENT: &str = concat!("subscription-crm/", env!("CARGO_PKG_VERSION"));
/// Stripe's limit on idempotency keys.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
const SHOULD_RETRY: &str = "stripe-should-retry";
const STRIPE_ACCOUNT: &str = "stripe-account";
const STRIPE_VERSION: &str = "stripe-version";
const IDEMPOTENCY_KEY: &str = "idempotency-key";
const KEY_PREFIXES: [&str; 5] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];

/// Which Stripe account a call acts for: the platform's secret (or restricted) key, and the
/// connected account (sent as `Stripe-Account`) when the publication bills through Connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeAuth {
    pub secret_key: Secret,
    pub account_id: Option<String>,
}

impl StripeAuth {
    pub fn new(secret_key: Secret) -> Self {
        Self { secret_key, account_id: None }
    }

    pub fn with_account(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = Some(account_id.into());
        self
    }
}

/// Stripe's form parameters, in order: `metadata[crm_customer_id]=x`, `items[0][price]=p`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one parameter; the key is already in bracket notation when nested (`metadata[a]`).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }

    /// Adds an array: `key[0]=a&key[1]=b`.
    pub fn list<I, V>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        for (i, value) in values.into_iter().enumerate() {
            self.0.push((format!("{key}[{i}]"), value.into()));
        }
        self
    }

    /// Flattens a JSON object into bracket notation: nested objects give `a[b]`, arrays `a[0]`,
    /// booleans `true`/`false`, numbers their text; nulls, empty objects and empty arrays are left
    /// out (an empty value *clears* a field at Stripe: pass `""` explicitly for that). A value that
    /// is not an object has no parameter names and gives no parameters.
    pub fn from_json(value: &Value) -> Self {
        let mut params = Self::new();
        if let Value::Object(map) = value {
            for (key, value) in map {
                flatten(key.clone(), value, &mut params.0);
            }
        }
        params
    }

    /// The body or query string: `application/x-www-form-urlencoded`.
    pub fn encode(&self) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &self.0 {
            serializer.append_pair(key, value);
        }
        serializer.finish()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The first value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn flatten(key: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((key, b.to_string())),
        Value::Number(n) => out.push((key, n.to_string())),
        Value::String(s) => out.push((key, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(format!("{key}[{i}]"), item, out);
            }
        }
        Value::Object(map) => {
            for (name, item) in map {
                flatten(format!("{key}[{name}]"), item, out);
            }
        }
    }
}

/// A failed Stripe call. The Display never contains a secret key: Stripe's messages mask keys
/// already, and any key-like word left in a message is masked again when the error is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error status and (usually) `{"error":{"type","code","message","param"}}`.
    #[error("Stripe answered {status} {kind}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        status: u16,
        /// `error.type`: `invalid_request_error`, `api_error`, `card_error`, `idempotency_error`, …
        kind: String,
        code: Option<String>,
        message: String,
        param: Option<String>,
        /// The `Stripe-Should-Retry` response header, when Stripe sent one: it overrides the status.
        should_retry: Option<bool>,
    },
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    #[error("Stripe unreachable: {0}")]
    Transport(String),
    /// A success status whose body is not JSON.
    #[error("Stripe answer not understood: {0}")]
    Decode(String),
    /// The request could not be built here (an idempotency key or account id that cannot be a
    /// header value); nothing was sent.
    #[error("Stripe request not sent: {0}")]
    InvalidRequest(String),
}

impl StripeError {
    /// Whether the same request may succeed later: 429, 409 (a concurrent request holding the same
    /// idempotency key or object lock), 5xx and transport failures, unless Stripe said otherwise
    /// with `Stripe-Should-Retry`.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { should_retry: Some(retry), .. } => *retry,
            Self::Api { status, .. } => *status == 429 || *status == 409 || *status >= 500,
            Self::Transport(_) => true,
            Self::Decode(_) | Self::InvalidRequest(_) => false,
        }
    }

    /// The object does not exist (or not for this account).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
            || matches!(self, Self::Api { code: Some(code), .. } if code == "resource_missing")
    }

    /// The HTTP status Stripe answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Builds the error for a non-success answer; `key` is masked out of every text kept.
    fn from_response(status: u16, body: &[u8], should_retry: Option<bool>, key: &str) -> Self {
        #[derive(serde::Deserialize)]
        struct Envelope {
            error: Body,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(rename = "type")]
            kind: Option<String>,
            code: Option<String>,
            message: Option<String>,
            param: Option<String>,
        }
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error }) => Self::Api {
                status,
                kind: error.kind.unwrap_or_else(|| "unknown".to_owned()),
                code: error.code.map(|c| redact(&c, key)),
                message: redact(&error.message.unwrap_or_default(), key),
                param: error.param.map(|p| redact(&p, key)),
                should_retry,
            },
            Err(_) => {
                // A proxy or load balancer answered: keep a short, masked excerpt.
                let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
                Self::Api {
                    status,
                    kind: "http_error".to_owned(),
                    code: None,
                    message: redact(text.trim(), key),
                    param: None,
                    should_retry,
                }
            }
        }
    }
}

/// Masks `key` and any word that looks like a secret key (`sk_live_…`, `rk_test_…`, `whsec_…`
/// followed by at least 8 key characters) in a text; Stripe's own masked form (`sk_test_****1234`)
/// stays as it is.
fn redact(text: &str, key: &str) -> String {
    let text = if key.is_empty() { text.to_owned() } else { text.replace(key, &Secret::new(key).masked()) };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some((start, prefix)) =
        KEY_PREFIXES.iter().filter_map(|p| rest.find(p).map(|i| (i, *p))).min_by_key(|(i, _)| *i)
    {
        let after = &rest[start + prefix.len()..];
        let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        out.push_str(&rest[..start]);
        if len >= 8 {
            out.push_str(&Secret::new(&rest[start..start + prefix.len() + len]).masked());
        } else {
            out.push_str(&rest[start..start + prefix.len() + len]);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Stripe's REST API. `path` is the full path (`/v1/customers/cus_123`); ids in it are used as given
/// (callers pass ids they parsed), nothing is percent-encoded.
#[async_trait]
pub trait StripeApi: Send + Sync + 'static {
    async fn get(&self, auth: &StripeAuth, path: &str, query: &Params) -> Result<Value, StripeError>;

    /// A write; retries (by the adapter or by a later delivery) must pass the same `idempotency_key`.
    async fn post(
        &self,
        auth: &StripeAuth,
        path: &str,
        form: &Params,
        idempotency_key: &str,
    ) -> Result<Value, StripeError>;

    async fn delete(&self, auth: &StripeAuth, path: &str) -> Result<Value, StripeError>;
}

/// The base URL of `HttpStripe` is not usable.
#[derive(Debug, thiserror::Error)]
#[error("Stripe client configuration: {0}")]
pub struct StripeConfigError(String);

/// Makes ring the process's rustls crypto provider. reqwest is built with `rustls-no-provider` (ring
/// only, like the AWS SDK here), so this must run before any `reqwest::Client` is built: `HttpStripe::new`
/// calls it, and so must code (tests) building its own client. Idempotent; a provider installed already
/// is kept.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `StripeApi` over HTTPS with reqwest (rustls on ring).
#[derive(Debug, Clone)]
pub struct HttpStripe {
    client: LazyClient,
    base: String,
    backoff: Duration,
    max_retries: u32,
}

impl HttpStripe {
    /// A client for `base_url` (`https://api.stripe.com`, or a fake server's `http://127.0.0.1:port`).
    pub fn new(base_url: &str) -> Result<Self, StripeConfigError> {
        let parsed = url::Url::parse(base_url).map_err(|e| StripeConfigError(format!("base URL {base_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(StripeConfigError(format!("base URL {base_url:?}: must be http(s)://host[:port][/path]")));
        }
        let client = LazyClient::new(|builder| {
            builder.connect_timeout(CONNECT_TIMEOUT).timeout(TOTAL_TIMEOUT).user_agent(USER_AGENT)
        });
        Ok(Self {
            client,
            base: base_url.trim_end_matches('/').to_owned(),
            backoff: DEFAULT_BACKOFF,
            max_retries: MAX_RETRIES,
        })
    }

    /// The real Stripe, or the base URL in `CRM_STRIPE_API_BASE` (or `STRIPE_API_BASE`) when set and not empty.
    pub fn from_env() -> Result<Self, StripeConfigError> {
        let configured = [API_BASE_ENV, API_BASE_ENV_ALIAS]
            .into_iter()
            .find_map(|name| std::env::var(name).ok().filter(|base| !base.trim().is_empty()));
        Self::new(configured.as_deref().map_or(DEFAULT_API_BASE, str::trim))
    }

    /// The first backoff step (tests use a millisecond).
    pub fn with_backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str, query: Option<&Params>) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        match query.filter(|q| !q.is_empty()) {
            Some(query) => format!("{}{slash}{path}?{}", self.base, query.encode()),
            None => format!("{}{slash}{path}", self.base),
        }
    }

    async fn execute(
        &self,
        method: reqwest::Method,
        auth: &StripeAuth,
        path: &str,
        query: Option<&Params>,
        form: Option<&Params>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, StripeError> {
        let url = self.url(path, query);
        let headers = headers(auth, idempotency_key)?;
        let body = form.map(Params::encode);
        let mut retries = 0;
        loop {
            let mut request = self
                .client
                .get()
                .map_err(StripeError::Transport)?
                .request(method.clone(), &url)
                .headers(headers.clone());
            if let Some(body) = &body {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body.clone());
            }
            let failure = match send(request, auth).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            if retries >= self.max_retries || !failure.error.is_transient() {
                return Err(failure.error);
            }
            retries += 1;
            let delay = match failure.retry_after {
                Some(after) => after.min(MAX_RETRY_AFTER),
                None => full_jitter(self.backoff, retries),
            };
            tracing::warn!(
                method = %method,
                path,
                status = failure.error.status(),
                attempt = retries,
                delay_ms = delay.as_millis() as u64,
                error_kind = failure_kind(&failure.error),
                "Stripe request failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[async_trait]
impl StripeApi for HttpStripe {
    async fn get(&self, auth: &StripeAuth, path: &str, query: &Params) -> Result<Value, StripeError> {
        self.execute(reqwest::Method::GET, auth, path, Some(query), None, None).await
    }

    async fn post(
        &self,
        auth: &StripeAuth,
        path: &str,
        form: &Params,
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        if idempotency_key.is_empty() || idempotency_key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(StripeError::InvalidRequest(format!(
                "an idempotency key has 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
            )));
        }
        self.execute(reqwest::Method::POST, auth, path, None, Some(form), Some(idempotency_key)).await
    }

    async fn delete(&self, auth: &StripeAuth, path: &str) -> Result<Value, StripeError> {
        self.execute(reqwest::Method::DELETE, auth, path, None, None, None).await
    }
}

/// One failed attempt, with what the answer said about retrying it.
struct Failure {
    error: StripeError,
    retry_after: Option<Duration>,
}

impl From<StripeError> for Failure {
    fn from(error: StripeError) -> Self {
        Self { error, retry_after: None }
    }
}

fn headers(auth: &StripeAuth, idempotency_key: Option<&str>) -> Result<HeaderMap, StripeError> {
    let mut headers = HeaderMap::new();
    // The key is checked for header characters without ever putting it in an error message.
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", auth.secret_key.expose()))
        .map_err(|_| StripeError::InvalidRequest("the secret key has characters a header cannot carry".to_owned()))?;
    bearer.set_sensitive(true);
    headers.insert(header::AUTHORIZATION, bearer);
    headers.insert(HeaderName::from_static(STRIPE_VERSION), HeaderValue::from_static(API_VERSION));
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(account) = &auth.account_id {
        let value = HeaderValue::from_str(account)
            .map_err(|_| StripeError::InvalidRequest(format!("account id {account:?} cannot be a header value")))?;
        headers.insert(HeaderName::from_static(STRIPE_ACCOUNT), value);
    }
    if let Some(key) = idempotency_key {
        let value = HeaderValue::from_str(key)
            .map_err(|_| StripeError::InvalidRequest("the idempotency key cannot be a header value".to_owned()))?;
        headers.insert(HeaderName::from_static(IDEMPOTENCY_KEY), value);
    }
    Ok(headers)
}

async fn send(request: reqwest::RequestBuilder, auth: &StripeAuth) -> Result<Value, Failure> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let should_retry = match response.headers().get(SHOULD_RETRY).and_then(|v| v.to_str().ok()) {
        Some(v) if v.trim().eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    };
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| StripeError::Decode(format!("status {}: {e}", status.as_u16())).into());
    }
    Err(Failure {
        error: StripeError::from_response(status.as_u16(), &body, should_retry, auth.secret_key.expose()),
        retry_after,
    })
}

/// A transport error's text with its causes, without the URL (it may carry query parameters).
fn transport(error: reqwest::Error) -> Failure {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut text = format!("{what}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    StripeError::Transport(text).into()
}

fn failure_kind(error: &StripeError) -> &str {
    match error {
        StripeError::Api { kind, .. } => kind,
        StripeError::Transport(_) => "transport",
        StripeError::Decode(_) => "decode",
        StripeError::InvalidRequest(_) => "invalid_request",
    }
}

/// Exponential backoff with full jitter: a uniform delay in `[0, min(MAX_BACKOFF, base·2^(retry-1))]`.
fn full_jitter(base: Duration, retry: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(MAX_BACKOFF);
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=micros))
}

impl From<&crate::domain::settings::StripeAccount> for StripeAuth {
    /// The account's secret key, and `Stripe-Account` for a connected account.
    fn from(account: &crate::domain::settings::StripeAccount) -> Self {
        let auth = StripeAuth::new(account.secret_key.clone());
        match &account.account_id {
            Some(id) => auth.with_account(id.clone()),
            None => auth,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn params_flatten_nested_objects_and_arrays_into_brackets() {
        let params = Params::from_json(&json!({
            "customer": "cus_1",
            "metadata": {"crm_customer_id": "c-9", "empty": null},
            "items": [{"price": "price_a", "quantity": 2}, {"price": "price_b"}],
            "phases": [{"items": [{"price": "price_x"}]}, {"items": [{"price": "price_y", "quantity": 1}]}],
            "cancel_at_period_end": true,
            "off_session": false,
            "ratio": 1.5,
            "gone": null,
            "nothing": {},
            "none": [],
        }));
        let pairs: Vec<(&str, &str)> = params.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut expected = vec![
            ("customer", "cus_1"),
            ("metadata[crm_customer_id]", "c-9"),
            ("items[0][price]", "price_a"),
            ("items[0][quantity]", "2"),
            ("items[1][price]", "price_b"),
            ("phases[0][items][0][price]", "price_x"),
            ("phases[1][items][0][price]", "price_y"),
            ("phases[1][items][0][quantity]", "1"),
            ("cancel_at_period_end", "true"),
            ("off_session", "false"),
            ("ratio", "1.5"),
        ];
        let mut got = pairs.clone();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        assert_eq!(params.get("items[1][price]"), Some("price_b"));
        assert!(Params::from_json(&json!("not an object")).is_empty());
    }

    #[test]
    fn params_encode_as_form_with_lists_and_escapes() {
        let params = Params::new()
            .set("email", "a+b@example.com")
            .set("metadata[note]", "x&y=z é")
            .list("enabled_events", ["invoice.paid", "customer.subscription.updated"]);
        let encoded = params.encode();
        assert_eq!(
            encoded,
            "email=a%2Bb%40example.com&metadata%5Bnote%5D=x%26y%3Dz+%C3%A9\
             &enabled_events%5B0%5D=invoice.paid&enabled_events%5B1%5D=customer.subscription.updated"
        );
        let decoded: Vec<(String, String)> = url::form_urlencoded::parse(encoded.as_bytes()).into_owned().collect();
        assert_eq!(decoded, params.pairs());
    }

    #[test]
    fn stripe_error_json_is_parsed_and_keys_are_masked() {
        let key = "sk_test_51AbCdEfGhIjKlMnOpQrStUv1234";
        let body = format!(
            r#"{{"error":{{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_x' (key {key}, other rk_live_ZZZZyyyyXXXXwwww9876)","param":"id"}}}}"#
        );
        let error = StripeError::from_response(404, body.as_bytes(), None, key);
        assert!(error.is_not_found());
        assert!(!error.is_transient());
        let StripeError::Api { kind, code, param, .. } = &error else { panic!("{error:?}") };
        assert_eq!(
            (kind.as_str(), code.as_deref(), param.as_deref()),
            ("invalid_request_error", Some("resource_missing"), Some("id"))
        );
        let text = format!("{error} {error:?}");
        assert!(!text.contains(key), "{text}");
        assert!(!text.contains("ZZZZyyyyXXXX"), "{text}");
        assert!(text.contains("No such customer: 'cus_x'"), "{text}");

        // Stripe's own masked form stays readable.
        let masked =
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****1234"}}"#;
        let error = StripeError::from_response(401, masked.as_bytes(), None, key);
        assert!(error.to_string().ends_with("Invalid API Key provided: sk_test_****1234"), "{error}");
    }

    #[test]
    fn transient_follows_status_and_should_retry_header() {
        let api =
            |status, should_retry| StripeError::from_response(status, b"<html>bad gateway</html>", should_retry, "");
        assert!(api(429, None).is_transient());
        assert!(api(500, None).is_transient());
        assert!(api(503, None).is_transient());
        assert!(api(409, None).is_transient());
        assert!(!api(400, None).is_transient());
        assert!(!api(500, Some(false)).is_transient());
        assert!(api(400, Some(true)).is_transient());
        assert!(StripeError::Transport("timed out".into()).is_transient());
        assert!(!StripeError::Decode("x".into()).is_transient());
        assert_eq!(api(502, None).status(), Some(502));
        assert!(api(502, None).to_string().contains("bad gateway"));
    }

    #[test]
    fn backoff_grows_and_stays_under_its_ceilings() {
        for retry in 1..=3 {
            for _ in 0..50 {
                let delay = full_jitter(Duration::from_millis(100), retry);
                assert!(delay <= Duration::from_millis(100 << (retry - 1)), "{delay:?}");
            }
        }
        assert!(full_jitter(Duration::from_secs(60), 30) <= MAX_BACKOFF);
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(HttpStripe::new("ftp://x").is_err());
        assert!(HttpStripe::new("not a url").is_err());
        let client = HttpStripe::new("http://127.0.0.1:9/").unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9");
        assert_eq!(client.url("/v1/customers/cus_1", Some(&Params::new())), "http://127.0.0.1:9/v1/customers/cus_1");
        assert_eq!(
            client.url("/v1/subscriptions", Some(&Params::new().set("status", "all"))),
            "http://127.0.0.1:9/v1/subscriptions?status=all"
        );
    }
}
