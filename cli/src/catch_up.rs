//! `crm catch-up --publication P --account K [--since RFC3339] [--dry-run]`: lists the Stripe events the
//! CRM missed (`shared::catch_up`) and has them applied. With `--dynamodb` they go on the SQS events
//! queue for the deployment's worker; the embedded store has no persistent queue, so this process
//! applies them itself through the same worker, then delivers the notifications automations queued.

use std::sync::Arc;

use anyhow::Context;
use shared::catch_up::{self, Request};
use shared::piano::forward::{ForwardWorker, Forwarder};
use shared::queue::worker::drain;
use shared::queue::{EVENTS, FORWARD};
use shared::stripe::client::HttpStripe;
use shared::sync::worker::EventWorker;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::account_args::AccountArgs,
    /// List events created from this time on (RFC 3339) instead of from the last event applied for
    /// the account less 5 minutes; required when none was ever applied.
    #[arg(long)]
    since: Option<String>,
    /// Only list and count the events; queue and apply nothing.
    #[arg(long)]
    dry_run: bool,
    /// With `--dynamodb`: the SQS queues' prefix (the events go on `{prefix}-events`). On the embedded
    /// store the events are applied in this process instead (stop `crm serve` first).
    #[arg(long, env = "CRM_QUEUE_PREFIX", default_value = "crm")]
    queue_prefix: String,
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (publication, account) = args.target.parse()?;
    let since = args
        .since
        .as_deref()
        .map(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339))
        .transpose()
        .context("--since is an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")?
        .map(|t| t.unix_timestamp());
    let store = args.store.open(None).await?;
    let stripe = Arc::new(HttpStripe::from_env()?);
    let queue =
        crate::store_args::open_queues(args.store.dynamodb, &args.queue_prefix, shared::queue::memory::MAX_BYTES)
            .await?;
    let request = Request { publication, account, since, dry_run: args.dry_run };
    let now = shared::store::now_epoch();
    let report = catch_up::run(store.as_ref(), stripe.clone(), queue.as_ref(), &request, now).await?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    let verb = if args.dry_run { "would queue" } else { "queued" };
    println!(
        "{} events listed since {} ({} undelivered by Stripe); {} already applied; {verb} {}",
        report.listed,
        report.since.as_deref().unwrap_or("?"),
        report.undelivered,
        report.already_applied,
        report.queued
    );
    if args.store.dynamodb || args.dry_run {
        return Ok(());
    }
    let worker = EventWorker::new(store, stripe).with_queue(queue.clone());
    drain(queue.as_ref(), EVENTS.name, &worker).await?;
    // Local runs forward to local endpoints too unless told otherwise, as `crm serve` does.
    let allow_private = shared::config::optional("CRM_FORWARD_ALLOW_PRIVATE")?.as_deref() != Some("0");
    drain(queue.as_ref(), FORWARD.name, &ForwardWorker::new(Arc::new(Forwarder::new(allow_private)))).await?;
    let failed = queue.depth(EVENTS.dlq_name).await? + queue.depth(FORWARD.dlq_name).await?;
    anyhow::ensure!(failed == 0, "{failed} events or notifications failed every attempt (see the log above)");
    println!("applied in this process");
    Ok(())
}
