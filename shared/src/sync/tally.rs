//! The worker's sync figures: outcomes counted per (publication, provider, account) while a batch's
//! messages are processed, then written once per source (`repo::sync_stats`), so sync health costs a
//! read and a write per source, not per event. Under Lambda each batch writes its own figures before it
//! answers; in a long-running process (`crm serve`) a `TallyWriter` merges the batches of every worker
//! and writes them from one task, so the workers neither wait for that write nor contend on its items.
//! When the latest Stripe event written follows the account's previous one after a gap, it queues a
//! catch-up of the gap on the jobs queue (`catch_up::automatic_since`).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::envelope::{Header, Provider};
use super::{Outcome, ROUNDS, contention_pause};
use crate::catch_up;
use crate::domain::ids::PublicationId;
use crate::domain::sync_health::{Counts, LastEvent, Source};
use crate::jobs::{self, JobMessage};
use crate::queue::Queue;
use crate::store::repo::sync_stats::{self, Addition};
use crate::store::{Store, StoreError};

/// What sync health keeps of an event the worker applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub outcome: Outcome,
    /// The provider's event type (Stripe's `type`, Piano's `type`), when it has one.
    pub event_type: Option<String>,
    /// The provider's time of the event, epoch seconds.
    pub event_at: i64,
}

pub fn source_of(header: &Header) -> Source {
    match header.provider {
        Provider::Stripe => {
            Source { provider: "stripe".into(), account: header.account.as_ref().map(|a| a.to_string()) }
        }
        Provider::Piano => Source { provider: "piano".into(), account: None },
    }
}

#[derive(Default)]
struct Entry {
    counts: Counts,
    applied: Option<LastEvent>,
}

impl Entry {
    /// Keeps `last` when it is the latest applied event by provider time: it stands for the others.
    fn applied(&mut self, last: LastEvent) {
        if self.applied.as_ref().is_none_or(|held| !held.later_than(&last)) {
            self.applied = Some(last);
        }
    }

    fn merge(&mut self, other: Entry) {
        self.counts.add(&other.counts);
        if let Some(last) = other.applied {
            self.applied(last);
        }
    }
}

type Entries = BTreeMap<(PublicationId, Source), Entry>;

#[derive(Default)]
pub struct BatchTally(Mutex<Entries>);

impl BatchTally {
    /// Counts one message's result; `now` is when it was applied.
    pub fn note<E>(&self, header: &Header, result: &Result<Processed, E>, now: i64) {
        // Entries are plain counters: one a panic interrupted is still usable.
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.entry((header.publication.clone(), source_of(header))).or_default();
        match result {
            Ok(Processed { outcome: Outcome::Applied, event_type, event_at }) => {
                entry.counts.applied += 1;
                entry.applied(LastEvent { event_type: event_type.clone(), event_at: Some(*event_at), at: now });
            }
            Ok(Processed { outcome: Outcome::Ignored(_), .. }) => entry.counts.ignored += 1,
            Ok(Processed { outcome: Outcome::Duplicate, .. }) => entry.counts.duplicates += 1,
            Err(_) => entry.counts.failed += 1,
        }
    }

    fn into_entries(self) -> Entries {
        self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the batch's figures (see `write`).
    pub async fn flush(self, store: &dyn Store, jobs: Option<&dyn Queue>, now: i64) {
        write(self.into_entries(), store, jobs, now).await;
    }
}

/// How often a `TallyWriter` writes at most: sync health is read by people, in hours and minutes.
const WRITE_INTERVAL: Duration = Duration::from_millis(250);

/// The sync figures of every event worker of a process, merged and written by one task (`run`):
/// one write per source each `WRITE_INTERVAL` however many batches there were, and none a worker
/// waits for. Figures merged since the last write are lost if the process dies, as a batch's are when
/// its write fails; a stop writes them.
#[derive(Default)]
pub struct TallyWriter {
    pending: Mutex<Entries>,
    wake: Notify,
}

impl TallyWriter {
    /// Hands a batch's figures to the next write.
    pub fn add(&self, tally: BatchTally) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (source, entry) in tally.into_entries() {
            pending.entry(source).or_default().merge(entry);
        }
        self.wake.notify_one();
    }

    /// Writes what was added, until `stop`; then writes what is left and returns. Cancel `stop` once
    /// the workers adding to it have stopped.
    pub async fn run(&self, store: &dyn Store, jobs: Option<&dyn Queue>, stop: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                () = self.wake.notified() => false,
                () = stop.cancelled() => true,
            };
            let entries = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
            write(entries, store, jobs, crate::store::now_epoch()).await;
            if stopping {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(WRITE_INTERVAL) => {}
                () = stop.cancelled() => {}
            }
        }
    }
}

/// Writes figures, one source at a time, and queues the catch-ups of gaps on `jobs` (none without it).
/// A failure is logged and the figures lost: they must never make a batch whose events were applied
/// be retried.
async fn write(entries: Entries, store: &dyn Store, jobs: Option<&dyn Queue>, now: i64) {
    for ((publication, source), entry) in entries {
        let id = ulid::Ulid::new().to_string();
        let addition =
            Addition { id: &id, source: &source, counts: entry.counts, applied: entry.applied.as_ref(), now };
        match add_retrying(store, &publication, &addition).await {
            Ok(replaced) => {
                let gap = catch_up_of_gap(&publication, &source, replaced.as_ref(), entry.applied.as_ref(), now);
                if let (Some(message), Some(queue)) = (gap, jobs) {
                    tracing::warn!(?message, "gap in the account's applied events: catch-up queued");
                    if let Err(e) = jobs::enqueue(queue, &message, 0).await {
                        tracing::error!(error = %e, ?message, "catch-up not queued: run `crm catch-up`");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, %publication, provider = %source.provider, "sync figures not recorded")
            }
        }
    }
}

/// The catch-up the latest applied event written asks for, after the one it replaced as last applied.
fn catch_up_of_gap(
    publication: &PublicationId,
    source: &Source,
    previous: Option<&LastEvent>,
    latest: Option<&LastEvent>,
    now: i64,
) -> Option<JobMessage> {
    // Piano has no event list to catch up from.
    let account = source.account.as_deref().filter(|_| source.provider == "stripe")?;
    let since = catch_up::automatic_since(previous?.event_at?, latest?.event_at?, now)?;
    let account = crate::domain::ids::AccountKey::parse(account).ok()?;
    Some(JobMessage::CatchUp { publication: publication.clone(), account, since })
}

/// `sync_stats::add`, again after a conflict with another worker's batch.
async fn add_retrying(
    store: &dyn Store,
    publication: &PublicationId,
    addition: &Addition<'_>,
) -> Result<Option<LastEvent>, StoreError> {
    let mut round = 0;
    loop {
        match sync_stats::add(store, publication, addition).await {
            Err(StoreError::ConditionFailed { .. }) if round + 1 < ROUNDS => {}
            Err(e) if e.is_transient() && round + 1 < ROUNDS => {}
            other => return other,
        }
        round += 1;
        contention_pause(round).await;
    }
}
