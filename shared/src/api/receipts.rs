//! The webhooks' "last received" markers for sync health: written after the queue accepted the event,
//! at most once a second per (publication, provider, account) in a process, so the hot path pays one
//! store write a second per source at most; a failure is logged and never changes the webhook's answer.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::domain::ids::PublicationId;
use crate::domain::sync_health::{LastEvent, Source};
use crate::store::Store;
use crate::store::repo::sync_stats;
use crate::sync::envelope::Header;
use crate::sync::tally::source_of;

/// Sources remembered before the throttle starts over (an entry is a few dozen bytes).
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct Receipts {
    /// The second each source was last written in.
    written: Mutex<HashMap<(PublicationId, Source), i64>>,
}

impl Receipts {
    /// Whether `source`'s marker was not written yet in second `now` (and counts it as written).
    fn due(&self, publication: &PublicationId, source: &Source, now: i64) -> bool {
        // Entries are independent seconds: one a panic interrupted is still usable.
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if written.len() >= CAPACITY {
            written.clear();
        }
        let key = (publication.clone(), source.clone());
        if written.get(&key) == Some(&now) {
            return false;
        }
        written.insert(key, now);
        true
    }

    /// Records the receipt of the event `header` queued, of `event_type`.
    pub async fn note(&self, store: &dyn Store, header: &Header, event_type: Option<&str>) {
        let (publication, source, now) = (&header.publication, source_of(header), header.received_at);
        if !self.due(publication, &source, now) {
            return;
        }
        let last = LastEvent { event_type: event_type.map(str::to_owned), event_at: None, at: now };
        if let Err(e) = sync_stats::received(store, publication, &source, last).await {
            tracing::warn!(error = %e, provider = %source.provider, "last-received marker not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_write_per_source_and_second() {
        let receipts = Receipts::default();
        let publication = PublicationId::parse("demo").unwrap();
        let main = Source { provider: "stripe".into(), account: Some("main".into()) };
        let piano = Source { provider: "piano".into(), account: None };
        assert!(receipts.due(&publication, &main, 100));
        assert!(!receipts.due(&publication, &main, 100), "same second");
        assert!(receipts.due(&publication, &piano, 100), "another source");
        assert!(receipts.due(&publication, &main, 101), "the next second");
    }
}
