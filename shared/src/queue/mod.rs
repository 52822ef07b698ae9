//! The `Queue` port: SQS semantics (at-least-once, visibility timeout, redrive to a dead-letter
//! queue after `max_receive_count` receives). Adapters: `sqs` (AWS SQS) and `memory` (in-process,
//! for `crm serve`); `shared/tests/queue_contract.rs` runs the same suite against both.

pub mod memory;
pub mod sqs;
pub mod worker;

use std::time::Duration;

use async_trait::async_trait;

/// A queue of the product, with the dead-letter queue its failures end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueDef {
    /// Logical name; the physical SQS name is `{prefix}-{name}`.
    pub name: &'static str,
    pub dlq_name: &'static str,
    /// At least 6 × the consumer Lambda's timeout, as AWS recommends.
    pub visibility_timeout_secs: u32,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// Environment variable holding the queue URL for a Lambda function.
    pub url_env: &'static str,
    /// Environment variable holding the dead-letter queue's URL (for a function reading its depth).
    pub dlq_url_env: &'static str,
}

/// Stripe and Piano events waiting to be applied by `webhook-worker`.
pub const EVENTS: QueueDef = QueueDef {
    name: "events",
    dlq_name: "events-dlq",
    visibility_timeout_secs: 180,
    max_receive_count: 5,
    url_env: "CRM_EVENTS_QUEUE_URL",
    dlq_url_env: "CRM_EVENTS_DLQ_URL",
};

/// Piano webhooks to replay to a publication's legacy endpoints, one message per endpoint, so each
/// retries on its own; `piano-forwarder` consumes it (timeout 20 s × 6 ≤ 120 s).
pub const FORWARD: QueueDef = QueueDef {
    name: "forward",
    dlq_name: "forward-dlq",
    visibility_timeout_secs: 120,
    max_receive_count: 8,
    url_env: "CRM_FORWARD_QUEUE_URL",
    dlq_url_env: "CRM_FORWARD_DLQ_URL",
};

/// Long-running jobs (backfills), one message per slice of work: the `backfill` Lambda runs a slice
/// up to its time limit and queues the next (timeout 900 s × 6).
pub const JOBS: QueueDef = QueueDef {
    name: "jobs",
    dlq_name: "jobs-dlq",
    visibility_timeout_secs: 5400,
    max_receive_count: 5,
    url_env: "CRM_JOBS_QUEUE_URL",
    dlq_url_env: "CRM_JOBS_DLQ_URL",
};

pub const ALL: &[QueueDef] = &[EVENTS, FORWARD, JOBS];

/// Dead-letter queues keep messages this long (the SQS maximum), to leave time for a redrive.
pub const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    pub body: String,
    pub delay_seconds: u32,
}

impl OutMessage {
    pub fn new(body: impl Into<String>) -> Self {
        Self { body: body.into(), delay_seconds: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    /// Handle for `delete` and `retry_later`; changes with every receive.
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Some messages of a batch were not accepted (indexes into the batch); the others were.
    #[error("{} of the batch's messages were not queued", failed.len())]
    Partial { failed: Vec<usize> },
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    #[error("message too large: {0} bytes")]
    TooLarge(usize),
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// The largest message body SQS accepts.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Queues every message, or reports which were not queued. Batches of any length are split as needed.
    async fn send(&self, queue: &str, messages: &[OutMessage]) -> Result<(), QueueError>;

    /// Up to `max` (≤ 10) visible messages, waiting up to `wait` (long polling) when there are none.
    async fn receive(&self, queue: &str, max: u32, wait: Duration) -> Result<Vec<Received>, QueueError>;

    /// Acknowledges processed messages.
    async fn delete(&self, queue: &str, receipts: &[String]) -> Result<(), QueueError>;

    /// Makes a received message visible again after `delay` (backoff before its next attempt).
    async fn retry_later(&self, queue: &str, receipt: &str, delay: Duration) -> Result<(), QueueError>;

    /// Approximate number of messages waiting (visible or delayed), as SQS reports it.
    async fn depth(&self, queue: &str) -> Result<u64, QueueError>;

    /// Up to `max` visible messages, left on the queue and visible (for an operator's look at a
    /// dead-letter queue); their `receipt`s are not for `delete` or `retry_later`. On SQS, looking is
    /// a receive: it raises the messages' receive counts.
    async fn peek(&self, queue: &str, max: u32) -> Result<Vec<Received>, QueueError>;

    /// Moves up to `max` messages from `def`'s dead-letter queue back to `def`'s queue: each is
    /// deleted from the dead-letter queue only once the queue has accepted it, so a failure leaves
    /// it where it was (or, at worst, in both). Answers how many moved; stops at the first send
    /// that fails, with an error that says how many had moved by then.
    async fn redrive(&self, def: &QueueDef, max: u64) -> Result<u64, QueueError> {
        let mut moved = 0u64;
        while moved < max {
            let want = u32::try_from((max - moved).min(10)).unwrap_or(10);
            let batch = self.receive(def.dlq_name, want, Duration::from_secs(1)).await?;
            if batch.is_empty() {
                break;
            }
            let out: Vec<OutMessage> = batch.iter().map(|m| OutMessage::new(m.body.clone())).collect();
            let (sent, failure) = match self.send(def.name, &out).await {
                Ok(()) => ((0..batch.len()).collect::<Vec<_>>(), None),
                Err(QueueError::Partial { failed }) => {
                    let n = failed.len();
                    let sent = (0..batch.len()).filter(|i| !failed.contains(i)).collect();
                    (sent, Some((failed, format!("{n} of the batch were not queued"))))
                }
                Err(e) => ((Vec::new()), Some(((0..batch.len()).collect(), e.to_string()))),
            };
            let receipts: Vec<String> = sent.iter().map(|&i| batch[i].receipt.clone()).collect();
            self.delete(def.dlq_name, &receipts).await?;
            moved += receipts.len() as u64;
            if let Some((unsent, why)) = failure {
                // Visible again at once in the dead-letter queue, for the next attempt.
                for i in unsent {
                    let _ = self.retry_later(def.dlq_name, &batch[i].receipt, Duration::ZERO).await;
                }
                return Err(QueueError::Unavailable(format!(
                    "redrive of {} stopped after {moved} moved: {why}",
                    def.dlq_name
                )));
            }
        }
        Ok(moved)
    }
}

pub(crate) fn check_sizes(messages: &[OutMessage]) -> Result<(), QueueError> {
    match messages.iter().find(|m| m.body.len() > MAX_MESSAGE_BYTES) {
        Some(m) => Err(QueueError::TooLarge(m.body.len())),
        None => Ok(()),
    }
}
