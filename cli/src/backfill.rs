//! `crm backfill --publication P --account K`: imports the Stripe account's history into the records,
//! in this process, with a progress bar per object type (objects, rate, how far back, ETA);
//! `crm backfill --publication P --provider piano` imports the Piano application's users, access,
//! subscriptions and payments the same way. Resumable: Ctrl-C stops after the current page, and the
//! same command continues from the checkpoint (so does a `POST …/backfill`, and the other way round).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use shared::api::backfill::progress;
use shared::backfill::{PianoRunner, Runner, Stop};
use shared::domain::ids::{AccountKey, PublicationId};
use shared::domain::record::rfc3339;
use shared::piano::client::HttpPiano;
use shared::store::repo::backfill::{BackfillJob, JobState, ObjectKind};
use shared::stripe::client::HttpStripe;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Provider {
    Stripe,
    Piano,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    publication: String,
    /// Whose history: a Stripe account's (`--account`) or the Piano application's.
    #[arg(long, value_enum, default_value = "stripe")]
    provider: Provider,
    /// The Stripe account's key in the publication's settings (Stripe only).
    #[arg(long, required_if_eq("provider", "stripe"))]
    account: Option<String>,
    /// Requests per second (1-100); by default 25 for Stripe test keys, 90 for live keys, 10 for
    /// Piano. Used when a new job starts; a running job keeps its own.
    #[arg(long)]
    rate: Option<u32>,
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
}

/// One bar per object type, and when each started moving (for its rate).
struct Bars {
    bars: HashMap<ObjectKind, ProgressBar>,
    started: Mutex<HashMap<ObjectKind, (Instant, u64)>>,
}

/// Bars count in thousandths of a stage's history (see `progress`), so indicatif's ETA is the stage's.
const SCALE: u64 = 1000;

impl Bars {
    fn new(job: &BackfillJob) -> Self {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>14} [{bar:30}] {msg} · ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bars = job
            .stages
            .iter()
            .map(|s| {
                let bar = multi.add(ProgressBar::new(SCALE).with_style(style.clone()).with_prefix(s.kind.name()));
                (s.kind, bar)
            })
            .collect();
        let bars = Self { bars, started: Mutex::new(HashMap::new()) };
        bars.show(job);
        bars
    }

    fn show(&self, job: &BackfillJob) {
        let mut started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for stage in &job.stages {
            let Some(bar) = self.bars.get(&stage.kind) else { continue };
            let (since, base) = *started.entry(stage.kind).or_insert((Instant::now(), stage.objects));
            let secs = since.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { (stage.objects - base) as f64 / secs } else { 0.0 };
            let back = stage.reached.and_then(rfc3339).map(|t| format!(" · back to {}", &t[..10])).unwrap_or_default();
            bar.set_message(format!("{} objects · {rate:.0}/s{back}", stage.objects));
            let at = progress(job, stage).map_or(0, |p| (p * SCALE as f64) as u64);
            bar.set_position(at);
            if stage.done && !bar.is_finished() {
                bar.set_position(SCALE);
                bar.finish();
            }
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let publication = PublicationId::parse(&args.publication).context("--publication is not a publication id")?;
    let store = args.store.open(None).await?;
    let token = CancellationToken::new();
    {
        let token = token.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopping after the current page…");
                token.cancel();
            }
        });
    }
    let stop = Stop::on(token);
    let began = Instant::now();
    let (job, done) = match (args.provider, args.account.as_deref()) {
        (Provider::Stripe, account) => {
            let account = AccountKey::parse(account.unwrap_or_default()).context("--account is not an account key")?;
            let runner = Runner::new(store, std::sync::Arc::new(HttpStripe::from_env()?));
            let (job, created) = runner.start(&publication, &account, args.rate).await?;
            announce(&job, created, &format!("Stripe account {account}"));
            let bars = Bars::new(&job);
            let done = runner.run(&publication, &account, &stop, &|job| bars.show(job)).await?;
            (job, done)
        }
        (Provider::Piano, Some(_)) => anyhow::bail!("--account names a Stripe account; a Piano import takes none"),
        (Provider::Piano, None) => {
            let base = shared::api::ApiConfig::from_env()?.piano_api_base;
            let runner = PianoRunner::new(store, std::sync::Arc::new(HttpPiano::new()), base);
            let (job, created) = runner.start(&publication, args.rate).await?;
            announce(&job, created, "the Piano application");
            let bars = Bars::new(&job);
            let done = runner.run(&publication, &stop, &|job| bars.show(job)).await?;
            (job, done)
        }
    };
    report(&done, began.elapsed(), job.objects());
    match done.state {
        JobState::Done => Ok(()),
        JobState::Running => {
            eprintln!("Stopped; run the same command to resume from the checkpoint.");
            Ok(())
        }
        JobState::Failed => anyhow::bail!("backfill failed: {}", done.error.as_deref().unwrap_or("unknown error")),
    }
}

fn announce(job: &BackfillJob, created: bool, of: &str) {
    eprintln!(
        "{} backfill {} of {of} at {} requests/s",
        if created { "Starting" } else { "Resuming" },
        job.id,
        job.rate
    );
}

fn report(job: &BackfillJob, elapsed: Duration, objects_before: u64) {
    let objects = job.objects() - objects_before;
    let secs = elapsed.as_secs_f64().max(0.001);
    eprintln!(
        "{objects} objects in {secs:.1} s ({:.0}/s) · {} requests in all, {} answered 429 · {} skipped",
        objects as f64 / secs,
        job.requests,
        job.rate_limited,
        job.stages.iter().map(|s| s.skipped).sum::<u64>()
    );
    for skipped in &job.skipped_ids {
        eprintln!("  skipped {skipped}");
    }
}
