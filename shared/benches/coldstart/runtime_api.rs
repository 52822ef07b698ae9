//! A local Lambda Runtime API (the `2018-06-01` interface a function's runtime client polls) that
//! times one function process at a time: spawn → first `GET …/invocation/next` (init done) → each
//! `POST …/response`; its peak RSS (VmHWM) once it waits idle for the next event, and its CPU time
//! from `wait4` once it is killed there.
//! Timestamps are taken in the request handlers, on the monotonic clock, before any reply is written.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

/// How long a process may take over init or one event before the run is declared failed.
const STALL: Duration = Duration::from_secs(60);

/// What the function's runtime client did, with when the harness saw it.
enum Report {
    Next(Instant),
    Response(Instant, Bytes),
    Error(String),
}

/// The events of the process being measured, and where its calls are reported.
struct Session {
    events: tokio::sync::Mutex<VecDeque<Bytes>>,
    reports: mpsc::UnboundedSender<Report>,
    function_arn: String,
}

#[derive(Clone, Default)]
struct Shared {
    current: Arc<Mutex<Option<Arc<Session>>>>,
}

impl Shared {
    fn session(&self) -> Option<Arc<Session>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Shared,
}

/// One process to measure.
pub struct Launch {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Its stdout and stderr (the function's logs) are appended here.
    pub log: PathBuf,
}

/// The figures of one process's life.
#[derive(Debug, Clone)]
pub struct Run {
    /// Spawn → first `/next`: the function's init.
    pub init: Duration,
    /// Spawn → first response: the cold start as a caller sees it (minus Lambda's own overhead).
    pub first_response: Duration,
    /// `/next` → response, per event.
    pub handlers: Vec<Duration>,
    /// The answers, in order.
    pub answers: Vec<Bytes>,
    /// User + system CPU of the whole life (init, every event, the idle wait).
    pub cpu: Duration,
    /// Peak resident set size, bytes.
    pub max_rss: u64,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let shared = Shared::default();
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, shared })
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the processes.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Starts `launch`, hands it `events` one per `/next`, and once it asks for the one after the last
    /// kills it and collects its figures. Fails on an error report, an unexpected exit or a stall.
    pub async fn run(&self, launch: &Launch, events: Vec<Bytes>) -> Result<Run, String> {
        let count = events.len();
        let (reports, mut received) = mpsc::unbounded_channel();
        let session = Arc::new(Session {
            events: tokio::sync::Mutex::new(events.into()),
            reports,
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{}", launch.name),
        });
        *self.shared.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(session);
        let result = self.measure(launch, count, &mut received).await;
        // A killed process's idle `/next` stays pending on a session nobody reads again.
        *self.shared.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        result
    }

    async fn measure(
        &self,
        launch: &Launch,
        count: usize,
        received: &mut mpsc::UnboundedReceiver<Report>,
    ) -> Result<Run, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(|e| format!("{}: {e}", launch.log.display()))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", self.address())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let spawned = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("spawn {}: {e}", launch.program.display()))?;
        let pid = child.id();

        let mut nexts = Vec::new();
        let mut responses = Vec::new();
        let mut answers = Vec::new();
        let mut max_rss = Err(String::new());
        let failure = loop {
            let report = match tokio::time::timeout(Duration::from_millis(100), received.recv()).await {
                Ok(Some(report)) => report,
                Ok(None) => break Some("report channel closed".to_owned()),
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!("{} exited ({status}); log: {}", launch.name, tail(&launch.log)));
                    }
                    if spawned.elapsed() > STALL * (count as u32 + 1) {
                        break Some(format!("{} stalled", launch.name));
                    }
                    continue;
                }
            };
            match report {
                Report::Next(at) => {
                    nexts.push(at);
                    if nexts.len() > count {
                        // Idle in `/next`: its high-water mark covers init and every event.
                        max_rss = peak_rss(pid);
                        break None;
                    }
                }
                Report::Response(at, body) => {
                    responses.push(at);
                    answers.push(body);
                }
                Report::Error(body) => break Some(format!("{} reported an error: {body}", launch.name)),
            }
        };
        // SIGKILL, as Lambda freezes then discards an idle sandbox: no exit work is counted.
        let _ = child.kill();
        let cpu = reap(pid)?;
        if let Some(why) = failure {
            return Err(format!("{why}; log: {}", tail(&launch.log)));
        }
        let handlers = nexts.iter().zip(&responses).map(|(next, done)| done.duration_since(*next)).collect();
        Ok(Run {
            init: nexts[0].duration_since(spawned),
            first_response: responses[0].duration_since(spawned),
            handlers,
            answers,
            cpu,
            max_rss: max_rss?,
        })
    }
}

/// Waits for the killed child and answers its CPU time, user + system, all threads.
fn reap(pid: u32) -> Result<Duration, String> {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; the pid is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if reaped != pid as libc::pid_t {
        return Err(format!("wait4({pid}): {}", std::io::Error::last_os_error()));
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

/// The process's peak resident set (VmHWM), bytes. Not rusage's ru_maxrss: Linux carries the high-water
/// mark of the memory the child shared with this process before `exec` into it, so every child
/// would report at least the harness's own size.
fn peak_rss(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).ok_or("no VmHWM in /proc/<pid>/status")?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|e| format!("VmHWM: {e}"))?;
    Ok(kib * 1024)
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.len().saturating_sub(2000);
    text.get(start..).unwrap_or_default().to_owned()
}

async fn next(State(shared): State<Shared>) -> Response {
    let at = Instant::now();
    let Some(session) = shared.session() else {
        return StatusCode::GONE.into_response();
    };
    let _ = session.reports.send(Report::Next(at));
    let Some(event) = session.events.lock().await.pop_front() else {
        // The run is over: the harness kills this process, so this call never completes.
        std::future::pending::<()>().await;
        return StatusCode::GONE.into_response();
    };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let request_id = ulid::Ulid::new().to_string();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    };
    put("content-type", "application/json".into());
    put("lambda-runtime-aws-request-id", request_id.clone());
    // Fifteen minutes, the longest a Lambda may run (the backfill slices itself by this deadline).
    put("lambda-runtime-deadline-ms", (now_ms + 900_000).to_string());
    put("lambda-runtime-invoked-function-arn", session.function_arn.clone());
    let trace = format!("Root=1-{:08x}-{:024x};Parent=0000000000000001;Sampled=0", now_ms / 1000, now_ms);
    put("lambda-runtime-trace-id", trace);
    (headers, event).into_response()
}

async fn response(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    if let Some(session) = shared.session() {
        let _ = session.reports.send(Report::Response(at, body));
    }
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    report_error(&shared, "invocation error", &body)
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    report_error(&shared, "init error", &body)
}

fn report_error(shared: &Shared, kind: &str, body: &[u8]) -> StatusCode {
    if let Some(session) = shared.session() {
        let _ = session.reports.send(Report::Error(format!("{kind}: {}", String::from_utf8_lossy(body))));
    }
    StatusCode::ACCEPTED
}
