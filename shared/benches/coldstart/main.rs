//! Cold start of every function binary under a local Lambda Runtime API (runtime_api.rs), against the
//! DynamoDB/SQS emulator at `AWS_ENDPOINT_URL` and the test suite's fake Stripe and Piano: per run a
//! fresh process answers either a request that needs no store or its sample that does (then that
//! sample again, warm). Prints Markdown tables (medians, p90, max over `CRM_BENCH_RUNS` runs, default
//! 20) of spawn → first `/next` → first response and peak RSS; then, with `CRM_BENCH_NODE_DIR`, the
//! same Stripe webhook ingestion written in Node.js beside the Rust one (compare_node.rs).
//!
//! Run: `bench/coldstart`, which builds the release binaries, starts the emulator and sets
//! `CRM_BENCH_BIN_DIR` (the binaries), `CRM_BENCH_NODE_DIR` and `CRM_BENCH_WARM_EVENTS` (default 1000).
//! `CRM_BENCH_FUNCTIONS=a,b` measures only those functions. `CRM_BENCH_TOKEN=env` gives the admin
//! functions the operator token in `CRM_ADMIN_TOKEN` instead of a Secrets Manager secret (as deployed),
//! to measure what reading the secret at init costs.

#[path = "../../tests/support/mod.rs"]
mod support;

mod compare_node;
mod endpoints;
mod runtime_api;
mod stats;
mod world;

use std::path::PathBuf;
use std::time::Duration;

use runtime_api::{Run, RuntimeApi};
use stats::{mib, ms, summary};
use world::World;

/// Targets of issue 8, for every function.
const FIRST_RESPONSE_TARGET: Duration = Duration::from_millis(25);
const RSS_TARGET_MIB: f64 = 30.0;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number, got {v}")))
}

/// The function crates, by directory name (= binary name); with `CRM_BENCH_FUNCTIONS`, the ones named
/// there, which may also name `settings-api` and `customers-api` (the binaries the admin routes had
/// before each got its own function, built from an older checkout into `CRM_BENCH_BIN_DIR`).
fn functions() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");
    let mut all: Vec<String> = std::fs::read_dir(root)
        .expect("the functions directory")
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    all.sort();
    match std::env::var("CRM_BENCH_FUNCTIONS") {
        Ok(only) if !only.is_empty() => {
            let before = ["settings-api", "customers-api"].map(str::to_owned);
            all.into_iter().chain(before).filter(|f| only.split(',').any(|o| o.trim() == f)).collect()
        }
        _ => all,
    }
}

/// The runs of one function: `quiet` answered one request without the store, `busy` its store
/// sample twice.
#[derive(Default)]
struct Measured {
    quiet: Vec<Run>,
    busy: Vec<Run>,
    failure: Option<String>,
}

#[tokio::main]
async fn main() {
    let bin_dir = PathBuf::from(std::env::var("CRM_BENCH_BIN_DIR").expect("CRM_BENCH_BIN_DIR: the release binaries"));
    let runs = env_number("CRM_BENCH_RUNS", 20).max(1);
    let log_dir = tempfile::Builder::new().prefix("coldstart-logs").tempdir().expect("log dir").keep();
    eprintln!("function logs: {}", log_dir.display());
    let api = RuntimeApi::start().await.expect("start the Runtime API");
    let world = World::new(&api, bin_dir, log_dir).await;
    println!(
        "AWS endpoints: {}",
        if world.endpoints.is_tls() {
            "HTTPS: a loopback relay per service terminates TLS in front of the plain-HTTP emulator"
        } else {
            "plain HTTP: a loopback relay per service in front of the emulator (no TLS handshakes)"
        }
    );

    let functions = functions();
    let mut measured: Vec<Measured> = functions.iter().map(|_| Measured::default()).collect();
    // Rounds over all functions, so a burst of load on the machine spreads over them.
    for run in 0..runs {
        for (function, m) in functions.iter().zip(measured.iter_mut()) {
            if m.failure.is_some() {
                continue;
            }
            match measure(&api, &world, function, run).await {
                Ok((quiet, busy)) => {
                    m.quiet.push(quiet);
                    m.busy.push(busy);
                }
                Err(why) => {
                    eprintln!("{function}: {why}");
                    m.failure = Some(why);
                }
            }
        }
        eprintln!("round {}/{runs} done", run + 1);
    }
    print_cold_starts(&functions, &measured, runs);
    print_first_requests(&functions, &measured);
    let [dynamodb, sqs, secrets] = world.endpoints.connections();
    eprintln!("connections through the relays so far: DynamoDB {dynamodb}, SQS {sqs}, Secrets Manager {secrets}");

    if let Ok(dir) = std::env::var("CRM_BENCH_NODE_DIR") {
        let warm = env_number("CRM_BENCH_WARM_EVENTS", 1000).max(1);
        compare_node::run(&api, &world, PathBuf::from(dir), runs, warm).await;
    }
}

