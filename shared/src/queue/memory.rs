//! In-process adapter of the `Queue` port for `crm serve`: the same visibility-timeout and
//! dead-letter semantics as SQS, kept in memory (messages do not survive a restart; the
//! webhook senders retry anything that was not acknowledged). Each queue holds at most
//! `MAX_BYTES` of message bodies, or what `with_max_bytes` sets: past that, sends are refused
//! (the webhooks answer 503 and their senders retry later) instead of the process growing until
//! the machine runs out of memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{OutMessage, Queue, QueueDef, QueueError, Received, check_sizes};

struct Message {
    id: String,
    body: String,
    receive_count: u32,
    visible_at: Instant,
}

struct State {
    waiting: VecDeque<Message>,
    /// Received and not yet deleted, by receipt.
    in_flight: HashMap<String, Message>,
    /// No in-flight message is visible again before this: receives look through `in_flight` only
    /// once it has passed. A lower bound (deleting a message leaves it), made exact by each look.
    /// `None`: nothing in flight.
    in_flight_due: Option<Instant>,
    /// The bodies of `waiting` and `in_flight` together.
    bytes: usize,
}

impl State {
    fn hold(&mut self, receipt: String, message: Message) {
        self.in_flight_due = Some(self.in_flight_due.map_or(message.visible_at, |due| due.min(message.visible_at)));
        self.in_flight.insert(receipt, message);
    }

    /// Returns in-flight messages whose visibility has expired to `waiting`, and answers those that
    /// have been received `redrive_after` times, taken out for the dead-letter queue.
    fn expire(&mut self, now: Instant, redrive_after: Option<u32>) -> Vec<Message> {
        if self.in_flight_due.is_none_or(|due| due > now) {
            return Vec::new();
        }
        let mut dead = Vec::new();
        let expired: Vec<Message> = self.in_flight.extract_if(|_, m| m.visible_at <= now).map(|(_, m)| m).collect();
        for message in expired {
            match redrive_after {
                Some(max) if message.receive_count >= max => {
                    self.bytes -= message.body.len();
                    dead.push(message);
                }
                _ => self.waiting.push_back(message),
            }
        }
        self.in_flight_due = self.in_flight.values().map(|m| m.visible_at).min();
        dead
    }
}

/// What one queue may hold, in message bytes, before sends are refused: some 150,000 Stripe events
/// of the usual 3.5 KB, minutes of backlog at thousands of events a second.
pub const MAX_BYTES: usize = 512 << 20;

struct MemQueue {
    visibility: Duration,
    max_bytes: usize,
    /// Receives allowed before redrive, with the dead-letter queue's name.
    redrive: Option<(u32, &'static str)>,
    /// A blocking lock, held for a few list operations and never across an await: a webhook's send
    /// must not wait for a consumer task to be scheduled, as an async mutex's hand-over would have it.
    state: Mutex<State>,
    arrived: Notify,
}

impl MemQueue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone)]
pub struct MemoryQueue {
    queues: Arc<HashMap<&'static str, MemQueue>>,
}

impl MemoryQueue {
    pub fn new(defs: &[QueueDef]) -> Self {
        Self::with_max_bytes(defs, MAX_BYTES)
    }

