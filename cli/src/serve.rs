//! `crm serve`: every function's routes on one listener, over the embedded store and in-process
//! queues by default (or DynamoDB/SQS with `--dynamodb`). Ctrl-C / SIGTERM stop accepting,
//! finish the requests in flight, then exit.

use std::net::SocketAddr;

use std::sync::Arc;

use std::time::Duration;

use anyhow::Context;
use shared::api::{self, ApiConfig, AppState};
use shared::http::auth::AdminAuth;
use shared::jobs::JobWorker;
use shared::piano::client::HttpPiano;
use shared::piano::forward::{ForwardWorker, Forwarder};
use shared::queue::{EVENTS, FORWARD, JOBS, Queue, worker};
use shared::stripe::client::HttpStripe;
use shared::sync::tally::TallyWriter;
use shared::sync::worker::EventWorker;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
    #[arg(long, env = "CRM_QUEUE_PREFIX", default_value = "crm")]
    queue_prefix: String,
    /// In-process queues (without `--dynamodb`): the messages each may hold, in MiB; past that the
    /// webhooks answer 503 and the providers deliver again later.
    #[arg(long, env = "CRM_QUEUE_MAX_MB", default_value_t = (shared::queue::memory::MAX_BYTES >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    queue_max_mb: u64,
    /// Creates (once) a publication `demo` with a Stripe account and prints its keys.
    #[arg(long)]
    demo: bool,
    /// Batches of the events queue applied at once, as concurrent Lambda invocations of
    /// `webhook-worker` would: their writes share the embedded store's commits.
    #[arg(long, env = "CRM_EVENT_WORKERS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    event_workers: u16,
    /// Threads of their own for the event workers, beside the ones serving HTTP; 0: they share the
    /// serving threads. Under load, applying then cannot take the cores the webhooks answer on.
    #[arg(long, env = "CRM_APPLY_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=64))]
    apply_threads: u16,
}

/// The operator key: `CRM_ADMIN_TOKEN`, or one generated once and kept in the data directory.
fn admin_token(data_dir: &std::path::Path) -> anyhow::Result<String> {
    if shared::config::optional(shared::config::ADMIN_TOKEN)?.is_some() {
        return Ok(shared::config::admin_token()?);
    }
    let path = data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let token = shared::http::auth::new_operator_token();
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

pub fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = args.store.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let token = admin_token(&data_dir)?;
    let store = args.store.open(None).await?;
    let queue = crate::store_args::open_queues(
        args.store.dynamodb,
        &args.queue_prefix,
        usize::try_from(args.queue_max_mb << 20).unwrap_or(usize::MAX),
    )
    .await?;
    let stripe = Arc::new(HttpStripe::from_env()?);
    let piano = Arc::new(HttpPiano::new());
    let previous = shared::config::optional(shared::config::ADMIN_TOKEN_PREVIOUS)?
        .map(|raw| shared::config::checked_admin_token(shared::config::ADMIN_TOKEN_PREVIOUS, &raw))
        .transpose()?;
    let admin = AdminAuth::new(&token).with_previous(previous.as_deref());
    let state = AppState::new(store, queue, admin, stripe, piano).with_config(ApiConfig::from_env()?);
    let app = api::all_routes(state.clone());
    let workers = Workers::start(&state, args.event_workers, args.apply_threads)?;

    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
    let store_kind = if args.store.dynamodb { "dynamodb" } else { "embedded" };
    tracing::info!(addr = %listener.local_addr()?, store = store_kind, data_dir = %data_dir.display(), "crm serve listening");
    if shared::config::optional("CRM_ADMIN_TOKEN")?.is_none() {
        eprintln!("admin token (from {}): {token}", data_dir.join("admin-token").display());
    }
    if args.demo {
        let demo = crate::demo::ensure(&state, &data_dir).await?;
        let secret = &demo.webhook_secret;
        eprintln!("demo publication \"{}\" ready", crate::demo::PUBLICATION);
        eprintln!("  publication key:       {}", demo.publication_key);
        eprintln!("  Stripe webhook secret: {secret} (account \"main\")");
        eprintln!(
            "  replay a story:  cargo run -p crm -- replay events/stripe-webhook/story --publication demo --secret {secret}"
        );
        eprintln!(
            "  then:            curl -H 'Authorization: Bearer {}' http://{}/admin/publications/demo/customers",
            demo.publication_key,
            listener.local_addr()?
        );
    }
    eprintln!("listening on http://{}", listener.local_addr()?);

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await
        .context("serving")?;
    workers.drain(state.queue.as_ref()).await;
    tracing::info!("stopped");
    Ok(())
}