/// One cold process answering the quiet request, another answering the store sample twice.
async fn measure(api: &RuntimeApi, world: &World, function: &str, run: usize) -> Result<(Run, Run), String> {
    let (event, expect) = World::quiet_event(function);
    let quiet = api.run(&world.launch(function), vec![event]).await?;
    expect.check(&quiet.answers[0]).map_err(|e| format!("request without the store: {e}"))?;
    let (first, first_expect) = world.busy_event(function, run, 0).await;
    let (again, again_expect) = world.busy_event(function, run, 1).await;
    let busy = api.run(&world.launch(function), vec![first, again]).await?;
    first_expect.check(&busy.answers[0]).map_err(|e| format!("store sample: {e}"))?;
    again_expect.check(&busy.answers[1]).map_err(|e| format!("store sample, again: {e}"))?;
    Ok((quiet, busy))
}

fn print_cold_starts(functions: &[String], measured: &[Measured], runs: usize) {
    println!("\n### Cold start per function ({runs} cold processes per column, ms and MiB)\n");
    println!(
        "| function | init: spawn → first /next (median) | first response, no store: median / p90 / max | first response, store sample: median / p90 / max | peak RSS: median / max | under 25 ms (p90) and 30 MiB (max) |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for (function, m) in functions.iter().zip(measured) {
        if let Some(why) = &m.failure {
            println!("| {function} | failed: {} | | | | NOT measured |", why.lines().next().unwrap_or_default());
            continue;
        }
        let all: Vec<&Run> = m.quiet.iter().chain(&m.busy).collect();
        let init = summary(all.iter().map(|r| r.init));
        let quiet = summary(m.quiet.iter().map(|r| r.first_response));
        let busy = summary(m.busy.iter().map(|r| r.first_response));
        // The quiet runs' peak is init + one request; the busy runs' includes two store requests.
        let rss: Vec<u64> = all.iter().map(|r| r.max_rss).collect();
        let rss_median = stats::median_u64(&rss);
        let rss_max = rss.iter().copied().max().unwrap_or_default();
        let met =
            quiet.p90 < FIRST_RESPONSE_TARGET && busy.p90 < FIRST_RESPONSE_TARGET && mib(rss_max) < RSS_TARGET_MIB;
        println!(
            "| {function} | {} | {} / {} / {} | {} / {} / {} | {} / {} | {} |",
            ms(init.median),
            ms(quiet.median),
            ms(quiet.p90),
            ms(quiet.max),
            ms(busy.median),
            ms(busy.p90),
            ms(busy.max),
            stats::mib_text(rss_median),
            stats::mib_text(rss_max),
            if met { "met" } else { "NOT met" }
        );
    }
}

/// Whether connection setup stayed in init: the first store request of a cold process against the
/// same request once warm.
fn print_first_requests(functions: &[String], measured: &[Measured]) {
    println!("\n### First store request of a cold process against the same request warm (/next → response, ms)\n");
    println!(
        "| function | first request: median / p90 | second request: median / p90 | first − second (median) | CPU of the process (init + 2 requests), median |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (function, m) in functions.iter().zip(measured) {
        if m.failure.is_some() {
            continue;
        }
        let first = summary(m.busy.iter().map(|r| r.handlers[0]));
        let second = summary(m.busy.iter().map(|r| r.handlers[1]));
        let diffs = m.busy.iter().map(|r| r.handlers[0].as_secs_f64() - r.handlers[1].as_secs_f64());
        let cpu = summary(m.busy.iter().map(|r| r.cpu));
        println!(
            "| {function} | {} / {} | {} / {} | {:.1} | {} |",
            ms(first.median),
            ms(first.p90),
            ms(second.median),
            ms(second.p90),
            stats::median_f64(diffs) * 1000.0,
            ms(cpu.median)
        );
    }
}
