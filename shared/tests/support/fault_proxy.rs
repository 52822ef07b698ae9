//! A fault-injecting HTTP proxy in front of the DynamoDB/SQS emulator. A test points the real AWS SDK
//! clients (under `DynamoStore` and `SqsQueue`) at it and tells it at runtime which operations (the
//! `X-Amz-Target` header: `TransactWriteItems`, `SendMessageBatch`, …) to answer with the errors AWS
//! answers under load, in the AWS JSON protocol's wire format, so the SDK classifies and retries them
//! as it would AWS's: throttling (400 `ThrottlingException`, `ProvisionedThroughputExceededException`)
//! and 5xx (500 `InternalServerError`, 503 `ServiceUnavailable`); for the next N requests or an even
//! share of them; before the emulator sees the request or after (the write happened, its answer was
//! lost). It can also hold answers (a caller killed mid-call) and refuse connections (`set_down`).
//! It counts per operation the requests, the faults it answered and the SDK's retries
//! (`amz-sdk-request: attempt=N`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the proxy answers instead of the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// 400 `ThrottlingException`.
    Throttling,
    /// 400 `ProvisionedThroughputExceededException` (DynamoDB's throttling of a table).
    ThroughputExceeded,
    /// 500 `InternalServerError` (DynamoDB), `InternalError` (SQS).
    InternalError,
    /// 503 `ServiceUnavailable`.
    Unavailable,
    /// Nothing until `release_held`, which then answers 503 (to a caller that is usually gone).
    Hold,
}

impl Fault {
    fn status(self) -> StatusCode {
        match self {
            Fault::Throttling | Fault::ThroughputExceeded => StatusCode::BAD_REQUEST,
            Fault::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Fault::Unavailable | Fault::Hold => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error code AWS sends for it, per service (`DynamoDB_20120810` or `AmazonSQS` targets).
    fn code(self, sqs: bool) -> &'static str {
        match (self, sqs) {
            (Fault::Throttling, false) => "ThrottlingException",
            (Fault::Throttling | Fault::ThroughputExceeded, true) => "RequestThrottled",
            (Fault::ThroughputExceeded, false) => "ProvisionedThroughputExceededException",
            (Fault::InternalError, false) => "InternalServerError",
            (Fault::InternalError, true) => "InternalError",
            (Fault::Unavailable | Fault::Hold, _) => "ServiceUnavailable",
        }
    }
}

/// Which requests get a fault: those of `ops` (whose body contains `containing`, when set), past the
/// first `skip`, `hit` of every `of` (spread evenly, so the same sequence of requests gets the same
/// faults), at most `limit` of them. The first rule that strikes a request decides its fault.
#[derive(Debug, Clone)]
pub struct Rule {
    ops: Vec<&'static str>,
    containing: Option<String>,
    fault: Fault,
    /// The emulator gets the request first; the fault replaces its answer.
    reaches_emulator: bool,
    skip: u64,
    hit: u64,
    of: u64,
    limit: Option<u64>,
    seen: u64,
    injected: u64,
    /// Cleared by `heal`; a healed rule still reports what it injected.
    active: bool,
}

impl Rule {
    /// Every request of these operations (names as in `X-Amz-Target` after the dot).
    pub fn on(ops: &[&'static str], fault: Fault) -> Self {
        Rule {
            ops: ops.to_vec(),
            containing: None,
            fault,
            reaches_emulator: false,
            skip: 0,
            hit: 1,
            of: 1,
            limit: None,
            seen: 0,
            injected: 0,
            active: true,
        }
    }

    /// Only requests whose body contains `text` (e.g. the items of one customer).
    pub fn containing(self, text: &str) -> Self {
        assert!(!text.is_empty(), "a rule contains some text");
        Rule { containing: Some(text.to_owned()), ..self }
    }

    /// `hit` of every `of` requests.
    pub fn share(self, hit: u64, of: u64) -> Self {
        assert!(0 < hit && hit <= of, "a share is 1..=of of every of");
        Rule { hit, of, ..self }
    }

    /// At most `n` faults, then the rule lets everything through.
    pub fn next(self, n: u64) -> Self {
        Rule { limit: Some(n), ..self }
    }

    /// Lets the first `n` requests through untouched.
    pub fn after_passing(self, n: u64) -> Self {
        Rule { skip: n, ..self }
    }

    /// The emulator carries the request out; the caller gets the fault instead of its answer.
    pub fn reaching_emulator(self) -> Self {
        Rule { reaches_emulator: true, ..self }
    }

    /// Whether this request gets the fault.
    fn strikes(&mut self, op: &str, body: &[u8]) -> bool {
        let about = |text: &String| body.windows(text.len()).any(|w| w == text.as_bytes());
        if !self.active || !self.ops.contains(&op) || self.containing.as_ref().is_some_and(|text| !about(text)) {
            return false;
        }
        self.seen += 1;
        if self.seen <= self.skip || self.limit.is_some_and(|l| self.injected >= l) {
            return false;
        }
        let n = self.seen - self.skip;
        let strikes = n * self.hit / self.of > (n - 1) * self.hit / self.of;
        self.injected += u64::from(strikes);
        strikes
    }
}

/// What one operation went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpStats {
    pub requests: u64,
    /// Requests the SDK sent as a retry (attempt 2 and later).
    pub retries: u64,
    pub faults: BTreeMap<Fault, u64>,
}

impl OpStats {
    pub fn faulted(&self) -> u64 {
        self.faults.values().sum()
    }
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    ops: Mutex<BTreeMap<String, OpStats>>,
    /// Cancelled (and replaced) by `release_held`.
    release: Mutex<CancellationToken>,
    held: AtomicU64,
    /// Requests on their way to the emulator or back.
    forwarding: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts a request while it lasts, also when its connection drops it.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    upstream: String,
    client: reqwest::Client,
    /// Cancelling it stops listening and drops every open connection; `None` while down.
    running: Mutex<Option<CancellationToken>>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Arc<Self> {
        shared::stripe::client::install_tls_provider();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let proxy = Arc::new(FaultProxy {
            addr: listener.local_addr().expect("proxy address"),
            shared: Arc::default(),
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().no_proxy().build().expect("proxy's HTTP client"),
            running: Mutex::new(None),
        });
        proxy.serve(listener);
        proxy
    }

