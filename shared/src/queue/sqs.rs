//! SQS adapter of the `Queue` port. Sends use SendMessageBatch (10 entries and 1 MiB a call) and
//! retry only the entries SQS reports as failed, so a partial failure never re-sends the rest.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};

use super::{MAX_MESSAGE_BYTES, OutMessage, Queue, QueueDef, QueueError, Received, check_sizes};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    urls: HashMap<String, String>,
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// Attempts per batch entry before it is reported as not queued.
const SEND_ATTEMPTS: usize = 3;

impl SqsQueue {
    /// `urls`: logical queue name (e.g. `events`, `events-dlq`) → queue URL.
    pub fn new(client: Client, urls: HashMap<String, String>) -> Self {
        Self { client, urls }
    }

    /// Looks the URLs of `defs` (and their dead-letter queues) up by their physical names `{prefix}-{name}`.
    pub async fn discover(client: Client, prefix: &str, defs: &[QueueDef]) -> Result<Self, QueueError> {
        let mut urls = HashMap::new();
        for name in defs.iter().flat_map(|d| [d.name, d.dlq_name]) {
            let physical = format!("{prefix}-{name}");
            let out = client.get_queue_url().queue_name(&physical).send().await.map_err(|e| {
                unavailable(format!("queue {physical}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
            })?;
            let url = out.queue_url.ok_or_else(|| unavailable(format!("queue {physical} has no URL")))?;
            urls.insert(name.to_owned(), url);
        }
        Ok(Self { client, urls })
    }

    fn url(&self, queue: &str) -> Result<&str, QueueError> {
        self.urls.get(queue).map(String::as_str).ok_or_else(|| QueueError::UnknownQueue(queue.to_owned()))
    }

    /// A cheap call that opens the connection during init rather than in the first request.
    pub async fn warm_up(&self, queue: &str) -> Result<(), QueueError> {
        self.depth(queue).await.map(|_| ())
    }
}

impl SqsQueue {
    /// ReceiveMessage; `visibility` overrides the queue's visibility timeout.
    async fn receive_with(
        &self,
        queue: &str,
        max: u32,
        wait: Duration,
        visibility: Option<i32>,
    ) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(self.url(queue)?)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .set_visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Some(Received {
                    id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect())
    }
}

/// Splits indexes of `messages` into batches of at most 10 entries and `MAX_MESSAGE_BYTES` in all.
fn batches(messages: &[OutMessage], pending: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &i in pending {
        let size = messages[i].body.len();
        match out.last_mut() {
            Some(batch) if batch.len() < 10 && bytes + size <= MAX_MESSAGE_BYTES => {
                batch.push(i);
                bytes += size;
            }
            _ => {
                out.push(vec![i]);
                bytes = size;
            }
        }
    }
    out
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: &str, messages: &[OutMessage]) -> Result<(), QueueError> {
        check_sizes(messages)?;
        let url = self.url(queue)?;
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        for attempt in 0..SEND_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let mut failed = Vec::new();
            for batch in batches(messages, &pending) {
                let entries = batch
                    .iter()
                    .map(|&i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(&messages[i].body)
                            .delay_seconds(i32::try_from(messages[i].delay_seconds.min(900)).unwrap_or(900))
                            .build()
                            .map_err(unavailable)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                match self.client.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await {
                    Ok(out) => failed.extend(out.failed.iter().filter_map(|f| f.id.parse::<usize>().ok())),
                    Err(e) => {
                        tracing::warn!(queue, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SendMessageBatch failed");
                        failed.extend(batch);
                    }
                }
            }
            pending = failed;
        }
        if pending.is_empty() { Ok(()) } else { Err(QueueError::Partial { failed: pending }) }
    }

    async fn receive(&self, queue: &str, max: u32, wait: Duration) -> Result<Vec<Received>, QueueError> {
        self.receive_with(queue, max, wait, None).await
    }

    async fn delete(&self, queue: &str, receipts: &[String]) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                        .map_err(unavailable)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
            if !out.failed.is_empty() {
                // The messages come back after their visibility timeout; processing is idempotent.
                tracing::warn!(queue, failed = out.failed.len(), "some acknowledgements were not accepted");
            }
        }
        Ok(())
    }

    async fn retry_later(&self, queue: &str, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(self.url(queue)?)
            .receipt_handle(receipt)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        Ok(())
    }

    async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(self.url(queue)?)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        let attrs = out.attributes.unwrap_or_default();
        let count = |name: &QueueAttributeName| attrs.get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(count(&QueueAttributeName::ApproximateNumberOfMessages)
            + count(&QueueAttributeName::ApproximateNumberOfMessagesDelayed))
    }

    /// Receives (hiding what it got for a while, so a second receive brings other messages),
    /// then makes everything it got visible again.
    async fn peek(&self, queue: &str, max: u32) -> Result<Vec<Received>, QueueError> {
        let mut out: Vec<Received> = Vec::new();
        let mut result = Ok(());
        while out.len() < max as usize {
            let want = (max as usize - out.len()).min(10) as u32;
            match self.receive_with(queue, want, Duration::ZERO, Some(PEEK_HIDE_SECS)).await {
                Ok(batch) => {
                    let before = out.len();
                    for m in batch {
                        // Seen twice (its hiding lapsed): only the newest receipt is valid.
                        match out.iter_mut().find(|o| o.id == m.id) {
                            Some(seen) => *seen = m,
                            None => out.push(m),
                        }
                    }
                    if out.len() == before {
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        for m in &out {
            if let Err(e) = self.retry_later(queue, &m.receipt, Duration::ZERO).await {
                tracing::warn!(queue, error = %e, "a peeked message stays hidden until its timeout");
            }
        }
        result.map(|()| out)
    }
}

/// How long a peek hides the messages it has seen while it looks for more.
const PEEK_HIDE_SECS: i32 = 30;

/// Creates `{prefix}-{name}` and its dead-letter queue with the redrive policy of `def`;
/// answers (logical name, URL) pairs. Existing queues are reused.
pub async fn create_queues(client: &Client, prefix: &str, def: &QueueDef) -> Result<Vec<(String, String)>, QueueError> {
    let dlq = client
        .create_queue()
        .queue_name(format!("{prefix}-{}", def.dlq_name))
        .attributes(QueueAttributeName::MessageRetentionPeriod, super::DLQ_RETENTION_SECS.to_string())
        .send()
        .await
        .map_err(|e| unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let dlq_url = dlq.queue_url.ok_or_else(|| unavailable("dead-letter queue has no URL"))?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| unavailable("dead-letter queue has no ARN"))?;
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": def.max_receive_count}).to_string();
    let main = client
        .create_queue()
        .queue_name(format!("{prefix}-{}", def.name))
        .attributes(QueueAttributeName::VisibilityTimeout, def.visibility_timeout_secs.to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .map_err(|e| unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let main_url = main.queue_url.ok_or_else(|| unavailable("queue has no URL"))?;
    Ok(vec![(def.name.to_owned(), main_url), (def.dlq_name.to_owned(), dlq_url)])
}
