//! The Rust stripe-webhook beside the same ingestion written the usual Node.js way
//! (bench/node-stripe-webhook: `stripe.webhooks.constructEvent`, then `@aws-sdk/client-sqs`
//! SendMessage), under the same Runtime API, with the same signed event, sending to the same emulator
//! queue. Cold: `runs` fresh processes each, alternating, one event per process. Warm: one process
//! each answering 1 + `warm` events; CPU per warm event is its CPU less a cold process's, over `warm`.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;

use crate::runtime_api::{Launch, Run, RuntimeApi};
use crate::stats::{mib, mib_text, summary};
use crate::world::{self, Expect, World};

/// Targets of issue 8 for the comparison.
const COLD_START_RATIO_TARGET: f64 = 10.0;
const MEMORY_RATIO_TARGET: f64 = 5.0;

fn node_launch(world: &World, dir: &std::path::Path) -> Launch {
    let mut env = world::lambda_env("node-stripe-webhook");
    // The same SQS endpoint as the Rust function (and, over HTTPS, the same trusted CA).
    env.extend(world.endpoints.env.iter().cloned());
    env.extend([
        ("STRIPE_WEBHOOK_SECRET".to_owned(), world::WEBHOOK_SECRET.to_owned()),
        // The sample settings' (test mode) key; constructEvent never calls Stripe.
        ("STRIPE_SECRET_KEY".to_owned(), "sk_test_51HxYzAbCdEfGhIjKlMnOpa1b2".to_owned()),
        ("EVENTS_QUEUE_URL".to_owned(), world.events_queue_url.clone()),
    ]);
    Launch {
        name: "node-stripe-webhook".to_owned(),
        program: PathBuf::from("node"),
        args: vec![dir.join("bootstrap.js").display().to_string()],
        env,
        log: world.log_dir.join("node-stripe-webhook.log"),
    }
}

fn events(count: usize) -> Vec<Bytes> {
    let sample = world::sample("stripe-webhook", "customer-created.json");
    (0..count).map(|_| Bytes::from(world::stripe_webhook_event(&sample))).collect()
}

async fn run_checked(api: &RuntimeApi, launch: &Launch, count: usize) -> Result<Run, String> {
    let run = api.run(launch, events(count)).await?;
    for answer in &run.answers {
        Expect::Status(200).check(answer).map_err(|e| format!("{}: {e}", launch.name))?;
    }
    Ok(run)
}

/// The figures of one side.
struct Side {
    cold: Vec<Run>,
    warm: Run,
}

impl Side {
    fn cold_cpu(&self) -> Duration {
        summary(self.cold.iter().map(|r| r.cpu)).median
    }

    fn cpu_per_warm_event(&self, warm: usize) -> Duration {
        self.warm.cpu.saturating_sub(self.cold_cpu()) / warm as u32
    }
}

pub async fn run(api: &RuntimeApi, world: &World, dir: PathBuf, runs: usize, warm: usize) {
    let rust = world.launch("stripe-webhook");
    let node = node_launch(world, &dir);
    let (mut rust_cold, mut node_cold) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (launch, cold) in [(&rust, &mut rust_cold), (&node, &mut node_cold)] {
            match run_checked(api, launch, 1).await {
                Ok(run) => cold.push(run),
                Err(why) => {
                    println!("\nRust vs Node.js: failed: {why}");
                    return;
                }
            }
        }
    }
    eprintln!("comparison: {runs} cold processes each done; {warm} warm events each next");
    let mut sides = Vec::new();
    for (launch, cold) in [(&rust, rust_cold), (&node, node_cold)] {
        match run_checked(api, launch, warm + 1).await {
            Ok(warm) => sides.push(Side { cold, warm }),
            Err(why) => {
                println!("\nRust vs Node.js: warm run failed: {why}");
                return;
            }
        }
    }
    print(&sides[0], &sides[1], runs, warm);
}

fn print(rust: &Side, node: &Side, runs: usize, warm: usize) {
    println!(
        "\n### Stripe webhook ingestion: Rust stripe-webhook vs Node.js 20 (stripe + @aws-sdk/client-sqs)\n\n\
         {runs} cold processes each (one event), then one process each answering 1 + {warm} events.\n"
    );
    println!("| measure | Rust | Node.js | Node.js ÷ Rust |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, r: f64, n: f64, unit: &str| {
        println!("| {name} | {r:.1} {unit} | {n:.1} {unit} | {:.1}× |", n / r);
    };
    let secs = |d: Duration| d.as_secs_f64() * 1000.0;
    let cold = |side: &Side| summary(side.cold.iter().map(|r| r.first_response));
    let init = |side: &Side| summary(side.cold.iter().map(|r| r.init)).median;
    let rss = |side: &Side| crate::stats::median_u64(&side.cold.iter().map(|r| r.max_rss).collect::<Vec<_>>());
    let handler = |side: &Side| summary(side.warm.handlers.iter().skip(1).copied());
    row("init: spawn → first /next, median", secs(init(rust)), secs(init(node)), "ms");
    row("cold start: spawn → first response, median", secs(cold(rust).median), secs(cold(node).median), "ms");
    row("cold start: spawn → first response, p90", secs(cold(rust).p90), secs(cold(node).p90), "ms");
    row("CPU of a cold process (init + 1 event), median", secs(rust.cold_cpu()), secs(node.cold_cpu()), "ms");
    row("peak RSS of a cold process, median", mib(rss(rust)), mib(rss(node)), "MiB");
    let per_event = |side: &Side| side.cpu_per_warm_event(warm).as_secs_f64() * 1_000_000.0;
    row(&format!("CPU per warm event (over {warm})"), per_event(rust), per_event(node), "µs");
    row("warm event /next → response, median", secs(handler(rust).median), secs(handler(node).median), "ms");
    row(&format!("peak RSS after 1 + {warm} events"), mib(rust.warm.max_rss), mib(node.warm.max_rss), "MiB");

    let cold_ratio = cold(node).median.as_secs_f64() / cold(rust).median.as_secs_f64();
    let memory_ratio = rss(node) as f64 / rss(rust) as f64;
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "\ntargets: cold start ≥ {COLD_START_RATIO_TARGET}× faster: {cold_ratio:.1}×, {}; memory ≥ {MEMORY_RATIO_TARGET}× less: \
         {memory_ratio:.1}× ({} vs {} MiB), {}",
        verdict(cold_ratio >= COLD_START_RATIO_TARGET),
        mib_text(rss(rust)),
        mib_text(rss(node)),
        verdict(memory_ratio >= MEMORY_RATIO_TARGET)
    );
}
