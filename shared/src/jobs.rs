//! The jobs queue: a message asks for the next slice of an account's backfill (or of the Piano
//! application's history import), or for a catch-up of the
//! Stripe events an account missed (queued by the webhook worker when it sees a gap). `JobWorker` runs a
//! backfill slice until its deadline and queues the next one; under Lambda the deadline is the
//! invocation's. Both run in the `backfill` Lambda.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backfill::{BackfillError, PianoRunner, Runner, Stop};
use crate::catch_up::{self, CatchUpError};
use crate::domain::ids::{AccountKey, PublicationId};
use crate::queue::worker::{BatchHandler, each_concurrently};
use crate::queue::{JOBS, OutMessage, Queue, QueueError, Received};
use crate::store::repo::backfill::JobState;
use crate::store::{Store, now_epoch};
use crate::stripe::client::StripeApi;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "job")]
pub enum JobMessage {
    Backfill {
        publication: PublicationId,
        account: AccountKey,
    },
    /// The publication's Piano history import.
    PianoBackfill {
        publication: PublicationId,
    },
    /// The account's events created from `since` (epoch seconds) on, and the undelivered ones.
    CatchUp {
        publication: PublicationId,
        account: AccountKey,
        since: i64,
    },
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("not a jobs-queue message: {0}")]
    BadMessage(String),
    #[error("backfill: {0}")]
    Backfill(#[from] BackfillError),
    #[error("catch-up: {0}")]
    CatchUp(#[from] CatchUpError),
}

impl JobError {
    fn is_transient(&self) -> bool {
        match self {
            JobError::BadMessage(_) => false,
            JobError::Backfill(e) => e.is_transient(),
            JobError::CatchUp(e) => e.is_transient(),
        }
    }
}

/// Asks for (the next slice of) an account's backfill, after `delay_seconds`.
pub async fn enqueue(queue: &dyn Queue, message: &JobMessage, delay_seconds: u32) -> Result<(), QueueError> {
    let body = serde_json::to_string(message).map_err(|e| QueueError::Unavailable(e.to_string()))?;
    queue.send(JOBS.name, &[OutMessage { body, delay_seconds }]).await
}

/// Time kept back from a Lambda invocation's deadline: the last page and its checkpoint.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);
/// SQS's longest message delay.
const MAX_DELAY: i64 = 900;

pub struct JobWorker {
    runner: Runner,
    /// Without one (no Piano client given), Piano imports fail with a message saying so.
    piano: Option<PianoRunner>,
    store: Arc<dyn Store>,
    stripe: Arc<dyn StripeApi>,
    queue: Arc<dyn Queue>,
    /// How long a slice runs when no deadline is given (`crm serve`).
    slice: Duration,
    /// Ends a slice early (after its page) when the process shuts down.
    shutdown: CancellationToken,
}

impl JobWorker {
    pub fn new(store: Arc<dyn Store>, stripe: Arc<dyn StripeApi>, queue: Arc<dyn Queue>, slice: Duration) -> Self {
        let runner = Runner::new(store.clone(), stripe.clone());
        Self { runner, piano: None, store, stripe, queue, slice, shutdown: CancellationToken::new() }
    }

    /// A worker over `state`'s store, Stripe and Piano clients and queues.
    pub fn for_state(state: &crate::api::AppState, slice: Duration) -> Self {
        Self::new(state.store.clone(), state.stripe.clone(), state.queue.clone(), slice)
            .with_piano(state.piano.clone(), state.config.piano_api_base.clone())
    }

    /// Runs Piano history imports with `piano` (`base_override`: `CRM_PIANO_API_BASE`).
    pub fn with_piano(mut self, piano: Arc<dyn crate::piano::client::PianoApi>, base_override: Option<String>) -> Self {
        self.piano = Some(PianoRunner::new(self.store.clone(), piano, base_override));
        self
    }

    /// Slices stop after their current page once `shutdown` is cancelled; the job is resumed by the
    /// message they queue (kept when the queue is SQS).
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Runs a batch's jobs (backfill slices until `deadline` (a Lambda invocation's, less `DEADLINE_MARGIN`, and catch-ups); answers the ids of messages to retry.
    pub async fn handle_until(&self, batch: &[Received], deadline: Instant) -> Vec<String> {
        each_concurrently(batch, |m| self.process_logged(m, deadline)).await
    }

    async fn process_logged(&self, message: &Received, deadline: Instant) -> bool {
        match self.process(&message.body, deadline).await {
            Ok(()) => true,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, attempt = message.receive_count, "job failed; will retry");
                false
            }
            Err(e) => {
                // Not retried: a backfill job records why it failed, a catch-up's cause is logged (and
                // `crm catch-up` tells the operator), and a bad message has nothing to retry.
                tracing::error!(error = %e, "job cannot run");
                true
            }
        }
    }

    async fn process(&self, body: &str, deadline: Instant) -> Result<(), JobError> {
        let message: JobMessage = serde_json::from_str(body).map_err(|e| JobError::BadMessage(e.to_string()))?;
        match &message {
            JobMessage::Backfill { publication, account } => {
                Ok(self.backfill_slice(&message, publication, Some(account), deadline).await?)
            }
            JobMessage::PianoBackfill { publication } => {
                Ok(self.backfill_slice(&message, publication, None, deadline).await?)
            }
            JobMessage::CatchUp { publication, account, since } => {
                let request = catch_up::Request {
                    publication: publication.clone(),
                    account: account.clone(),
                    since: Some(*since),
                    dry_run: false,
                };
                let report =
                    catch_up::run(self.store.as_ref(), self.stripe.clone(), self.queue.as_ref(), &request, now_epoch())
                        .await?;
                tracing::info!(%publication, %account, ?report, "automatic catch-up ran");
                Ok(())
            }
        }
    }

    /// A slice of a Stripe account's backfill, or (no account) of the Piano history import.
    async fn backfill_slice(
        &self,
        message: &JobMessage,
        publication: &PublicationId,
        account: Option<&AccountKey>,
        deadline: Instant,
    ) -> Result<(), BackfillError> {
        let stop = Stop::at(deadline).or_on(self.shutdown.clone());
        let ran = match (account, &self.piano) {
            (Some(account), _) => self.runner.run(publication, account, &stop, &|_| {}).await,
            (None, Some(piano)) => piano.run(publication, &stop, &|_| {}).await,
            (None, None) => Err(BackfillError::NoPiano(format!("{publication} (this worker has no Piano client)"))),
        };
        let job = match ran {
            Ok(job) => job,
            // Someone else runs it: look again once their lease is out, in case they stopped.
            Err(BackfillError::Busy { until }) => {
                let delay = (until - now_epoch() + 1).clamp(1, MAX_DELAY) as u32;
                return Ok(enqueue(self.queue.as_ref(), message, delay).await?);
            }
            Err(e) => return Err(e),
        };
        tracing::info!(job = %job.id, state = ?job.state, objects = job.objects(), "backfill slice ran");
        if job.state == JobState::Running {
            enqueue(self.queue.as_ref(), message, 0).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl BatchHandler for JobWorker {
    async fn handle(&self, batch: &[Received]) -> Vec<String> {
        self.handle_until(batch, Instant::now() + self.slice).await
    }
}
