//! Load on a running `crm serve` (docs/PERFORMANCE.md, "Load"): Stripe events in fixture shapes, each
//! with its own id and a fresh signature, spread over `CRM_LOAD_CUSTOMERS` customers (default 10,000),
//! posted to the webhook at each constant rate of `CRM_LOAD_RATES` (events/s, default
//! `1000,2000,5000,8000`) for `CRM_LOAD_SECS` seconds (default 60). Then it waits until the worker
//! has applied them all, as its log lines count them, and prints a Markdown table.
//!
//! The schedule is open loop: request `i` is due at `start + i / rate` whatever became of the earlier
//! ones, and its latency counts from that due time, so a server that stalls shows in the percentiles
//! instead of slowing the sender down (no coordinated omission). Bodies are built and signed before the
//! timed phase. `bench/load` builds the release binaries, starts the server and runs this; by hand:
//! `CRM_LOAD_URL=http://127.0.0.1:8787 CRM_LOAD_TOKEN=<operator key> CRM_LOAD_SERVER_PID=<pid>
//! cargo bench -p crm --bench load`.

#[path = "../../shared/tests/support/mod.rs"]
mod support;

use std::io::{Read, Seek};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use shared::stripe::signature::sign;
use support::stripe_account::{catalogue, price_of};
use support::stripe_world::{self, WEBHOOK_SECRET, charge, customer, event, invoice, subscription};

const PUBLICATION: &str = "load";
/// Visits customers in a scattered order: consecutive events belong to customers far apart.
const STRIDE: usize = 7_919;
/// Steps of one customer's renewal, in order (see `renewal_event`).
const STEPS: u64 = 7;
const MONTH: i64 = 30 * 86_400;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

fn env_number<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<T> {
    env_or(name, default).trim().parse().ok().with_context(|| format!("{name} must be a number"))
}

/// One event ready to post: its body and `Stripe-Signature`.
struct Signed {
    body: Bytes,
    signature: String,
}

/// Event ids and provider times: each event gets the next second, so no two events of one object
/// share a second (that would make the worker ask Stripe which state is current).
struct Clock {
    start: i64,
    next: u64,
}

impl Clock {
    fn take(&mut self, n: u64) -> u64 {
        let first = self.next;
        self.next += n;
        first
    }
}

fn ids(c: usize) -> (String, String) {
    (format!("cus_ld{c:05}"), format!("sub_ld{c:05}"))
}

fn reader(c: usize) -> Value {
    let (cus, _) = ids(c);
    customer(&cus, &format!("reader{c}@example.com"), &format!("Reader {c}"))
}

/// Customer `c`'s subscription as of provider time `t` (its period starting then).
fn subscription_at(c: usize, t: i64) -> Value {
    let (cus, sub) = ids(c);
    subscription(&sub, &cus, "active", price_of(c), t, (t, t + MONTH))
}

fn amount_and_currency(c: usize) -> (i64, Value) {
    let price = price_of(c);
    (price["unit_amount"].as_i64().unwrap_or(0), price["currency"].clone())
}

/// Step `step` of customer `c`'s renewals, at provider time `t`: the subscription moves to its next
/// period, its invoice is created, finalized and paid (with the charge), and the customer is updated.
fn renewal_event(id: &str, c: usize, step: u64, t: i64) -> Value {
    let (cus, sub) = ids(c);
    let cycle = step / STEPS;
    let (amount, currency) = amount_and_currency(c);
    let invoice_in = |status: &str| {
        let mut i = invoice(&format!("in_ld{c:05}_{cycle}"), &cus, &sub, status, amount, t);
        i["currency"] = currency.clone();
        i
    };
    match step % STEPS {
        0 => event(id, "customer.subscription.updated", t, subscription_at(c, t), Some(json!({"items": {}}))),
        1 => event(id, "invoice.created", t, invoice_in("draft"), None),
        2 => event(id, "invoice.finalized", t, invoice_in("open"), Some(json!({"status": "draft"}))),
        3 => {
            let mut ch = charge(&format!("ch_ld{c:05}_{cycle}"), &cus, amount, 0, t);
            ch["currency"] = currency;
            event(id, "charge.succeeded", t, ch, None)
        }
        4 => event(id, "invoice.paid", t, invoice_in("paid"), Some(json!({"status": "open"}))),
        5 => event(id, "invoice.payment_succeeded", t, invoice_in("paid"), None),
        _ => {
            let mut profile = reader(c);
            profile["name"] = json!(format!("Reader {c} ({cycle})"));
            event(id, "customer.updated", t, profile, Some(json!({"name": format!("Reader {c}")})))
        }
    }
}

