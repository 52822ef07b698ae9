//! Piano's REST API as a port (`PianoApi`) and its HTTP adapter (`HttpPiano`): Piano ID token
//! verification (the authoritative check of a reader's access token), user reads (profile fields a
//! webhook lacks) and the application's webhook settings (registration of the proxy's URL). Every call
//! has a connect timeout, an overall deadline and bounded retries with full jitter on answers that may
//! succeed later.
//!
//! Piano takes the application's API token (and the reader's JWT) as parameters, sometimes in the
//! query, so a request URL can be a secret: it is never logged, and transport errors are reported
//! without it. Texts kept from Piano's answers are masked again in case they echo a secret.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::domain::secret::Secret;
use crate::domain::settings::PianoRegion;
use crate::http::outbound::LazyClient;

/// Optional environment variable pointing every region's calls elsewhere (a fake server in tests).
pub const API_BASE_ENV: &str = "CRM_PIANO_API_BASE";
/// The same, under the name the public-routes specification uses; `CRM_PIANO_API_BASE` wins.
pub const API_BASE_ENV_ALIAS: &str = "PIANO_API_BASE";
/// Piano ID's token verification endpoint.
pub const TOKEN_VERIFY_PATH: &str = "/id/api/v1/publisher/token/verify";
/// A user's profile (form: `aid`, `api_token`, `uid`).
pub const USER_GET_PATH: &str = "/api/v3/publisher/user/get";
/// The application's webhook settings: read (GET with query) and update (form POST).
pub const WEBHOOK_SETTINGS_PATH: &str = "/api/v3/publisher/webhook/settings";
pub const WEBHOOK_SETTINGS_UPDATE_PATH: &str = "/api/v3/publisher/webhook/settings/update";
/// The application's users (form: `aid`, `api_token`, `offset`, `limit`).
pub const USER_LIST_PATH: &str = "/api/v3/publisher/user/list";
/// One user's access list (query: `aid`, `api_token`, `uid`, `offset`, `limit`).
pub const ACCESS_LIST_PATH: &str = "/api/v3/publisher/user/access/list";
/// The application's subscriptions, every status (query: `aid`, `api_token`, `offset`, `limit`).
pub const SUBSCRIPTION_LIST_PATH: &str = "/api/v3/publisher/subscription/list";
/// The application's conversions, payments among them (query: `aid`, `api_token`, `offset`, `limit`).
pub const CONVERSION_LIST_PATH: &str = "/api/v3/publisher/conversion/list";
/// Retries after the first attempt, at most.
pub const MAX_RETRIES: u32 = 2;
/// First backoff step; doubles with every retry up to `MAX_BACKOFF`, with full jitter.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);

const MAX_BACKOFF: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One call, retries included: verification sits on a reader's request path, so it answers within this
/// or gives up.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("subscription-crm/", env!("CARGO_PKG_VERSION"));
/// A JWT longer than this is not Piano's and is refused without a call (it would make an absurd URL).
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// How much of an unexpected answer is kept in an error.
const MAX_EXCERPT: usize = 200;

/// The base URL for a publication's region: the deployment's override when set and not empty
/// (`CRM_PIANO_API_BASE`, read into `ApiConfig`; tests point every region at a fake with it), else
/// the region's host.
pub fn base_for(region: PianoRegion, configured: Option<&str>) -> String {
    match configured {
        Some(base) if !base.trim().is_empty() => base.trim().trim_end_matches('/').to_owned(),
        _ => region.api_base().to_owned(),
    }
}

/// A failed Piano call. The Display never contains the API token or the reader's JWT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PianoError {
    /// Piano refused the token (expired, revoked, for another application, or the API token is wrong:
    /// Piano answers both with the same 403).
    #[error("Piano refused the access token")]
    InvalidToken,
    /// No usable answer (transport failure, timeout, 5xx, an unexpected status or body) after the
    /// retries allowed; the same call may succeed later.
    #[error("Piano unavailable: {0}")]
    Unavailable(String),
    /// Piano answered and refused the call (a v3 error `code`, 401 or 403: wrong API token, unknown
    /// application or user); repeating it will not help.
    #[error("Piano refused the call: {0}")]
    Rejected(String),
}

