//! Consumers of a queue. Under Lambda, SQS's event source mapping delivers batches and the
//! handler answers the failed message ids (partial batch response); under `crm serve`,
//! `run` polls the in-process queue the same way and acknowledges what succeeded.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{Queue, Received};

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
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
    let batch: Vec<Received> = event
        .records
        .into_iter()
        .map(|r| Received {
            receive_count: r.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
            id: r.message_id.unwrap_or_default(),
            receipt: r.receipt_handle.unwrap_or_default(),
            body: r.body.unwrap_or_default(),
        })
        .collect();
    let failed = handler.handle(&batch).await;
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
    let results = futures::future::join_all(batch.iter().map(process)).await;
    batch.iter().zip(results).filter(|(_, ok)| !ok).map(|(m, _)| m.id.clone()).collect()
}

/// Delay before a failed message's next attempt: exponential in its receive count, capped.
pub fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(receive_count.min(9)).min(300))
}

/// Polls `queue` until `shutdown`; a batch already received is always finished (drained) first.
pub async fn run(
    queue: Arc<dyn Queue>,
    name: &'static str,
    handler: Arc<dyn BatchHandler>,
    shutdown: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => break,
            received = queue.receive(name, 10, Duration::from_secs(1)) => received,
        };
        let batch = match batch {
            Ok(batch) if batch.is_empty() => continue,
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(queue = name, error = %e, "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let failed = handler.handle(&batch).await;
        let (retry, done): (Vec<&Received>, Vec<&Received>) = batch.iter().partition(|m| failed.contains(&m.id));
        let receipts: Vec<String> = done.iter().map(|m| m.receipt.clone()).collect();
        if let Err(e) = queue.delete(name, &receipts).await {
            tracing::warn!(queue = name, error = %e, "acknowledgement failed; messages will be redelivered");
        }
        for m in retry {
            if let Err(e) = queue.retry_later(name, &m.receipt, backoff(m.receive_count)).await {
                tracing::warn!(queue = name, error = %e, "could not delay a failed message");
            }
        }
    }
    tracing::info!(queue = name, "worker stopped");
}