/// Builds and signs `n` events (`make(k, id, provider time)` for the `k`th) on every core.
fn signed(clock: &mut Clock, n: usize, make: &(dyn Fn(usize, &str, i64) -> Value + Sync)) -> Vec<Signed> {
    let first = clock.take(n as u64);
    let start = clock.start;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| {
                scope.spawn(move || {
                    (from..(from + chunk).min(n))
                        .map(|k| {
                            let seq = first + k as u64;
                            let body = make(k, &format!("evt_ld{seq:08}"), start + seq as i64).to_string();
                            let signature = sign(body.as_bytes(), WEBHOOK_SECRET, now);
                            Signed { body: Bytes::from(body), signature }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().expect("building events")).collect()
    })
}

/// What one timed phase of posting saw.
struct Posted {
    ok: u64,
    errors: u64,
    latency_us: Histogram<u64>,
    first_error: Option<String>,
    /// From the first due time until the last answer.
    secs: f64,
}

impl Posted {
    fn empty() -> Self {
        let latency_us = Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
        Self { ok: 0, errors: 0, latency_us, first_error: None, secs: 0.0 }
    }

    /// Adds one connection's tally.
    fn add(&mut self, other: Posted) {
        self.ok += other.ok;
        self.errors += other.errors;
        // Both histograms share their bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Posts `events` at `rate` per second, open loop, over `connections` kept-alive HTTP/1.1 connections.
/// Each connection takes the next request, waits for its due time and sends it, so at most
/// `connections` are outstanding; a request that waited for a free connection counts that wait too.
///
/// Requests are written and answers read on the bare TCP stream (one write, a read or two, `httparse`
/// for the answer's head) rather than through reqwest: the generator shares the two cores with the
/// server, and reqwest's pool, header maps and task per request cost some 65 µs of CPU per request.
async fn post_all(target: &Target, events: Vec<Signed>, rate: f64, connections: usize) -> Posted {
    let n = events.len();
    let events = Arc::new(events);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.clamp(1, n.max(1)) {
        let (events, next, target) = (events.clone(), next.clone(), target.clone());
        tasks.spawn(async move {
            let mut tally = Posted::empty();
            let mut connection: Option<tokio::net::TcpStream> = None;
            let mut request = Vec::with_capacity(4096);
            let mut answer = Vec::with_capacity(1024);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(signed) = events.get(i) else { break };
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                target.request(signed, &mut request);
                let outcome = match &mut connection {
                    Some(stream) => exchange(stream, &request, &mut answer).await,
                    None => match target.connect().await {
                        Ok(stream) => exchange(connection.insert(stream), &request, &mut answer).await,
                        Err(e) => Err(e),
                    },
                };
                tally.latency_us.saturating_record(due.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
                match outcome {
                    Ok(Keep::Open) => tally.ok += 1,
                    Ok(Keep::Closed) => {
                        tally.ok += 1;
                        connection = None;
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                        connection = None;
                    }
                }
            }
            tally
        });
    }
    let mut posted = Posted::empty();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(tally) => posted.add(tally),
            Err(e) => {
                posted.errors += 1;
                posted.first_error.get_or_insert(format!("a connection task failed: {e}"));
            }
        }
    }
    posted.secs = start.elapsed().as_secs_f64();
    if let Some(e) = &posted.first_error {
        eprintln!("  {} requests failed; the first: {e}", posted.errors);
    }
    posted
}

/// Where the webhook is: the server's address and the request's path and `Host`.
#[derive(Clone)]
struct Target {
    addr: std::net::SocketAddr,
    host: String,
    path: String,
}

impl Target {
    async fn parse(webhook: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(webhook).context("the webhook URL")?;
        anyhow::ensure!(url.scheme() == "http", "the load generator speaks plain HTTP, not {}", url.scheme());
        let host = url.host_str().context("the webhook URL has no host")?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port)).await?.next().context("the server's address")?;
        Ok(Self { addr, host: format!("{host}:{port}"), path: url.path().to_owned() })
    }

    async fn connect(&self) -> Result<tokio::net::TcpStream, String> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| format!("connecting: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
        Ok(stream)
    }

    /// The whole request for `signed`, head and body, into `out`.
    fn request(&self, signed: &Signed, out: &mut Vec<u8>) {
        use std::io::Write;
        out.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json; charset=utf-8\r\nstripe-signature: {}\r\ncontent-length: {}\r\n\r\n",
            self.path,
            self.host,
            signed.signature,
            signed.body.len()
        );
        out.extend_from_slice(&signed.body);
    }
}