impl PianoError {
    pub fn is_transient(&self) -> bool {
        matches!(self, PianoError::Unavailable(_))
    }
}

/// A Piano user's profile fields the CRM keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PianoUser {
    pub uid: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl PianoUser {
    /// "First Last", either alone, or `None`.
    pub fn name(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.first_name, &self.last_name]
            .into_iter()
            .flatten()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Piano's acceptance of a reader's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The reader's uid (`pub_id`).
    pub uid: String,
    /// Piano answered `email_confirmation_required: false`: the reader proved they own their email.
    /// An answer without the field counts as unconfirmed.
    pub email_confirmed: bool,
}

/// One of the application's lists the history import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PianoList<'a> {
    Users,
    /// One user's access list.
    Accesses {
        uid: &'a str,
    },
    Subscriptions,
    Conversions,
}

impl PianoList<'_> {
    /// The path, whether it is a form POST (else a GET with a query), and the answer's array field.
    fn call(&self) -> (&'static str, bool, &'static str) {
        match self {
            PianoList::Users => (USER_LIST_PATH, true, "users"),
            PianoList::Accesses { .. } => (ACCESS_LIST_PATH, false, "accesses"),
            PianoList::Subscriptions => (SUBSCRIPTION_LIST_PATH, false, "subscriptions"),
            PianoList::Conversions => (CONVERSION_LIST_PATH, false, "conversions"),
        }
    }
}

/// A page of a list: its items, and how many the whole list holds when Piano says (`total`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PianoPage {
    pub items: Vec<Value>,
    pub total: Option<u64>,
}

/// An application's webhook settings as Piano reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: Option<String>,
    pub enabled: Option<bool>,
}

/// Piano's REST API. `base` is the publication's region base (`base_for`); each call takes the
/// application id (`aid`) and its API token, as Piano authenticates per application.
#[async_trait]
pub trait PianoApi: Send + Sync + 'static {
    /// Asks Piano whether a Piano ID access token is valid for the application; gives the reader's uid
    /// (`pub_id`) and whether their email is confirmed.
    async fn verify_token(
        &self,
        base: &str,
        aid: &str,
        api_token: &Secret,
        token: &str,
    ) -> Result<VerifiedToken, PianoError>;

    /// A user's profile.
    async fn user(&self, base: &str, aid: &str, api_token: &Secret, uid: &str) -> Result<PianoUser, PianoError>;

    /// Points the application's webhooks at `url` and enables them.
    async fn set_webhook_url(&self, base: &str, aid: &str, api_token: &Secret, url: &str) -> Result<(), PianoError>;

    /// The application's webhook settings as Piano holds them now.
    async fn webhook_settings(&self, base: &str, aid: &str, api_token: &Secret) -> Result<WebhookSettings, PianoError>;

    /// Up to `limit` items of `list` from `offset` on (the history import).
    async fn list(
        &self,
        base: &str,
        aid: &str,
        api_token: &Secret,
        list: PianoList<'_>,
        offset: u64,
        limit: u32,
    ) -> Result<PianoPage, PianoError>;
}

/// `PianoApi` over HTTPS with reqwest (rustls on ring).
#[derive(Debug, Clone)]
pub struct HttpPiano {
    client: LazyClient,
    backoff: Duration,
    max_retries: u32,
    deadline: Duration,
}

impl Default for HttpPiano {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpPiano {
    pub fn new() -> Self {
        let client = LazyClient::new(|builder| {
            builder
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(TOTAL_TIMEOUT)
                .user_agent(USER_AGENT)
                // A redirect would carry the secret query elsewhere; Piano's API answers without them.
                .redirect(reqwest::redirect::Policy::none())
        });
        Self { client, backoff: DEFAULT_BACKOFF, max_retries: MAX_RETRIES, deadline: TOTAL_TIMEOUT }
    }