    /// A proxy in front of the emulator of `AWS_ENDPOINT_URL`.
    pub async fn for_emulator() -> Arc<Self> {
        Self::start(&super::emulator_endpoint()).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule after the others; answers its handle for `injected`.
    pub fn inject(&self, rule: Rule) -> usize {
        let mut rules = lock(&self.shared.rules);
        rules.push(rule);
        rules.len() - 1
    }

    /// How many faults the rule `handle` injected.
    pub fn injected(&self, handle: usize) -> u64 {
        lock(&self.shared.rules).get(handle).map_or(0, |r| r.injected)
    }

    /// Ends every rule: requests go through untouched again.
    pub fn heal(&self) {
        for rule in lock(&self.shared.rules).iter_mut() {
            rule.active = false;
        }
    }

    /// Answers every held request (503) and lets the next ones through.
    pub fn release_held(&self) {
        let mut release = lock(&self.shared.release);
        release.cancel();
        *release = CancellationToken::new();
    }

    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Requests on their way to the emulator or back: once it is 0 after the callers stopped, the
    /// emulator's state no longer changes.
    pub fn forwarding(&self) -> u64 {
        self.shared.forwarding.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> BTreeMap<String, OpStats> {
        lock(&self.shared.ops).clone()
    }

    /// Down: the port is closed (callers get "connection refused") and open connections are dropped.
    /// Up: listening again on the same port.
    pub async fn set_down(self: &Arc<Self>, down: bool) {
        if down {
            if let Some(running) = lock(&self.running).take() {
                running.cancel();
            }
            // The listener is dropped by the accept loop; wait until the port refuses.
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!("the fault proxy still accepts connections on {}", self.addr);
        } else if lock(&self.running).is_none() {
            let listener = TcpListener::bind(self.addr).await.expect("listen again on the proxy's port");
            self.serve(listener);
        }
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let stop = CancellationToken::new();
        *lock(&self.running) = Some(stop.clone());
        let proxy = self.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (proxy, stop) = (proxy.clone(), stop.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let proxy = proxy.clone();
                        async move { Ok::<_, Infallible>(proxy.answer(request).await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        // Dropping the connection closes its socket.
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return plain(StatusCode::BAD_REQUEST, "unreadable request body");
        };
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let target = header("x-amz-target").unwrap_or_default();
        let op = target.rsplit('.').next().unwrap_or_default().to_owned();
        let sqs = target.starts_with("AmazonSQS");
        let retry = header("amz-sdk-request")
            .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("attempt=")?.parse::<u32>().ok()))
            .is_some_and(|attempt| attempt > 1);
        let fault =
            lock(&self.shared.rules).iter_mut().find_map(|rule| rule.strikes(&op, &body).then_some(rule.clone()));
        {
            let mut ops = lock(&self.shared.ops);
            let stats = ops.entry(op).or_default();
            stats.requests += 1;
            stats.retries += u64::from(retry);
            if let Some(rule) = &fault {
                *stats.faults.entry(rule.fault).or_default() += 1;
            }
        }
        let Some(rule) = fault else { return self.forward(parts, body).await };
        if rule.reaches_emulator {
            let _ = self.forward(parts, body).await;
        }
        if rule.fault == Fault::Hold {
            let released = lock(&self.shared.release).clone();
            let _held = Gauge::up(&self.shared.held);
            released.cancelled().await;
        }
        aws_error(rule.fault, sqs)
    }

    async fn forward(&self, parts: hyper::http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
        let _forwarding = Gauge::up(&self.shared.forwarding);
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut outgoing = self.client.request(parts.method, format!("{}{path}", self.upstream)).body(body);
        for (name, value) in parts.headers.iter().filter(|(name, _)| !hop_by_hop(name.as_str())) {
            outgoing = outgoing.header(name, value);
        }
        let answer = match outgoing.send().await {
            Ok(answer) => answer,
            Err(e) => return plain(StatusCode::BAD_GATEWAY, &format!("emulator unreachable: {e}")),
        };
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers().iter().filter(|(name, _)| !hop_by_hop(name.as_str())) {
            response = response.header(name, value);
        }
        match answer.bytes().await {
            Ok(bytes) => {
                response.body(Full::new(bytes)).unwrap_or_else(|e| plain(StatusCode::BAD_GATEWAY, &e.to_string()))
            }
            Err(e) => plain(StatusCode::BAD_GATEWAY, &format!("emulator answer cut: {e}")),
        }
    }
}

/// Headers of one hop, which the proxy's own connections set.
fn hop_by_hop(name: &str) -> bool {
    matches!(name, "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "host")
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

/// The error as AWS's JSON protocol sends it: `__type` (the SDK reads the code after `#`), the query
/// protocol's code in `x-amzn-query-error` for SQS.
fn aws_error(fault: Fault, sqs: bool) -> Response<Full<Bytes>> {
    let code = fault.code(sqs);
    let namespace = if sqs { "com.amazonaws.sqs" } else { "com.amazonaws.dynamodb.v20120810" };
    let body = serde_json::json!({"__type": format!("{namespace}#{code}"), "message": format!("injected {code}")});
    let mut response = Response::builder()
        .status(fault.status())
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", ulid::Ulid::new().to_string());
    if sqs {
        let party = if fault.status().is_server_error() { "Receiver" } else { "Sender" };
        response = response.header("x-amzn-query-error", format!("{code};{party}"));
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|e| plain(StatusCode::BAD_GATEWAY, &e.to_string()))
}
