//! Consumers of a queue. Under Lambda, SQS's event source mapping delivers batches and the
//! handler answers the failed message ids (partial batch response); under `crm serve`,
//! `run` polls the in-process queue the same way and acknowledges what succeeded.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{Queue, QueueError, Received};

#[async_trait]
pub trait BatchHandler: Send + Sync + 'static {
    /// Processes a batch; answers the ids of the messages that failed and must be retried.
    async fn handle(&self, batch: &[Received]) -> Vec<String>;
}

/// Under Lambda: one SQS batch through `handler`, answered as a partial batch response, so only the
/// failed messages return to the queue (the event source mapping must report batch item failures).
pub async fn lambda_batch(
    handler: &dyn BatchHandler,
    event: aws_lambda_events::event::sqs::SqsEvent,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    batch_response(handler.handle(&received(event)).await)
}

/// The messages of an SQS event.
pub fn received(event: aws_lambda_events::event::sqs::SqsEvent) -> Vec<Received> {
    event
        .records
        .into_iter()
        .map(|r| Received {
            receive_count: r.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
            id: r.message_id.unwrap_or_default(),
            receipt: r.receipt_handle.unwrap_or_default(),
            body: r.body.unwrap_or_default(),
        })
        .collect()
}

/// The partial batch response naming the messages that failed.
pub fn batch_response(failed: Vec<String>) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}

/// Processes every message of a batch at once (they are independent) and answers the ids of those
/// `process` reports as failed: what a `BatchHandler` returns.
pub async fn each_concurrently<'a, F, Fut>(batch: &'a [Received], process: F) -> Vec<String>
where
    F: Fn(&'a Received) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    use futures::{FutureExt, StreamExt};
    // Not `join_all`: below 30 futures it polls every unfinished one whenever any is woken, and each
    // poll enters that event's span; this polls only the one woken (docs/PERFORMANCE.md, "Load").
    let mut running: futures::stream::FuturesUnordered<_> =
        batch.iter().enumerate().map(|(i, message)| process(message).map(move |ok| (i, ok))).collect();
    let mut ok = vec![true; batch.len()];
    while let Some((i, done)) = running.next().await {
        ok[i] = done;
    }
    batch.iter().zip(ok).filter(|(_, ok)| !ok).map(|(m, _)| m.id.clone()).collect()
}