    /// The first backoff step (tests use a millisecond).
    pub fn with_backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// Sends one request (a POST, with `form` as its body when given; a GET when `get`), retrying
    /// transient failures, all within the deadline.
    async fn execute(&self, call: Call<'_>, secrets: &[&str]) -> Result<Answer, PianoError> {
        let attempts = async {
            let mut retries = 0;
            loop {
                let client = self.client.get().map_err(PianoError::Unavailable)?;
                let request = match &call {
                    Call::Post(url, None) => client.post(url.clone()),
                    Call::Post(url, Some(form)) => client
                        .post(url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(url::form_urlencoded::Serializer::new(String::new()).extend_pairs(*form).finish()),
                    Call::Get(url) => client.get(url.clone()),
                }
                .header(reqwest::header::ACCEPT, "application/json");
                let url = call.url();
                let failure = match send(request, secrets).await {
                    Ok(answer) => return Ok(answer),
                    Err(failure) => failure,
                };
                if retries >= self.max_retries || !failure.transient {
                    return Err(failure.error);
                }
                retries += 1;
                let delay = full_jitter(self.backoff, retries);
                // The path only: the URL's query holds the API token and the JWT.
                tracing::warn!(
                    path = url.path(),
                    attempt = retries,
                    delay_ms = delay.as_millis() as u64,
                    error = %failure.error,
                    "Piano request failed, retrying"
                );
                tokio::time::sleep(delay).await;
            }
        };
        tokio::time::timeout(self.deadline, attempts)
            .await
            .unwrap_or_else(|_| Err(PianoError::Unavailable(format!("no answer within {} s", self.deadline.as_secs()))))
    }
}

#[async_trait]
impl PianoApi for HttpPiano {
    async fn verify_token(
        &self,
        base: &str,
        aid: &str,
        api_token: &Secret,
        token: &str,
    ) -> Result<VerifiedToken, PianoError> {
        // Nothing Piano could accept: no call, no URL made of outside input.
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(PianoError::InvalidToken);
        }
        let mut url = endpoint(base, TOKEN_VERIFY_PATH)?;
        url.query_pairs_mut()
            .append_pair("aid", aid)
            .append_pair("api_token", api_token.expose())
            .append_pair("token", token);
        let secrets = [api_token.expose(), token];
        let answer = self.execute(Call::Post(url, None), &secrets).await?;
        match answer.status {
            200 => match answer.body.get("pub_id").and_then(Value::as_str) {
                Some(uid) if !uid.is_empty() => Ok(VerifiedToken {
                    uid: uid.to_owned(),
                    email_confirmed: answer.body.get("email_confirmation_required") == Some(&Value::Bool(false)),
                }),
                // Piano's error list in a 200 is still a refusal.
                _ if answer.body.get("error_code_list").is_some() => Err(PianoError::InvalidToken),
                _ => Err(PianoError::Unavailable("token verification answered without pub_id".to_owned())),
            },
            // The endpoint's one refusal: `{"error_code_list":[{"message":"Invalid access token"}]}`.
            403 => Err(PianoError::InvalidToken),
            status => {
                Err(PianoError::Unavailable(format!("Piano answered {status}: {}", excerpt(&answer.text, &secrets))))
            }
        }
    }

    async fn user(&self, base: &str, aid: &str, api_token: &Secret, uid: &str) -> Result<PianoUser, PianoError> {
        let form = [("aid", aid), ("api_token", api_token.expose()), ("uid", uid)];
        let body = self.v3(Call::Post(endpoint(base, USER_GET_PATH)?, Some(&form)), api_token).await?;
        let user = body.get("user").filter(|u| u.is_object()).ok_or_else(|| missing("user"))?;
        let text = |key: &str| {
            user.get(key).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
        };
        Ok(PianoUser {
            uid: text("uid").unwrap_or_else(|| uid.to_owned()),
            email: text("email"),
            first_name: text("first_name"),
            last_name: text("last_name"),
        })
    }

    async fn set_webhook_url(&self, base: &str, aid: &str, api_token: &Secret, url: &str) -> Result<(), PianoError> {
        let form = [("aid", aid), ("api_token", api_token.expose()), ("url", url), ("enabled", "true")];
        self.v3(Call::Post(endpoint(base, WEBHOOK_SETTINGS_UPDATE_PATH)?, Some(&form)), api_token).await.map(drop)
    }