    /// Queues that each hold at most `max_bytes` of message bodies.
    pub fn with_max_bytes(defs: &[QueueDef], max_bytes: usize) -> Self {
        let mut queues = HashMap::new();
        let make = |visibility_secs: u32, redrive| MemQueue {
            visibility: Duration::from_secs(u64::from(visibility_secs)),
            max_bytes,
            redrive,
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                in_flight: HashMap::new(),
                in_flight_due: None,
                bytes: 0,
            }),
            arrived: Notify::new(),
        };
        for def in defs {
            queues.insert(def.name, make(def.visibility_timeout_secs, Some((def.max_receive_count, def.dlq_name))));
            queues.insert(def.dlq_name, make(def.visibility_timeout_secs, None));
        }
        Self { queues: Arc::new(queues) }
    }

    fn queue(&self, name: &str) -> Result<&MemQueue, QueueError> {
        self.queues.get(name).ok_or_else(|| QueueError::UnknownQueue(name.to_owned()))
    }

    /// Returns expired in-flight messages to the queue, or to the dead-letter queue when they
    /// have been received `max_receive_count` times.
    fn reclaim(&self, q: &MemQueue, now: Instant) -> Result<(), QueueError> {
        let dead = q.state().expire(now, q.redrive.map(|(max, _)| max));
        if let Some((_, dlq)) = q.redrive
            && !dead.is_empty()
        {
            // A dead letter is never refused, whatever the dead-letter queue holds.
            let dlq = self.queue(dlq)?;
            let mut state = dlq.state();
            for mut message in dead {
                message.receive_count = 0;
                message.visible_at = now;
                state.bytes += message.body.len();
                state.waiting.push_back(message);
            }
            drop(state);
            dlq.arrived.notify_one();
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, queue: &str, messages: &[OutMessage]) -> Result<(), QueueError> {
        check_sizes(messages)?;
        let q = self.queue(queue)?;
        let now = Instant::now();
        {
            let mut state = q.state();
            let adding: usize = messages.iter().map(|m| m.body.len()).sum();
            if state.bytes + adding > q.max_bytes {
                return Err(QueueError::Unavailable(format!(
                    "the in-process queue {queue} is full ({} MiB waiting or in flight)",
                    state.bytes >> 20
                )));
            }
            state.bytes += adding;
            for m in messages {
                state.waiting.push_back(Message {
                    id: ulid::Ulid::new().to_string(),
                    body: m.body.clone(),
                    receive_count: 0,
                    visible_at: now + Duration::from_secs(u64::from(m.delay_seconds)),
                });
            }
        }
        q.arrived.notify_one();
        Ok(())
    }

    async fn receive(&self, queue: &str, max: u32, wait: Duration) -> Result<Vec<Received>, QueueError> {
        let q = self.queue(queue)?;
        let deadline = Instant::now() + wait;
        loop {
            let now = Instant::now();
            self.reclaim(q, now)?;
            let notified = q.arrived.notified();
            let mut next_due = None;
            {
                let mut state = q.state();
                let mut out = Vec::new();
                let mut index = 0;
                while index < state.waiting.len() && out.len() < max.clamp(1, 10) as usize {
                    if state.waiting[index].visible_at > now {
                        next_due = Some(next_due.map_or(state.waiting[index].visible_at, |d: Instant| {
                            d.min(state.waiting[index].visible_at)
                        }));
                        index += 1;
                        continue;
                    }
                    let Some(mut message) = state.waiting.remove(index) else {
                        break;
                    };
                    message.receive_count += 1;
                    message.visible_at = now + q.visibility;
                    let receipt = ulid::Ulid::new().to_string();
                    out.push(Received {
                        id: message.id.clone(),
                        receipt: receipt.clone(),
                        body: message.body.clone(),
                        receive_count: message.receive_count,
                    });
                    state.hold(receipt, message);
                }
                if !out.is_empty() {
                    return Ok(out);
                }
                if let Some(due) = state.in_flight_due {
                    next_due = Some(next_due.map_or(due, |d: Instant| d.min(due)));
                }
            }
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = next_due.map_or(deadline, |d| d.min(deadline));
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    async fn delete(&self, queue: &str, receipts: &[String]) -> Result<(), QueueError> {
        let q = self.queue(queue)?;
        let mut state = q.state();
        for r in receipts {
            if let Some(message) = state.in_flight.remove(r) {
                state.bytes -= message.body.len();
            }
        }
        Ok(())
    }

    async fn retry_later(&self, queue: &str, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let q = self.queue(queue)?;
        {
            let mut state = q.state();
            if let Some(message) = state.in_flight.remove(receipt) {
                let message = Message { visible_at: Instant::now() + delay, ..message };
                state.hold(receipt.to_owned(), message);
            }
        }
        q.arrived.notify_one();
        Ok(())
    }

    async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        let q = self.queue(queue)?;
        self.reclaim(q, Instant::now())?;
        Ok(q.state().waiting.len() as u64)
    }

    async fn peek(&self, queue: &str, max: u32) -> Result<Vec<Received>, QueueError> {
        let q = self.queue(queue)?;
        let now = Instant::now();
        self.reclaim(q, now)?;
        let state = q.state();
        Ok(state
            .waiting
            .iter()
            .filter(|m| m.visible_at <= now)
            .take(max as usize)
            .map(|m| Received {
                id: m.id.clone(),
                receipt: String::new(),
                body: m.body.clone(),
                receive_count: m.receive_count,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::EVENTS;

    fn message(body: &str) -> OutMessage {
        OutMessage { body: body.into(), delay_seconds: 0 }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_sends_until_its_messages_are_deleted() {
        let queue = MemoryQueue::with_max_bytes(&[EVENTS], 10);
        let name = EVENTS.name;
        queue.send(name, &[message("12345"), message("12345")]).await.expect("10 bytes fit");
        assert!(matches!(queue.send(name, &[message("1")]).await, Err(QueueError::Unavailable(_))));

        // A received message still takes its room until it is deleted.
        let received = queue.receive(name, 1, Duration::ZERO).await.expect("receive");
        assert_eq!(received.len(), 1);
        assert!(matches!(queue.send(name, &[message("1")]).await, Err(QueueError::Unavailable(_))));
        queue.delete(name, &[received[0].receipt.clone()]).await.expect("delete");
        queue.send(name, &[message("12345")]).await.expect("room again");
        assert!(matches!(queue.send(name, &[message("1")]).await, Err(QueueError::Unavailable(_))));
        assert_eq!(queue.depth(name).await.expect("depth"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_returns_when_its_own_visibility_ends_after_an_earlier_one_was_deleted() {
        let queue = MemoryQueue::new(&[QueueDef { visibility_timeout_secs: 10, ..EVENTS }]);
        let name = EVENTS.name;
        queue.send(name, &[message("first")]).await.expect("send");
        let first = queue.receive(name, 1, Duration::ZERO).await.expect("receive");
        tokio::time::advance(Duration::from_secs(5)).await;
        queue.send(name, &[message("second")]).await.expect("send");
        let second = queue.receive(name, 1, Duration::ZERO).await.expect("receive");
        assert_eq!((first[0].body.as_str(), second[0].body.as_str()), ("first", "second"));
        queue.delete(name, &[first[0].receipt.clone()]).await.expect("delete");

        // The deleted message's visibility ends first: nothing is due then.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(queue.receive(name, 10, Duration::ZERO).await.expect("receive").is_empty());
        // A waiting receive wakes when the second's ends, 15 s after the start.
        let started = Instant::now();
        let again = queue.receive(name, 10, Duration::from_secs(60)).await.expect("receive");
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].body.as_str(), again[0].receive_count), ("second", 2));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(4) && waited < Duration::from_secs(5), "{waited:?}");
    }
}