/// How long a failed message stays invisible before its next attempt under `run`: `base × 2^receive
/// count` (the exponent capped at 9), at most `max`. SQS counts visibility in whole seconds, so
/// sub-second delays round down. (Under Lambda the queue's visibility timeout sets the pace instead.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// 2 s, 4 s, 8 s, ... up to 5 minutes.
    pub const DEFAULT: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(300) };

    /// The delay after the attempt that was receive number `receive_count`.
    pub fn delay(&self, receive_count: u32) -> Duration {
        self.base.saturating_mul(1 << receive_count.min(9)).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Delay before a failed message's next attempt: exponential in its receive count, capped.
pub fn backoff(receive_count: u32) -> Duration {
    Backoff::DEFAULT.delay(receive_count)
}

/// Polls `queue` until `shutdown`; a batch already received is always finished (drained) first.
/// Failed messages come back after `Backoff::DEFAULT`.
pub async fn run(
    queue: Arc<dyn Queue>,
    name: &'static str,
    handler: Arc<dyn BatchHandler>,
    shutdown: CancellationToken,
) {
    run_with_backoff(queue, name, handler, shutdown, Backoff::DEFAULT).await;
}

/// `run` with the delay before each failed message's next attempt set by `backoff`.
pub async fn run_with_backoff(
    queue: Arc<dyn Queue>,
    name: &'static str,
    handler: Arc<dyn BatchHandler>,
    shutdown: CancellationToken,
    backoff: Backoff,
) {
    poll(queue, name, handler, shutdown, backoff, Duration::ZERO).await;
}

/// `run`, waiting up to `window` after a batch's first message for the batch to fill, as the SQS
/// event source mapping's batching window does: under a steady flow each batch then carries up to 10
/// messages instead of the one or two that arrived since the last, and its per-batch work (sync
/// health's write, a commit) is shared by all of them.
pub async fn run_batched(
    queue: Arc<dyn Queue>,
    name: &'static str,
    handler: Arc<dyn BatchHandler>,
    shutdown: CancellationToken,
    window: Duration,
) {
    poll(queue, name, handler, shutdown, Backoff::DEFAULT, window).await;
}

/// The most messages in one batch: SQS's limit for one receive.
const BATCH: usize = 10;

async fn poll(
    queue: Arc<dyn Queue>,
    name: &'static str,
    handler: Arc<dyn BatchHandler>,
    shutdown: CancellationToken,
    backoff: Backoff,
    window: Duration,
) {
    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => break,
            received = queue.receive(name, BATCH as u32, Duration::from_secs(1)) => received,
        };
        let mut batch = match batch {
            Ok(batch) if batch.is_empty() => continue,
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(queue = name, error = %e, "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let full_by = tokio::time::Instant::now() + window;
        while batch.len() < BATCH {
            let left = full_by.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match queue.receive(name, (BATCH - batch.len()) as u32, left).await {
                Ok(more) => batch.extend(more),
                // What was received is handled; the next receive reports the failure.
                Err(_) => break,
            }
        }
        let failed = handler.handle(&batch).await;
        settle(queue.as_ref(), name, &batch, &failed, backoff).await;
    }
    tracing::info!(queue = name, "worker stopped");
}

/// Acknowledges a handled batch: what succeeded is deleted, what `failed` comes back after `backoff`.
async fn settle(queue: &dyn Queue, name: &str, batch: &[Received], failed: &[String], backoff: Backoff) {
    let (retry, done): (Vec<&Received>, Vec<&Received>) = batch.iter().partition(|m| failed.contains(&m.id));
    let receipts: Vec<String> = done.iter().map(|m| m.receipt.clone()).collect();
    if let Err(e) = queue.delete(name, &receipts).await {
        tracing::warn!(queue = name, error = %e, "acknowledgement failed; messages will be redelivered");
    }
    for m in retry {
        if let Err(e) = queue.retry_later(name, &m.receipt, backoff.delay(m.receive_count)).await {
            tracing::warn!(queue = name, error = %e, "could not delay a failed message");
        }
    }
}

/// Handles messages of `name` until none is visible, a failed one again at once until the queue's
/// redrive moves it to the dead-letter queue: a one-off run over an in-process queue (`crm catch-up`
/// on the embedded store), where no worker polls.
pub async fn drain(queue: &dyn Queue, name: &str, handler: &dyn BatchHandler) -> Result<(), QueueError> {
    let at_once = Backoff { base: Duration::ZERO, max: Duration::ZERO };
    loop {
        let batch = queue.receive(name, BATCH as u32, Duration::ZERO).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let failed = handler.handle(&batch).await;
        settle(queue, name, &batch, &failed, at_once).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let secs = |rc| backoff(rc).as_secs();
        assert_eq!([secs(1), secs(2), secs(3), secs(8), secs(9), secs(20)], [2, 4, 8, 256, 300, 300]);
        let quick = Backoff { base: Duration::from_millis(500), max: Duration::from_secs(1) };
        assert_eq!([quick.delay(0), quick.delay(1), quick.delay(7)], [quick.base, quick.max, quick.max]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_runs_at_once_and_answers_its_failures_in_batch_order() {
        let batch: Vec<Received> = (0..6)
            .map(|i| Received { id: format!("m{i}"), receipt: String::new(), body: String::new(), receive_count: 1 })
            .collect();
        let started = tokio::time::Instant::now();
        // Later messages finish first; odd ones fail.
        let failed = each_concurrently(&batch, |m| async move {
            let i: u64 = m.id[1..].parse().expect("index");
            tokio::time::sleep(Duration::from_millis(100 * (6 - i))).await;
            i.is_multiple_of(2)
        })
        .await;
        assert_eq!(failed, ["m1", "m3", "m5"]);
        assert_eq!(started.elapsed(), Duration::from_millis(600), "together, not one after another");
    }
}
