//! Sync figures per (provider, account) of a publication, for sync health: hourly buckets counting
//! what the worker did with events (added to once per batch or merged batches, a few per hour and
//! source so that concurrent workers rarely meet, expiring after two days), and markers of
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

fn bucket_key(publication: &PublicationId, source: &Source, hour: i64, shard: u64) -> Key {
    keys_of::sync_bucket(publication, hour, &source.provider, source.account.as_deref().unwrap_or_default(), shard)
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

/// Buckets per (source, hour): an addition goes to the one its id picks, so concurrent workers (Lambda
/// invocations, or processes) rarely write the same item; reading sums them.
pub const BUCKET_SHARDS: u64 = 8;

fn shard_of(id: &str) -> u64 {
    // FNV-1a: stable across builds and processes, unlike `std`'s hasher, so a retry finds its shard.
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)) % BUCKET_SHARDS
}

/// Adds `addition`: its counts to its bucket, its last applied event to the source's marker when later
/// than the one held; answers the event it replaced there. Both are conditional read-modify-writes
/// of their own item, written at once. `ConditionFailed` means another worker wrote one of them
/// meanwhile: call again (it reads them anew). An addition the bucket holds already (an earlier
/// attempt's write happened, its answer was lost) is not counted again, and a marker holding its event
/// already is left as it is.
pub async fn add(
    store: &dyn Store,
    publication: &PublicationId,
    addition: &Addition<'_>,
) -> Result<Option<LastEvent>, StoreError> {
    let (_, replaced) = futures::future::try_join(add_counts(store, publication, addition), async {
        match addition.applied {
            Some(last) => mark_applied(store, publication, addition.source, last).await,
            None => Ok(None),
        }
    })
    .await?;
    Ok(replaced)
}

async fn add_counts(store: &dyn Store, publication: &PublicationId, addition: &Addition<'_>) -> Result<(), StoreError> {
    let hour = hour_of(addition.now);
    let key = bucket_key(publication, addition.source, hour, shard_of(addition.id));
    let (mut doc, cond, version) = match store.get(&key).await?.map(from_item::<Bucket>).transpose()? {
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
    if doc.additions.iter().any(|id| id == addition.id) {
        return Ok(());
    }
    doc.counts.add(&addition.counts);
    let finished = (addition.counts.processed() > 0).then_some(addition.now);
    doc.processed_at = doc.processed_at.max(finished);
    doc.additions.push(addition.id.to_owned());
    let excess = doc.additions.len().saturating_sub(REMEMBERED_ADDITIONS);
    doc.additions.drain(..excess);
    let item = Item::new(key, to_doc(&doc)?).with_version(version).expiring_at(hour + BUCKET_TTL_SECS);
    store.write(vec![WriteOp::put(item, cond)]).await
}

/// Makes `last` the source's last applied event unless the marker holds a later (or the same) one
/// (`LastEvent::later_than`).
async fn mark_applied(
    store: &dyn Store,
    publication: &PublicationId,
    source: &Source,
    last: &LastEvent,
) -> Result<Option<LastEvent>, StoreError> {
    let key = marker_key(publication, source, Stage::Applied);
    let held = store.get(&key).await?.map(from_item::<Marker>).transpose()?;
    if held.as_ref().is_some_and(|h| !last.later_than(&h.value.last)) {
        return Ok(None);
    }
    let (cond, version) = held.as_ref().map_or((Cond::NotExists, 1), |h| (Cond::Version(h.version), h.version + 1));
    let doc = Marker { source: source.clone(), stage: Stage::Applied, last: last.clone() };
    store.write(vec![WriteOp::put(Item::new(key, to_doc(&doc)?).with_version(version), cond)]).await?;
    Ok(held.map(|h| h.value.last))
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
