//! `crm replay`: posts Stripe events (a file, or every `*.json` of a folder in name order) to a running
//! server's webhook, each freshly signed, as Stripe would deliver them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use shared::stripe::signature::sign;

#[derive(clap::Args)]
pub struct Args {
    /// A Stripe event file, or a folder of them.
    path: PathBuf,
    #[arg(long)]
    publication: String,
    #[arg(long, default_value = "main")]
    account: String,
    /// The account's signing secret (`crm serve --demo` prints the demo's).
    #[arg(long, env = "CRM_STRIPE_WEBHOOK_SECRET")]
    secret: String,
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    url: String,
}

fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    found.sort();
    Ok(found)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    shared::stripe::client::install_tls_provider();
    let endpoint = format!("{}/webhooks/stripe/{}/{}", args.url.trim_end_matches('/'), args.publication, args.account);
    let client = reqwest::Client::new();
    let files = files(&args.path)?;
    if files.is_empty() {
        bail!("no .json files in {}", args.path.display());
    }
    let mut failed = 0;
    for file in &files {
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let response = client
            .post(&endpoint)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", sign(&body, &args.secret, now))
            .body(body)
            .send()
            .await
            .with_context(|| format!("posting to {endpoint}"))?;
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        println!("{} {} {}", status.as_u16(), file.display(), answer.trim());
        if !status.is_success() {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} events were refused", files.len());
    }
    Ok(())
}
