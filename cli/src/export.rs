//! `crm export customers|subscriptions|invoices --publication P [--format csv|jsonl]`: the export of
//! docs/exports.md written to standard output (or `--output`), one page of customers at a time, from
//! the embedded store (stop `crm serve` first: the file is locked while it runs; or use the HTTP
//! route) or DynamoDB (`--dynamodb`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use shared::domain::ids::PublicationId;
use shared::export::{Export, Format, Kind};

/// The embedded store's page cache during an export.
pub const EXPORT_CACHE_BYTES: usize = 16 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// customers, subscriptions or invoices.
    kind: String,
    #[arg(long)]
    publication: String,
    /// csv or jsonl.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let kind = Kind::parse(&args.kind).context("the export is customers, subscriptions or invoices")?;
    let format = Format::parse(&args.format).context("--format is csv or jsonl")?;
    let publication = PublicationId::parse(&args.publication).context("--publication is not a publication id")?;
    // One pass over the file: a small page cache keeps the export's memory flat.
    let store = args.store.open(Some(EXPORT_CACHE_BYTES)).await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut export = Export::new(publication, kind, format);
    while let Some(chunk) = export.next_chunk(store.as_ref()).await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}