/// The queue consumers of every function, polling the same queues the routes send to.
struct Workers {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Writes the event workers' sync figures until stopped, after them.
    tally_stop: CancellationToken,
    tally_task: tokio::task::JoinHandle<()>,
    /// Where the event workers and their tally writer run, when they have threads of their own.
    apply_runtime: Option<tokio::runtime::Runtime>,
}

impl Workers {
    fn start(state: &AppState, event_workers: u16, apply_threads: u16) -> anyhow::Result<Self> {
        let apply_runtime = match apply_threads {
            0 => None,
            threads => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(usize::from(threads))
                    .thread_name("crm-apply")
                    .enable_all()
                    .build()
                    .context("starting the event workers' threads")?,
            ),
        };
        let apply = apply_runtime.as_ref().map_or_else(tokio::runtime::Handle::current, |rt| rt.handle().clone());
        let shutdown = CancellationToken::new();
        // One writer for the sync figures of every event worker: 32 workers writing their own would
        // contend on the same items and each wait for one more commit per batch.
        let tally = Arc::new(TallyWriter::default());
        let tally_stop = CancellationToken::new();
        let tally_task = apply.spawn({
            let (tally, store, queue, stop) =
                (tally.clone(), state.store.clone(), state.queue.clone(), tally_stop.clone());
            async move { tally.run(store.as_ref(), Some(queue.as_ref()), stop).await }
        });
        let events = Arc::new(EventWorker::for_state(state).with_tally_writer(tally));
        // Local runs forward to local endpoints too unless told otherwise.
        let allow_private =
            shared::config::optional("CRM_FORWARD_ALLOW_PRIVATE").ok().flatten().as_deref() != Some("0");
        let forwards = Arc::new(ForwardWorker::new(Arc::new(Forwarder::new(allow_private))));
        let jobs = JobWorker::for_state(state, JOB_SLICE);
        let jobs = Arc::new(jobs.with_shutdown(shutdown.clone()));
        // One poller applies a batch at a time, and each of its commits costs the same fsync
        // whether it holds one batch's writes or several: batches in parallel share them.
        let mut tasks: Vec<_> = (0..event_workers)
            .map(|_| {
                let handler: Arc<dyn worker::BatchHandler> = events.clone();
                apply.spawn(worker::run_batched(
                    state.queue.clone(),
                    EVENTS.name,
                    handler,
                    shutdown.clone(),
                    BATCH_WINDOW,
                ))
            })
            .collect();
        tasks.push(tokio::spawn(worker::run(state.queue.clone(), FORWARD.name, forwards, shutdown.clone())));
        tasks.push(tokio::spawn(worker::run(state.queue.clone(), JOBS.name, jobs, shutdown.clone())));
        Ok(Self { shutdown, tasks, tally_stop, tally_task, apply_runtime })
    }

    /// Lets the workers empty the queues (bounded), then stops them after their current batch.
    async fn drain(self, queue: &dyn Queue) {
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        // A backfill is not drained: it stops after its page and resumes from its checkpoint.
        for def in [EVENTS, FORWARD] {
            while let Ok(depth) = queue.depth(def.name).await {
                if depth == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(queue = def.name, depth, "stopping with messages still queued");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.tally_stop.cancel();
        let _ = self.tally_task.await;
        // Every task on it has ended; dropping it here would block inside the serving runtime.
        if let Some(runtime) = self.apply_runtime {
            runtime.shutdown_background();
        }
    }
}

/// How long an event worker waits for a batch to fill after its first message: a few milliseconds
/// more before an event is applied, for a tenth of the per-batch work under a steady flow.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// How long a backfill slice runs before it queues the next, as a Lambda invocation would.
const JOB_SLICE: Duration = Duration::from_secs(300);

/// How long a shutdown waits for queued events to be applied.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
