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
    dlq_url_env: "UNUSED",
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

/// Records the bodies of every batch it is given.
#[derive(Default)]
struct Batches {
    seen: std::sync::Mutex<Vec<Vec<String>>>,
}

impl Batches {
    fn messages(&self) -> usize {
        self.seen.lock().unwrap().iter().map(Vec::len).sum()
    }

    async fn wait_for(&self, messages: usize) {
        for _ in 0..100 {
            if self.messages() >= messages {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[async_trait]
impl BatchHandler for Batches {
    async fn handle(&self, batch: &[Received]) -> Vec<String> {
        self.seen.lock().unwrap().push(batch.iter().map(|m| m.body.clone()).collect());
        Vec::new()
    }
}

async fn a_batched_worker_waits_for_its_batch_to_fill(queue: Q) {
    let handler = Arc::new(Batches::default());
    let stop = CancellationToken::new();
    // Within FAST's 1 s visibility timeout, so a batch is handled before its first message returns.
    let window = Duration::from_millis(500);
    let task = tokio::spawn(worker::run_batched(queue.clone(), "fast", handler.clone(), stop.clone(), window));
    // Sent one at a time, as webhooks send them: an idle worker without a window takes each as it
    // comes (13 batches). Ten make one full batch; three more, a short one once the window has passed.
    for round in [0..10, 10..13] {
        let last = round.end;
        for i in round {
            queue.send("fast", &[OutMessage::new(format!("m-{i}"))]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handler.wait_for(last).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("worker stops on shutdown").unwrap();
    let batches = handler.seen.lock().unwrap().clone();
    let bodies: BTreeSet<&String> = batches.iter().flatten().collect();
    assert_eq!((handler.messages(), bodies.len()), (13, 13), "each message handled once: {batches:?}");
    assert!(batches.len() <= 4, "13 messages sent one by one came in {} batches: {batches:?}", batches.len());
    assert_eq!(queue.depth("fast").await.unwrap(), 0);
}

/// Puts `bodies` in the dead-letter queue of FAST the way they get there in production: received
/// `max_receive_count` times without an acknowledgement.
async fn dead_letter(queue: &Q, bodies: &[&str]) {
    let out: Vec<OutMessage> = bodies.iter().map(|b| OutMessage::new(*b)).collect();
    queue.send("fast", &out).await.unwrap();
    for _ in 0..FAST.max_receive_count {
        let got = drain(queue, "fast", bodies.len()).await;
        assert_eq!(got.len(), bodies.len());
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert!(queue.receive("fast", 10, Duration::from_secs(1)).await.unwrap().is_empty());
    for _ in 0..20 {
        if queue.depth("fast-dlq").await.unwrap() == bodies.len() as u64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("messages did not reach the dead-letter queue");
}

async fn peek_shows_messages_and_leaves_them(queue: Q) {
    let bodies = ["a", "b", "c"];
    queue.send("fast-dlq", &bodies.map(OutMessage::new)).await.unwrap();
    let first = queue.peek("fast-dlq", 2).await.unwrap();
    assert_eq!(first.len(), 2, "at most `max`");
    let all = queue.peek("fast-dlq", 10).await.unwrap();
    let seen: BTreeSet<String> = all.iter().map(|m| m.body.clone()).collect();
    assert_eq!(seen, bodies.iter().map(|b| (*b).to_owned()).collect(), "distinct messages, all of them");
    assert!(all.iter().all(|m| !m.id.is_empty()));
    assert_eq!(queue.depth("fast-dlq").await.unwrap(), 3, "peeking removes nothing");
    // Still visible: a consumer gets them at once.
    let got = drain(&queue, "fast-dlq", 3).await;
    assert_eq!(got.len(), 3);
    assert!(queue.peek("fast", 10).await.unwrap().is_empty());
    assert!(matches!(queue.peek("nope", 1).await, Err(QueueError::UnknownQueue(_))));
}

async fn redrive_moves_dead_letters_back(queue: Q) {
    dead_letter(&queue, &["one", "two", "three"]).await;
    assert_eq!(queue.depth("fast").await.unwrap(), 0);
    assert_eq!(queue.redrive(&FAST, 2).await.unwrap(), 2, "at most `max`");
    assert_eq!(queue.depth("fast-dlq").await.unwrap(), 1);
    assert_eq!(queue.redrive(&FAST, 100).await.unwrap(), 1, "the rest");
    assert_eq!(queue.depth("fast-dlq").await.unwrap(), 0);
    assert_eq!(queue.redrive(&FAST, 100).await.unwrap(), 0, "nothing left");
    // Back on the queue as new deliveries, bodies unchanged.
    let back = drain(&queue, "fast", 3).await;
    let bodies: BTreeSet<String> = back.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, ["one", "three", "two"].map(String::from).into_iter().collect());
    assert!(back.iter().all(|m| m.receive_count == 1), "{back:?}");
}

async fn redrive_to_a_missing_queue_keeps_the_dead_letters(queue: Q) {
    queue.send("fast-dlq", &[OutMessage::new("kept")]).await.unwrap();
    let broken = QueueDef { name: "nope", ..FAST };
    let err = queue.redrive(&broken, 10).await;
    assert!(err.is_err(), "{err:?}");
    assert_eq!(queue.depth("fast-dlq").await.unwrap(), 1);
    let got = queue.receive("fast-dlq", 10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got.len(), 1, "made visible again at once");
    assert_eq!(got[0].body, "kept");
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
    a_batched_worker_waits_for_its_batch_to_fill,
    peek_shows_messages_and_leaves_them,
    redrive_moves_dead_letters_back,
    redrive_to_a_missing_queue_keeps_the_dead_letters,
);
