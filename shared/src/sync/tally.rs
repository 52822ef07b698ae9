//! The worker's sync figures for one batch: outcomes counted per (publication, provider, account) while
//! the batch's messages are processed, then written once per source for the whole batch
//! (`repo::sync_stats`), so sync health costs a batch a read and a write per source, not per event.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::envelope::{Header, Provider};
use super::{Outcome, ROUNDS, contention_pause};
use crate::domain::ids::PublicationId;
use crate::domain::sync_health::{Counts, LastEvent, Source};
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

#[derive(Default)]
pub struct BatchTally(Mutex<BTreeMap<(PublicationId, Source), Entry>>);

impl BatchTally {
    /// Counts one message's result; `now` is when it was applied.
    pub fn note<E>(&self, header: &Header, result: &Result<Processed, E>, now: i64) {
        // Entries are plain counters: one a panic interrupted is still usable.
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.entry((header.publication.clone(), source_of(header))).or_default();
        match result {
            Ok(Processed { outcome: Outcome::Applied, event_type, event_at }) => {
                entry.counts.applied += 1;
                let last = LastEvent { event_type: event_type.clone(), event_at: Some(*event_at), at: now };
                // Of one batch's applied events, the one of the latest provider time stands for it.
                if entry.applied.as_ref().is_none_or(|held| held.event_at <= last.event_at) {
                    entry.applied = Some(last);
                }
            }
            Ok(Processed { outcome: Outcome::Ignored(_), .. }) => entry.counts.ignored += 1,
            Ok(Processed { outcome: Outcome::Duplicate, .. }) => entry.counts.duplicates += 1,
            Err(_) => entry.counts.failed += 1,
        }
    }

    /// Writes the batch's figures, one source at a time. A failure is logged and the figures lost: they
    /// must never make a batch whose events were applied be retried.
    pub async fn flush(self, store: &dyn Store, now: i64) {
        let entries = self.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        for ((publication, source), entry) in entries {
            let id = ulid::Ulid::new().to_string();
            let addition =
                Addition { id: &id, source: &source, counts: entry.counts, applied: entry.applied.as_ref(), now };
            if let Err(e) = add_retrying(store, &publication, &addition).await {
                tracing::warn!(error = %e, %publication, provider = %source.provider, "sync figures not recorded");
            }
        }
    }
}

/// `sync_stats::add`, again after a conflict with another worker's batch.
async fn add_retrying(
    store: &dyn Store,
    publication: &PublicationId,
    addition: &Addition<'_>,
) -> Result<(), StoreError> {
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