/// Whether the server keeps the connection after an answer.
enum Keep {
    Open,
    Closed,
}

/// Sends one request and reads its whole answer; an error unless it is a 2xx.
async fn exchange(stream: &mut tokio::net::TcpStream, request: &[u8], answer: &mut Vec<u8>) -> Result<Keep, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.map_err(|e| format!("sending: {e}"))?;
    answer.clear();
    let (status, head, length, keep) = loop {
        if stream.read_buf(answer).await.map_err(|e| format!("reading: {e}"))? == 0 {
            return Err("the server closed the connection before answering".into());
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(answer) {
            Ok(httparse::Status::Complete(head)) => {
                let header =
                    |name: &str| response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
                let length = header("content-length")
                    .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
                    .ok_or("an answer without content-length")?;
                let keep = match header("connection") {
                    Some(v) if v.eq_ignore_ascii_case(b"close") => Keep::Closed,
                    _ => Keep::Open,
                };
                break (response.code.unwrap_or(0), head, length, keep);
            }
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(format!("an unreadable answer: {e}")),
        }
    };
    while answer.len() < head + length {
        if stream.read_buf(answer).await.map_err(|e| format!("reading: {e}"))? == 0 {
            return Err("the server closed the connection mid-answer".into());
        }
    }
    if (200..300).contains(&status) {
        Ok(keep)
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&answer[head..head + length])))
    }
}

/// The server process's CPU seconds (user + system) and peak resident memory, from /proc.
fn server_usage(pid: Option<u32>) -> Option<(f64, u64)> {
    let pid = pid?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches(" kB").parse().ok()?;
    // The kernel counts in USER_HZ, 100 per second on Linux.
    Some((ticks / 100.0, hwm_kb))
}

/// This process's CPU seconds: the load generator's share of the machine.
fn own_cpu() -> f64 {
    server_usage(Some(std::process::id())).map_or(0.0, |(cpu, _)| cpu)
}

struct Server {
    /// For the operator routes.
    client: reqwest::Client,
    target: Target,
    base: String,
    token: String,
    pid: Option<u32>,
    log: Mutex<LogCount>,
}

/// How far the server's log has been read, and what it said so far.
struct LogCount {
    path: std::path::PathBuf,
    offset: u64,
    processed: u64,
    applied: u64,
}

