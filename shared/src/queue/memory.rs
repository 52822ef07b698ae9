//! In-process adapter of the `Queue` port for `crm serve`: the same visibility-timeout and
//! dead-letter semantics as SQS, kept in memory (messages do not survive a restart; the
//! webhook senders retry anything that was not acknowledged).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, Notify};
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
}

struct MemQueue {
    visibility: Duration,
    /// Receives allowed before redrive, with the dead-letter queue's name.
    redrive: Option<(u32, &'static str)>,
    state: Mutex<State>,
    arrived: Notify,
}

#[derive(Clone)]
pub struct MemoryQueue {
    queues: Arc<HashMap<&'static str, MemQueue>>,
}

impl MemoryQueue {
    pub fn new(defs: &[QueueDef]) -> Self {
        let mut queues = HashMap::new();
        let make = |visibility_secs: u32, redrive| MemQueue {
            visibility: Duration::from_secs(u64::from(visibility_secs)),
            redrive,
            state: Mutex::new(State { waiting: VecDeque::new(), in_flight: HashMap::new() }),
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

    async fn push(&self, name: &str, message: Message) -> Result<(), QueueError> {
        let q = self.queue(name)?;
        q.state.lock().await.waiting.push_back(message);
        q.arrived.notify_one();
        Ok(())
    }

    /// Returns expired in-flight messages to the queue, or to the dead-letter queue when they
    /// have been received `max_receive_count` times.
    async fn reclaim(&self, q: &MemQueue, now: Instant) -> Result<(), QueueError> {
        let mut dead = Vec::new();
        {
            let mut state = q.state.lock().await;
            let expired: Vec<String> =
                state.in_flight.iter().filter(|(_, m)| m.visible_at <= now).map(|(r, _)| r.clone()).collect();
            for receipt in expired {
                if let Some(message) = state.in_flight.remove(&receipt) {
                    match q.redrive {
                        Some((max, _)) if message.receive_count >= max => dead.push(message),
                        _ => state.waiting.push_back(message),
                    }
                }
            }
        }
        if let Some((_, dlq)) = q.redrive {
            for mut message in dead {
                message.receive_count = 0;
                message.visible_at = now;
                self.push(dlq, message).await?;
            }
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
            let mut state = q.state.lock().await;
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
            self.reclaim(q, now).await?;
            let notified = q.arrived.notified();
            let mut next_due = None;
            {
                let mut state = q.state.lock().await;
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
                    state.in_flight.insert(receipt, message);
                }
                for m in state.in_flight.values() {
                    next_due = Some(next_due.map_or(m.visible_at, |d: Instant| d.min(m.visible_at)));
                }
                if !out.is_empty() {
                    return Ok(out);
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
        let mut state = q.state.lock().await;
        for r in receipts {
            state.in_flight.remove(r);
        }
        Ok(())
    }

    async fn retry_later(&self, queue: &str, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let q = self.queue(queue)?;
        if let Some(m) = q.state.lock().await.in_flight.get_mut(receipt) {
            m.visible_at = Instant::now() + delay;
        }
        q.arrived.notify_one();
        Ok(())
    }

    async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        let q = self.queue(queue)?;
        self.reclaim(q, Instant::now()).await?;
        Ok(q.state.lock().await.waiting.len() as u64)
    }

    async fn peek(&self, queue: &str, max: u32) -> Result<Vec<Received>, QueueError> {
        let q = self.queue(queue)?;
        let now = Instant::now();
        self.reclaim(q, now).await?;
        let state = q.state.lock().await;
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