    async fn webhook_settings(&self, base: &str, aid: &str, api_token: &Secret) -> Result<WebhookSettings, PianoError> {
        let mut url = endpoint(base, WEBHOOK_SETTINGS_PATH)?;
        url.query_pairs_mut().append_pair("aid", aid).append_pair("api_token", api_token.expose());
        let body = self.v3(Call::Get(url), api_token).await?;
        // The settings object is read wherever the answer puts it (`webhook_settings`, `settings`, or the
        // envelope itself), so a renamed wrapper does not break registration.
        let settings = ["webhook_settings", "settings", "webhook"]
            .iter()
            .find_map(|k| body.get(*k).filter(|v| v.is_object()))
            .unwrap_or(&body);
        Ok(WebhookSettings {
            url: settings.get("url").or_else(|| settings.get("webhook_url")).and_then(Value::as_str).map(str::to_owned),
            enabled: settings.get("enabled").and_then(|v| v.as_bool().or_else(|| v.as_str().map(|s| s == "true"))),
        })
    }

    async fn list(
        &self,
        base: &str,
        aid: &str,
        api_token: &Secret,
        list: PianoList<'_>,
        offset: u64,
        limit: u32,
    ) -> Result<PianoPage, PianoError> {
        let (path, post, field) = list.call();
        let (offset, limit) = (offset.to_string(), limit.to_string());
        let mut params = vec![("aid", aid), ("api_token", api_token.expose()), ("offset", &offset), ("limit", &limit)];
        if let PianoList::Accesses { uid } = list {
            params.push(("uid", uid));
        }
        let mut url = endpoint(base, path)?;
        let body = if post {
            self.v3(Call::Post(url, Some(&params)), api_token).await?
        } else {
            url.query_pairs_mut().extend_pairs(&params);
            self.v3(Call::Get(url), api_token).await?
        };
        let items = match body.get(field) {
            Some(Value::Array(items)) => items.clone(),
            // Piano leaves an empty list out.
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(missing(field)),
        };
        Ok(PianoPage { items, total: body.get("total").and_then(Value::as_u64) })
    }
}

impl HttpPiano {
    /// A call of Piano's v3 API: it answers 200 with `{"code": 0, ...}` on success and a non-zero `code`
    /// with a `message` when it refuses.
    async fn v3(&self, call: Call<'_>, api_token: &Secret) -> Result<Value, PianoError> {
        let secrets = [api_token.expose()];
        let answer = self.execute(call, &secrets).await?;
        let refused = |what: String| PianoError::Rejected(excerpt(&what, &secrets));
        match answer.status {
            200 => match answer.body.get("code").and_then(Value::as_i64) {
                Some(0) => Ok(answer.body),
                Some(code) => {
                    let message = answer.body.get("message").and_then(Value::as_str).unwrap_or("no message");
                    Err(refused(format!("code {code}: {message}")))
                }
                None => Err(PianoError::Unavailable(format!(
                    "Piano answered without a code: {}",
                    excerpt(&answer.text, &secrets)
                ))),
            },
            401 | 403 | 404 => Err(refused(format!("{}: {}", answer.status, answer.text))),
            status => {
                Err(PianoError::Unavailable(format!("Piano answered {status}: {}", excerpt(&answer.text, &secrets))))
            }
        }
    }
}

fn missing(field: &str) -> PianoError {
    PianoError::Unavailable(format!("Piano's answer has no {field}"))
}

/// One request to Piano: a POST (with an optional form body) or a GET.
enum Call<'a> {
    Post(url::Url, Option<&'a [(&'a str, &'a str)]>),
    Get(url::Url),
}

impl Call<'_> {
    fn url(&self) -> &url::Url {
        match self {
            Call::Post(url, _) | Call::Get(url) => url,
        }
    }
}

/// `{base}{path}`, checked: an http(s) base without query or fragment.
fn endpoint(base: &str, path: &str) -> Result<url::Url, PianoError> {
    let unusable = || PianoError::Unavailable(format!("Piano base URL {base:?} is not http(s)://host[:port][/path]"));
    let parsed = url::Url::parse(base).map_err(|_| unusable())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(unusable());
    }
    url::Url::parse(&format!("{}{path}", base.trim_end_matches('/'))).map_err(|_| unusable())
}

/// An answer whose status this module interprets per call (200 and 403 for verification); statuses
/// worth retrying never get here.
struct Answer {
    status: u16,
    /// The body as JSON, `Null` when it is not JSON.
    body: Value,
    text: String,
}

struct Failure {
    error: PianoError,
    transient: bool,
}

