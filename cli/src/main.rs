//! `crm`: the product in one process (`crm serve`) and the operator's commands.

mod account_args;
mod backfill;
mod catch_up;
mod demo;
mod dlq;
mod export;
mod reconcile;
mod replay;
mod serve;
mod sign;
mod store_args;
mod tables;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `crm serve` allocates per request and per event from many threads at once, where glibc's
/// allocator spent a sixth of the CPU (docs/PERFORMANCE.md, "Load").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "crm", version, about = "Subscription CRM for publishers: local server and operator tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every route of every function, and the queue workers, in one process.
    Serve(serve::Args),
    /// DynamoDB table and SQS queues.
    Tables {
        #[command(subcommand)]
        command: tables::Command,
    },
    /// Stripe tools for local runs.
    Stripe {
        #[command(subcommand)]
        command: StripeCommand,
    },
    /// Dead-letter queues: list them with a peek, redrive them (SQS only: the embedded
    /// `crm serve`'s in-process queues are not persisted).
    Dlq {
        #[command(subcommand)]
        command: dlq::Command,
    },
    /// Posts Stripe events, freshly signed, to a running server's webhook.
    Replay(replay::Args),
    /// Customers, subscriptions or invoices as CSV or JSON Lines (docs/exports.md).
    Export(export::Args),
    /// Imports a Stripe account's history (resumable; progress per object type).
    Backfill(backfill::Args),
    /// Compares a Stripe account with the CRM for a period (customers, live subscriptions, paid
    /// invoices, refunds); exit code 1 when they differ.
    Reconcile(reconcile::Args),
    /// Lists the Stripe events the CRM missed (since the last one applied, and those Stripe never
    /// delivered) and has them applied: queued on SQS with `--dynamodb`, applied in this process on
    /// the embedded store.
    CatchUp(catch_up::Args),
}

#[derive(Subcommand)]
enum StripeCommand {
    /// Signs a sample with the current time (prints the header, or the re-signed API Gateway sample).
    Sign(sign::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // `crm serve` logs a line per request and per event: they go out in batches, not a write each.
    let _logs = match &cli.command {
        Command::Serve(_) => Some(shared::telemetry::init_batched()?),
        Command::Tables { command } if command.prints_env() => {
            shared::telemetry::init_stderr();
            None
        }
        _ => {
            shared::telemetry::init();
            None
        }
    };
    let done = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Tables { command } => tables::run(command).await,
        Command::Stripe { command: StripeCommand::Sign(args) } => sign::run(args),
        Command::Dlq { command } => dlq::run(command).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Backfill(args) => backfill::run(args).await,
        Command::CatchUp(args) => catch_up::run(args).await,
        Command::Reconcile(args) => return Ok(reconcile::run(args).await),
    };
    done.map(|()| ExitCode::SUCCESS)
}
