//! `crm reconcile --publication P --account K [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--json]`: compares
//! the Stripe account with the CRM's records (`shared::reconcile`) and prints the figures and the
//! objects that differ. Exit code 0 when everything matches, 1 when anything differs (so a scheduled
//! run can alert on it), 2 when the comparison could not be made.

use std::process::ExitCode;
use std::sync::Arc;

use shared::reconcile::{self, Period};
use shared::stripe::client::HttpStripe;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::account_args::AccountArgs,
    /// First day (UTC) of the period customers, invoices and refunds were created in; by default the
    /// account's beginning. Subscriptions are compared as they stand now.
    #[arg(long)]
    from: Option<String>,
    /// Last day (UTC) of the period, included; by default up to now.
    #[arg(long)]
    to: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
}

pub async fn run(args: Args) -> ExitCode {
    match compare(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::from(2)
        }
    }
}

/// Prints the report; answers whether both sides match.
async fn compare(args: Args) -> anyhow::Result<bool> {
    let (publication, account) = args.target.parse()?;
    let period = Period::parse(args.from.as_deref(), args.to.as_deref(), shared::store::now_epoch())?;
    let store = args.store.open(None).await?;
    let stripe = Arc::new(HttpStripe::from_env()?);
    let report = reconcile::run(store.as_ref(), stripe, &publication, &account, period).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(report.matches)
}