async fn send(request: reqwest::RequestBuilder, secrets: &[&str]) -> Result<Answer, Failure> {
    let response = request.send().await.map_err(|e| transport(e, secrets))?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| transport(e, secrets))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // 429 and 5xx are Piano (or its load balancer) saying "later".
    if status == 429 || status >= 500 {
        return Err(Failure {
            error: PianoError::Unavailable(format!("Piano answered {status}: {}", excerpt(&text, secrets))),
            transient: true,
        });
    }
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer { status, body, text })
}

/// A transport error's text with its causes, without the URL (its query holds secrets). Connection
/// failures are retried; a timeout is not, as it has used most of the deadline already.
fn transport(error: reqwest::Error, secrets: &[&str]) -> Failure {
    let (what, transient) = if error.is_timeout() {
        ("timed out", false)
    } else if error.is_connect() {
        ("could not connect", true)
    } else {
        ("request failed", true)
    };
    let error = error.without_url();
    let mut text = format!("{what}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure { error: PianoError::Unavailable(redact(&text, secrets)), transient }
}

/// A short, single-line, masked excerpt of an answer for an error message.
fn excerpt(text: &str, secrets: &[&str]) -> String {
    let masked = redact(text, secrets);
    let line: String = masked.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = line.chars().take(MAX_EXCERPT).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// Masks every secret in a text, also in its percent-encoded form (a server echoing its URL).
fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let masked = Secret::new(*secret).masked();
        text = text.replace(secret, &masked);
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        if encoded != *secret {
            text = text.replace(&encoded, &masked);
        }
    }
    text
}

/// Exponential backoff with full jitter: a uniform delay in `[0, min(MAX_BACKOFF, base·2^(retry-1))]`.
fn full_jitter(base: Duration, retry: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(MAX_BACKOFF);
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_comes_from_the_environment_value_or_the_region() {
        assert_eq!(base_for(PianoRegion::Eu, None), "https://api-eu.piano.io");
        assert_eq!(base_for(PianoRegion::Sandbox, Some("  ")), "https://sandbox.piano.io");
        assert_eq!(base_for(PianoRegion::Us, Some(" http://127.0.0.1:4000/ ")), "http://127.0.0.1:4000");
        for region in [PianoRegion::Us, PianoRegion::Eu, PianoRegion::Au, PianoRegion::Ap, PianoRegion::Sandbox] {
            assert_eq!(base_for(region, Some("http://fake")), "http://fake");
        }
    }

    #[test]
    fn endpoint_checks_the_base() {
        assert_eq!(
            endpoint("https://api.piano.io/", TOKEN_VERIFY_PATH).unwrap().as_str(),
            "https://api.piano.io/id/api/v1/publisher/token/verify"
        );
        assert_eq!(endpoint("http://127.0.0.1:9/prefix", "/x").unwrap().as_str(), "http://127.0.0.1:9/prefix/x");
        for bad in ["ftp://x", "not a url", "https://api.piano.io?aid=1", ""] {
            assert!(matches!(endpoint(bad, "/x"), Err(PianoError::Unavailable(_))), "{bad}");
        }
    }

    #[test]
    fn redaction_masks_plain_and_encoded_secrets() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig+/=";
        let api = "api-token-0123456789abcdef";
        let text = format!(
            "bad token {jwt} from /verify?api_token={api}&token={}",
            url::form_urlencoded::byte_serialize(jwt.as_bytes()).collect::<String>()
        );
        let masked = excerpt(&text, &[api, jwt]);
        assert!(!masked.contains(api), "{masked}");
        assert!(!masked.contains("eyJzdWIiOiJ4In0"), "{masked}");
        assert!(masked.starts_with("bad token …"), "{masked}");
        assert!(excerpt(&"x".repeat(1000), &[]).chars().count() <= MAX_EXCERPT + 1);
        assert_eq!(excerpt("a\n  b", &[""]), "a b");
    }

    #[test]
    fn backoff_stays_under_its_ceilings() {
        for retry in 1..=MAX_RETRIES {
            for _ in 0..50 {
                assert!(full_jitter(Duration::from_millis(100), retry) <= Duration::from_millis(100 << (retry - 1)));
            }
        }
        assert!(full_jitter(Duration::from_secs(60), 30) <= MAX_BACKOFF);
    }
}
