//! The MRR movement ledger and its folded summary. Movements are written in the transaction that
//! applies their event, into one of `SHARDS` partitions by customer (no hot partition), sorted by the
//! time they were recorded; the summary (one item) holds every movement recorded up to `foldedThrough`,
//! aggregated by month. A report reads the summary and folds the few movements recorded since (the
//! ones older than `SETTLE_MS` are stored back into the summary), so it costs one read and `SHARDS`
//! short queries however long the history is, and never scans.

use serde::{Deserialize, Serialize};

use super::{from_item, keys_of, query_all, to_doc};
use crate::domain::ids::{CustomerId, PublicationId};
use crate::domain::revenue::{Movement, Summary};
use crate::store::{Cond, Index, Item, Query, SkCond, Store, StoreError, WriteOp};

/// Partitions of a publication's movements.
pub const SHARDS: u32 = 8;
/// Movements recorded less than this long ago are folded into each answer but not yet stored in the
/// summary: a worker whose clock lags by less than this can still record behind them.
pub const SETTLE_MS: i64 = 60_000;

fn shard_of(customer: &CustomerId) -> u32 {
    // FNV-1a: stable across processes and versions, unlike the std hasher.
    let hash = customer.as_str().bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % SHARDS
}

/// The write of `movement`, recorded at `recorded_ms` (epoch milliseconds).
pub fn put(publication: &PublicationId, movement: &Movement, recorded_ms: i64) -> Result<WriteOp, StoreError> {
    let sk = format!("{recorded_ms:013}#{}#{}", movement.event_id, movement.currency);
    let key = keys_of::mrr_movement(publication, shard_of(&movement.customer), &sk);
    Ok(WriteOp::put(Item::new(key, to_doc(movement)?), Cond::None))
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SummaryDoc {
    /// Every movement recorded at or before this epoch millisecond is in `summary`.
    folded_through: i64,
    summary: Summary,
}

/// Movements of one shard recorded after `after_ms`, with their recording time (epoch ms).
async fn recorded_after(
    store: &dyn Store,
    publication: &PublicationId,
    shard: u32,
    after_ms: i64,
) -> Result<Vec<(i64, Movement)>, StoreError> {
    let query = Query::new(Index::Primary, keys_of::mrr_partition(publication, shard))
        .sk(SkCond::Between(format!("{:013}$", after_ms.max(0)), "~".to_owned()))
        .limit(1000);
    query_all(store, query)
        .await?
        .into_iter()
        .map(|item| {
            let recorded = item.key.sk.get(..13).and_then(|ms| ms.parse().ok());
            let recorded = recorded.ok_or_else(|| StoreError::Corrupt(format!("movement key {}", item.key.sk)))?;
            Ok((recorded, from_item::<Movement>(item)?.value))
        })
        .collect()
}

/// Every movement of the publication folded, as of `now_ms`. Settled movements not yet in the stored
/// summary are stored into it (best effort: a concurrent reader may have done it first).
pub async fn summary(store: &dyn Store, publication: &PublicationId, now_ms: i64) -> Result<Summary, StoreError> {
    let key = keys_of::revenue_summary(publication);
    let stored = store.get(&key).await?;
    let (mut doc, version) = match stored {
        Some(item) => {
            let v = from_item::<SummaryDoc>(item)?;
            (v.value, Some(v.version))
        }
        None => (SummaryDoc::default(), None),
    };
    let settled = now_ms - SETTLE_MS;
    // One query per shard: what was recorded since the fold, split at the settle point.
    let shards = (0..SHARDS).map(|shard| recorded_after(store, publication, shard, doc.folded_through));
    let mut fresh = Vec::new();
    let mut newly_settled = 0;
    for (recorded, movement) in futures::future::try_join_all(shards).await?.into_iter().flatten() {
        if recorded <= settled {
            newly_settled += 1;
            doc.summary.fold(&movement);
        } else {
            fresh.push(movement);
        }
    }
    if settled > doc.folded_through {
        doc.folded_through = settled;
        if newly_settled > 0 || version.is_none() {
            let cond = version.map_or(Cond::NotExists, Cond::Version);
            let item = Item::new(key, to_doc(&doc)?).with_version(version.unwrap_or(0) + 1);
            match store.write(vec![WriteOp::put(item, cond)]).await {
                Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut summary = doc.summary;
    for movement in &fresh {
        summary.fold(movement);
    }
    Ok(summary)
}
