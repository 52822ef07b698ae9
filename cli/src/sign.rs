//! `crm stripe sign`: a fresh `Stripe-Signature` for a sample, so signature checks stay on in local
//! runs (`cargo lambda invoke --data-file`). Takes a raw Stripe event (prints the header value) or an
//! API Gateway request sample (prints the sample with its `stripe-signature` header re-signed).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;
use shared::stripe::signature::sign;

#[derive(clap::Args)]
pub struct Args {
    /// The account's signing secret (`whsec_…`).
    #[arg(long, env = "CRM_STRIPE_WEBHOOK_SECRET")]
    secret: String,
    /// Signature time, epoch seconds (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
    file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let t = args.timestamp.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let mut sample: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", args.file.display()))?;
    match sample.get("body").and_then(Value::as_str).map(str::to_owned) {
        Some(body) => {
            let headers = sample
                .get_mut("headers")
                .and_then(Value::as_object_mut)
                .context("an API Gateway sample needs a headers object")?;
            headers.insert("stripe-signature".into(), Value::String(sign(body.as_bytes(), &args.secret, t)));
            println!("{}", serde_json::to_string_pretty(&sample)?);
        }
        None => println!("{}", sign(text.as_bytes(), &args.secret, t)),
    }
    Ok(())
}
