//! The `Queue` contract: every test runs against the in-process adapter and against the SQS
//! adapter on the emulator (fresh queues per test).

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use shared::queue::worker::{self, BatchHandler};
use shared::queue::{MAX_MESSAGE_BYTES, OutMessage, Queue, QueueDef, QueueError, Received};
use tokio_util::sync::CancellationToken;

/// Short timeouts so redelivery and redrive happen within the test.
const FAST: QueueDef = QueueDef {
    name: "fast",
    dlq_name: "fast-dlq",
    visibility_timeout_secs: 1,
    max_receive_count: 2,
    url_env: "UNUSED",
};

type Q = Arc<dyn Queue>;

async fn drain(queue: &Q, name: &str, expect: usize) -> Vec<Received> {
    let mut out = Vec::new();
    for _ in 0..20 {
        if out.len() >= expect {
            break;
        }
        out.extend(queue.receive(name, 10, Duration::from_secs(1)).await.unwrap());
    }
    out
}

async fn batches_of_any_size_are_sent_and_received(queue: Q) {
    let sent: Vec<OutMessage> =
        (0..25).map(|i| OutMessage::new(format!(r#"{{"n":{i},"text":"é, \"q\"\n"}}"#))).collect();
    queue.send("fast", &sent).await.unwrap();
    let received = drain(&queue, "fast", 25).await;
    let bodies: BTreeSet<String> = received.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, sent.iter().map(|m| m.body.clone()).collect());
    assert!(received.iter().all(|m| m.receive_count == 1));
    let receipts: Vec<String> = received.iter().map(|m| m.receipt.clone()).collect();
    queue.delete("fast", &receipts).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(queue.receive("fast", 10, Duration::ZERO).await.unwrap().is_empty(), "deleted messages never return");
    assert_eq!(queue.depth("fast").await.unwrap(), 0);
}

async fn unacknowledged_messages_return_then_go_to_the_dead_letter_queue(queue: Q) {
    queue.send("fast", &[OutMessage::new("poison")]).await.unwrap();
    let first = drain(&queue, "fast", 1).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    // Not deleted: visible again after the 1 s visibility timeout, with its count raised.
    let second = drain(&queue, "fast", 1).await;
    assert_eq!(second.len(), 1, "message must be redelivered");
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].receive_count, 2);
    // Received max_receive_count times: the next receive on the queue moves it to the
    // dead-letter queue instead of delivering it (as SQS does).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(queue.receive("fast", 10, Duration::from_secs(1)).await.unwrap().is_empty());
    let dead = drain(&queue, "fast-dlq", 1).await;
    assert_eq!(dead.len(), 1, "message must reach the dead-letter queue");
    assert_eq!(dead[0].body, "poison");
}

async fn retry_later_sets_the_next_attempt(queue: Q) {
    queue.send("fast", &[OutMessage::new("later")]).await.unwrap();
    let got = drain(&queue, "fast", 1).await;
    queue.retry_later("fast", &got[0].receipt, Duration::from_secs(0)).await.unwrap();
    let again = drain(&queue, "fast", 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, "later");
    queue.delete("fast", &[again[0].receipt.clone()]).await.unwrap();
}

async fn delayed_messages_wait(queue: Q) {
    queue.send("fast", &[OutMessage { body: "delayed".into(), delay_seconds: 2 }]).await.unwrap();
    assert!(queue.receive("fast", 10, Duration::ZERO).await.unwrap().is_empty(), "not visible before its delay");
    assert_eq!(queue.depth("fast").await.unwrap(), 1, "a delayed message counts as waiting");
    let got = drain(&queue, "fast", 1).await;
    assert_eq!(got.len(), 1);
}

async fn bad_sends_are_refused(queue: Q) {
    let unknown = queue.send("nope", &[OutMessage::new("x")]).await;
    assert!(matches!(unknown, Err(QueueError::UnknownQueue(_))), "{unknown:?}");
    let huge = queue.send("fast", &[OutMessage::new("x".repeat(MAX_MESSAGE_BYTES + 1))]).await;
    assert!(matches!(huge, Err(QueueError::TooLarge(_))), "{huge:?}");
}

/// Fails every message whose body is "bad"; counts what it saw.
struct FailBad {
    seen: AtomicUsize,
}

#[async_trait]
impl BatchHandler for FailBad {
    async fn handle(&self, batch: &[Received]) -> Vec<String> {
        self.seen.fetch_add(batch.len(), Ordering::SeqCst);
        batch.iter().filter(|m| m.body == "bad").map(|m| m.id.clone()).collect()
    }
}

async fn worker_acknowledges_successes_and_retries_failures(queue: Q) {
    let mut messages: Vec<OutMessage> = (0..12).map(|i| OutMessage::new(format!("ok-{i}"))).collect();
    messages.push(OutMessage::new("bad"));
    queue.send("fast", &messages).await.unwrap();
    let handler = Arc::new(FailBad { seen: AtomicUsize::new(0) });
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker::run(queue.clone(), "fast", handler.clone(), stop.clone()));
    // The bad message is retried (backoff 2 s after its first failure) and then dead-lettered.
    let dead = drain(&queue, "fast-dlq", 1).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("worker stops on shutdown").unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "bad");
    assert_eq!(handler.seen.load(Ordering::SeqCst), 14, "12 successes once, the failure twice");
    assert_eq!(queue.depth("fast").await.unwrap(), 0);
}

macro_rules! queue_contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::memory_queue(&[super::FAST])).await;
                }
            )*
        }
        mod sqs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::sqs_queue(&[super::FAST]).await).await;
                }
            )*
        }
    };
}

queue_contract!(
    batches_of_any_size_are_sent_and_received,
    unacknowledged_messages_return_then_go_to_the_dead_letter_queue,
    retry_later_sets_the_next_attempt,
    delayed_messages_wait,
    bad_sends_are_refused,
    worker_acknowledges_successes_and_retries_failures,
);