impl Server {
    async fn create_publication(&self) -> anyhow::Result<()> {
        let mut settings = stripe_world::settings();
        // Subscriptions name catalogue products, as a configured publication's do.
        settings["catalogue"] = json!([
            {"sku": "DIGITAL", "name": "Digital", "stripeProductIds": ["prod_bf_digital"], "pianoResourceIds": []},
            {"sku": "PRINT", "name": "Print", "stripeProductIds": ["prod_bf_print"], "pianoResourceIds": []}
        ]);
        let response = self
            .client
            .put(format!("{}/admin/publications/{PUBLICATION}", self.base))
            .bearer_auth(&self.token)
            .json(&settings)
            .send()
            .await
            .context("creating the publication")?;
        if !response.status().is_success() {
            bail!("creating the publication: {} {}", response.status(), response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// Events the worker has finished with (applied, ignored, duplicates, failed attempts) and how
    /// many of them were applied: the worker's `event processed` log lines, counted exactly (sync
    /// health's figures are best effort, and concurrent batches lose some of them to write conflicts).
    async fn processed(&self) -> anyhow::Result<(u64, u64)> {
        let mut log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut text = Vec::new();
        let mut file = std::fs::File::open(&log.path).with_context(|| format!("reading {}", log.path.display()))?;
        file.seek(std::io::SeekFrom::Start(log.offset))?;
        file.read_to_end(&mut text)?;
        // Only whole lines: the last may still be being written.
        let end = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in text[..end].split(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(line);
            if line.contains("\"message\":\"event processed\"") {
                log.processed += 1;
                log.applied += u64::from(line.contains("\"outcome\":\"Applied\""));
            } else if line.contains("\"message\":\"event failed; will retry\"")
                || line.contains("\"message\":\"event cannot be applied")
            {
                log.processed += 1;
            }
        }
        log.offset += end as u64;
        Ok((log.processed, log.applied))
    }

    /// Waits until `target` events are processed (or `limit` passes); answers when that happened,
    /// counted from `since`, and the processed figures read at the end of sending (`sent_at`).
    async fn drained(&self, target: u64, since: Instant, limit: Duration) -> anyhow::Result<Drain> {
        loop {
            let (all, applied) = self.processed().await?;
            if all >= target || since.elapsed() > limit {
                return Ok(Drain { secs: since.elapsed().as_secs_f64(), processed: all, applied });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Drain {
    secs: f64,
    processed: u64,
    applied: u64,
}

/// One row: posting at `rate` and the worker catching up.
async fn phase(
    server: &Server,
    label: &str,
    events: Vec<Signed>,
    rate: f64,
    connections: usize,
) -> anyhow::Result<String> {
    let n = events.len() as u64;
    let (before, applied_before) = server.processed().await?;
    let usage_before = server_usage(server.pid);
    let own_before = own_cpu();
    let began = Instant::now();
    let posted = post_all(&server.target, events, rate, connections).await;
    let (at_end, _) = server.processed().await?;
    let applied_while_sending = at_end.saturating_sub(before);
    let limit = Duration::from_secs_f64(posted.secs * 5.0 + 60.0);
    let drain = server.drained(before + posted.ok, began, limit).await?;
    let usage_after = server_usage(server.pid);
    let own = own_cpu() - own_before;
    let done = drain.processed.saturating_sub(before);
    let applied = drain.applied.saturating_sub(applied_before);
    let complete = done >= posted.ok;
    let ms = |q: f64| posted.latency_us.value_at_quantile(q) as f64 / 1000.0;
    let (cpu_per_event, rss) = match (usage_before, usage_after) {
        (Some((b, _)), Some((a, hwm))) => {
            (format!("{:.0} µs", (a - b) / n as f64 * 1e6), format!("{} MiB", hwm / 1024))
        }
        _ => ("n/a".into(), "n/a".into()),
    };
    Ok(format!(
        "| {label} | {n} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {}{:.1} s | **{:.0}** | {applied} | {cpu_per_event} | {:.0} µs | {rss} |",
        posted.ok as f64 / posted.secs,
        posted.errors,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        posted.latency_us.max() as f64 / 1000.0,
        applied_while_sending as f64 / posted.secs,
        if complete { "" } else { "NOT DRAINED after " },
        drain.secs,
        done as f64 / drain.secs,
        own / n as f64 * 1e6,
    ))
}

async fn run() -> anyhow::Result<()> {
    shared::stripe::client::install_tls_provider();
    let base = std::env::var("CRM_LOAD_URL").context("CRM_LOAD_URL: the server's base URL")?;
    let token = std::env::var("CRM_LOAD_TOKEN").context("CRM_LOAD_TOKEN: the operator key")?;
    let pid = std::env::var("CRM_LOAD_SERVER_PID").ok().and_then(|p| p.parse().ok());
    let rates: Vec<f64> = env_or("CRM_LOAD_RATES", "1000,2000,5000,8000")
        .split(',')
        .map(|r| r.trim().parse().context("CRM_LOAD_RATES lists numbers"))
        .collect::<anyhow::Result<_>>()?;
    let secs: f64 = env_number("CRM_LOAD_SECS", "60")?;
    let customers: usize = env_number("CRM_LOAD_CUSTOMERS", "10000")?;
    let connections: usize = env_number("CRM_LOAD_CONNECTIONS", "256")?;
    let warm_rate: f64 = env_number("CRM_LOAD_WARMUP_RATE", "1000")?;
    let client = reqwest::Client::builder().build()?;
    let log = std::env::var("CRM_LOAD_SERVER_LOG").context("CRM_LOAD_SERVER_LOG: the server's log file")?;
    let log = Mutex::new(LogCount { path: log.into(), offset: 0, processed: 0, applied: 0 });
    let base = base.trim_end_matches('/').to_owned();
    let target = Target::parse(&format!("{base}/webhooks/stripe/{PUBLICATION}/main")).await?;
    let server = Server { client, target, base, token, pid, log };
    server.create_publication().await?;

    // Provider times well in the past, so the run's seconds never reach the present.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut clock = Clock { start: now - 120 * 86_400, next: 0 };
    println!(
        "| phase | events | achieved (ev/s) | errors | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | processed while sending (ev/s) | all processed after | **end-to-end (ev/s)** | applied | server CPU/event | load generator CPU/event | server peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");

    // The customers and their subscriptions exist before the timed phases, as in a live account;
    // each stage is applied before the next, so no subscription comes before its customer.
    let products = catalogue();
    let kinds = ["product.created", "product.created", "price.created", "price.created", "price.created"];
    let setup = signed(&mut clock, products.len(), &|k, id, t| event(id, kinds[k], t, products[k].clone(), None));
    phase(&server, "setup: catalogue", setup, warm_rate, connections).await?;
    let created = signed(&mut clock, customers, &|c, id, t| event(id, "customer.created", t, reader(c), None));
    println!("{}", phase(&server, "warm-up: customer.created (new people)", created, warm_rate, connections).await?);
    let subscribed = signed(&mut clock, customers, &|c, id, t| {
        event(id, "customer.subscription.created", t, subscription_at(c, t), None)
    });
    println!("{}", phase(&server, "warm-up: customer.subscription.created", subscribed, warm_rate, connections).await?);

    // Each customer's renewals go on from phase to phase.
    let mut done_per_customer = 0u64;
    for rate in rates {
        let n = (rate * secs).round() as usize;
        let built = Instant::now();
        let first_step = done_per_customer;
        let events = signed(&mut clock, n, &|k, id, t| {
            let c = k * STRIDE % customers;
            renewal_event(id, c, first_step + (k / customers) as u64, t)
        });
        done_per_customer += n.div_ceil(customers) as u64;
        let bytes: usize = events.iter().map(|e| e.body.len()).sum();
        eprintln!(
            "{rate} ev/s: built and signed {n} events ({} MB, {} B average) in {:.1} s",
            bytes / 1_000_000,
            bytes / n.max(1),
            built.elapsed().as_secs_f64()
        );
        println!("{}", phase(&server, &format!("{rate} ev/s for {secs} s"), events, rate, connections).await?);
    }
    Ok(())
}

/// `load sizes <data dir>`: the items of a stopped server's store by kind (the sort key up to its
/// first `#`), with their sizes as DynamoDB would count them (keys, document and the few attribute
/// names), for the cost model's capacity units.
fn item_sizes(data_dir: &std::path::Path) -> anyhow::Result<()> {
    const ITEMS: redb::TableDefinition<(&str, &str), &[u8]> = redb::TableDefinition::new("items");
    // Attribute names (pk, sk, doc, version, gsi1pk, gsi1sk, expiresAt) and type bytes, roughly.
    const ATTRIBUTE_OVERHEAD: usize = 40;
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(data_dir.join("crm.redb")).context("opening the stopped server's store")?;
    let txn = db.begin_read()?;
    let mut kinds: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for row in txn.open_table(ITEMS)?.iter()? {
        let (key, value) = row?;
        let (pk, sk) = key.value();
        // The partition's kind (after the publication) and the sort key's, numbers folded.
        let part = pk.split('#').nth(2).unwrap_or(pk);
        let sort = sk.split('#').next().unwrap_or(sk);
        let sort = if sort.bytes().all(|b| b.is_ascii_digit()) { "(number)" } else { sort };
        let kind = format!("{part} / {sort}");
        kinds.entry(kind).or_default().push(pk.len() + sk.len() + value.value().len() + ATTRIBUTE_OVERHEAD);
    }
    println!("| item kind (partition / sort key) | items | mean (B) | median (B) | max (B) |");
    println!("|---|---:|---:|---:|---:|");
    for (kind, mut sizes) in kinds {
        sizes.sort_unstable();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        println!("| {kind} | {} | {mean} | {} | {} |", sizes.len(), sizes[sizes.len() / 2], sizes[sizes.len() - 1]);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, dir, ..] = args.as_slice()
        && mode == "sizes"
    {
        return item_sizes(std::path::Path::new(dir));
    }
    let threads: usize = env_number("CRM_LOAD_THREADS", "1")?;
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?.block_on(run())
}
