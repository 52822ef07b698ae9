//! `crm`: the product in one process (`crm serve`) and the operator's commands.

mod serve;
mod tables;

use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args).await,
        Command::Tables { command } => tables::run(command).await,
    }
}
