//! Possible duplicate customers, found when customers are written rather than by scanning them: each
//! customer has one item per match key (`domain::matching`) in that key's partition, put and deleted in
//! the customer's own transaction (as its status entry is). After a write that changed a customer's
//! keys, each changed key's partition is read: two or more holders make (or update) a possible-duplicate
//! entry in the publication's duplicates partition, fewer delete it. So a customer whose email or name
//! changes drops out of the entries it no longer matches, and sync health lists them with one query.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{keys_of, to_doc, values_all};
use crate::domain::customer::Customer;
use crate::domain::ids::{CustomerId, PublicationId};
use crate::domain::matching::{self, MatchKey, Reason};
use crate::store::{Cond, Index, Item, Query, Store, StoreError, WriteOp};

/// Holders read per key: a key held by more people than this is listed with the first ones.
const MAX_HOLDERS: u32 = 25;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PossibleDuplicate {
    pub reason: Reason,
    /// The normalised email, or `name|POSTCODE`.
    pub key: String,
    /// Every customer holding the key, in id order.
    pub customer_ids: Vec<CustomerId>,
    /// Epoch seconds of the write that last changed the holders.
    pub updated_at: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Holder {
    customer_id: CustomerId,
}

/// What a customer write does to the match-key index: the writes for its transaction, and the keys
/// whose possible-duplicate entry `refresh` must look at once it is in.
pub struct IndexChange {
    pub ops: Vec<WriteOp>,
    pub changed: Vec<MatchKey>,
}

/// The index writes taking `before`'s match keys (none for a new customer) to `after`'s.
pub fn index_change(before: Option<&Customer>, after: &Customer) -> Result<IndexChange, StoreError> {
    // Most writes (a renewal, a payment) leave the fields the keys are made of alone: folding them
    // again would find the same keys.
    if before.is_some_and(|b| matching::same_key_fields(b, after)) {
        return Ok(IndexChange { ops: Vec::new(), changed: Vec::new() });
    }
    let old: BTreeSet<MatchKey> = before.map(matching::keys_of).unwrap_or_default().into_iter().collect();
    let new: BTreeSet<MatchKey> = matching::keys_of(after).into_iter().collect();
    let mut change = IndexChange { ops: Vec::new(), changed: Vec::new() };
    for key in new.difference(&old) {
        let doc = to_doc(&Holder { customer_id: after.id.clone() })?;
        let item = Item::new(keys_of::match_key(&after.publication_id, key, &after.id), doc);
        change.ops.push(WriteOp::put(item, Cond::None));
        change.changed.push(key.clone());
    }
    for key in old.difference(&new) {
        change
            .ops
            .push(WriteOp::Delete { key: keys_of::match_key(&after.publication_id, key, &after.id), cond: Cond::None });
        change.changed.push(key.clone());
    }
    Ok(change)
}

/// Rewrites the possible-duplicate entry of each key in `changed` from the key's holders. Two writers
/// refreshing one key at once may leave the older view until the key changes again: entries are
/// prompts for a person to review, never merged automatically.
pub async fn refresh(
    store: &dyn Store,
    publication: &PublicationId,
    changed: &[MatchKey],
    now: i64,
) -> Result<(), StoreError> {
    for key in changed {
        let query = Query::new(Index::Primary, keys_of::match_partition(publication, key)).limit(MAX_HOLDERS);
        let holders = store.query(&query).await?.items;
        let mut customer_ids = holders
            .into_iter()
            .map(|item| super::from_item::<Holder>(item).map(|h| h.value.customer_id))
            .collect::<Result<Vec<_>, _>>()?;
        customer_ids.sort();
        let entry = keys_of::possible_duplicate(publication, key);
        let op = if customer_ids.len() >= 2 {
            let doc = PossibleDuplicate { reason: key.reason, key: key.value.clone(), customer_ids, updated_at: now };
            WriteOp::put(Item::new(entry, to_doc(&doc)?), Cond::None)
        } else {
            WriteOp::Delete { key: entry, cond: Cond::None }
        };
        store.write(vec![op]).await?;
    }
    Ok(())
}

/// Every possible duplicate of the publication, by reason and key.
pub async fn list(store: &dyn Store, publication: &PublicationId) -> Result<Vec<PossibleDuplicate>, StoreError> {
    values_all(store, Query::new(Index::Primary, keys_of::duplicates_partition(publication)).limit(500)).await
}
