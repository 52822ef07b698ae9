//! Sync figures per (provider, account) of a publication, for sync health: hourly buckets counting
//! what the worker did with events (written once per batch, expiring after two days), and markers of
//! the last event received (by the webhooks) and applied (by the worker), which never expire. All in
//! the publication's sync partition, read with one range query for the buckets and one for the markers.

use serde::{Deserialize, Serialize};

use super::{Versioned, from_item, keys_of, to_doc, values_all};
use crate::domain::ids::PublicationId;
use crate::domain::sync_health::{Counts, LastEvent, Source};
use crate::store::{Cond, Index, Item, Key, Query, SkCond, Store, StoreError, WriteOp};

/// Buckets outlive the 24 hours sync health reads by a day, then TTL removes them.
pub const BUCKET_TTL_SECS: i64 = 49 * 3600;

/// How many of its latest additions a bucket remembers, so that an addition whose write happened but
/// whose answer was lost is not added again by its retry (which comes seconds later, after at most a
/// few other workers' additions).
pub const REMEMBERED_ADDITIONS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    #[serde(flatten)]
    pub source: Source,
    /// Start of the hour, epoch seconds.
    pub hour: i64,
    #[serde(flatten)]
    pub counts: Counts,
    /// The latest time a message was finished (applied, ignored or found duplicate) in the hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<i64>,
    /// Ids of the latest additions counted in, newest last (`REMEMBERED_ADDITIONS` of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    Received,
    Applied,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Applied => "applied",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    #[serde(flatten)]
    pub source: Source,
    pub stage: Stage,
    pub last: LastEvent,
}

pub fn hour_of(epoch: i64) -> i64 {
    epoch - epoch.rem_euclid(3600)
}

fn marker_key(publication: &PublicationId, source: &Source, stage: Stage) -> Key {
    keys_of::sync_marker(publication, &source.provider, source.account.as_deref().unwrap_or_default(), stage.as_str())
}

fn bucket_key(publication: &PublicationId, source: &Source, hour: i64) -> Key {
    keys_of::sync_bucket(publication, hour, &source.provider, source.account.as_deref().unwrap_or_default())
}

/// What one batch adds for one source: counts into the bucket of the hour of `now`, and the last event
/// it applied (kept only when newer than the one stored).
pub struct Addition<'a> {
    /// Unique to the addition (the same on each of its attempts): a bucket counts it once.
    pub id: &'a str,
    pub source: &'a Source,
    pub counts: Counts,
    pub applied: Option<&'a LastEvent>,
    pub now: i64,
}

/// Adds `addition` with a conditional read-modify-write; answers the last-applied event it replaced (when
/// there was one and `addition`'s is later). `ConditionFailed` means another worker wrote one of the
/// items meanwhile: call again (it reads them anew). An addition the bucket holds already (an earlier
/// attempt's write happened, its answer was lost) is not added again, and answers no replaced event.
pub async fn add(
    store: &dyn Store,
    publication: &PublicationId,
    addition: &Addition<'_>,
) -> Result<Option<LastEvent>, StoreError> {
    let hour = hour_of(addition.now);
    let bucket_key = bucket_key(publication, addition.source, hour);
    let marker_key = marker_key(publication, addition.source, Stage::Applied);
    let (bucket, marker) = futures::future::try_join(store.get(&bucket_key), async {
        match addition.applied {
            Some(_) => store.get(&marker_key).await,
            None => Ok(None),
        }
    })
    .await?;
    let mut ops = Vec::new();
    let (mut doc, cond, version) = match bucket.map(from_item::<Bucket>).transpose()? {
        Some(Versioned { value, version }) => (value, Cond::Version(version), version + 1),
        None => {
            let empty = Bucket {
                source: addition.source.clone(),
                hour,
                counts: Counts::default(),
                processed_at: None,
                additions: Vec::new(),
            };
            (empty, Cond::NotExists, 1)
        }
    };
    // The marker was written in the same transaction as the bucket: nothing is left to do.
    if doc.additions.iter().any(|id| id == addition.id) {
        return Ok(None);
    }
    doc.counts.add(&addition.counts);
    let finished = (addition.counts.processed() > 0).then_some(addition.now);
    doc.processed_at = doc.processed_at.max(finished);
    doc.additions.push(addition.id.to_owned());
    let excess = doc.additions.len().saturating_sub(REMEMBERED_ADDITIONS);
    doc.additions.drain(..excess);
    let item = Item::new(bucket_key, to_doc(&doc)?).with_version(version).expiring_at(hour + BUCKET_TTL_SECS);
    ops.push(WriteOp::put(item, cond));
    let mut replaced = None;
    if let Some(last) = addition.applied {
        let held = marker.map(from_item::<Marker>).transpose()?;
        if held.as_ref().is_none_or(|h| h.value.last.at <= last.at) {
            let (cond, version) =
                held.as_ref().map_or((Cond::NotExists, 1), |h| (Cond::Version(h.version), h.version + 1));
            let doc = Marker { source: addition.source.clone(), stage: Stage::Applied, last: last.clone() };
            ops.push(WriteOp::put(Item::new(marker_key, to_doc(&doc)?).with_version(version), cond));
            replaced = held.map(|h| h.value.last);
        }
    }
    store.write(ops).await?;
    Ok(replaced)
}

/// Records the last event received from `source` (last writer wins: receipts are seconds apart).
pub async fn received(
    store: &dyn Store,
    publication: &PublicationId,
    source: &Source,
    last: LastEvent,
) -> Result<(), StoreError> {
    let doc = Marker { source: source.clone(), stage: Stage::Received, last };
    let item = Item::new(marker_key(publication, source, Stage::Received), to_doc(&doc)?);
    store.write(vec![WriteOp::put(item, Cond::None)]).await
}

/// The buckets of every source from the hour holding `since` on.
pub async fn buckets_since(
    store: &dyn Store,
    publication: &PublicationId,
    since: i64,
) -> Result<Vec<Bucket>, StoreError> {
    let from = keys_of::sync_hour_prefix(hour_of(since));
    // `~` sorts after every digit and `#`: the end of the bucket range.
    let to = format!("{}~", keys_of::SYNC_BUCKET_PREFIX);
    let query =
        Query::new(Index::Primary, keys_of::sync_partition(publication)).sk(SkCond::Between(from, to)).limit(500);
    values_all(store, query).await
}

/// Every last-received and last-applied marker of the publication.
pub async fn markers(store: &dyn Store, publication: &PublicationId) -> Result<Vec<Marker>, StoreError> {
    let query = Query::new(Index::Primary, keys_of::sync_partition(publication))
        .sk(SkCond::BeginsWith(keys_of::SYNC_MARKER_PREFIX.into()))
        .limit(500);
    values_all(store, query).await
}
