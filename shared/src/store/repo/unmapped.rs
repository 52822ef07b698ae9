//! Products and resources that events name but the publication's catalogue does not: one item per
//! (provider, id) in the publication's partition, rewritten (last seen) by the transaction that applies
//! the event, so sync health lists them with one query and no extra round trip per event.

use serde::{Deserialize, Serialize};

use super::{keys_of, to_doc, values_all};
use crate::domain::ids::PublicationId;
use crate::store::{Cond, Index, Item, Query, Store, StoreError, WriteOp};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unmapped {
    /// `stripe` (a product id, `account` set) or `piano` (a resource id).
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub id: String,
    /// Epoch seconds.
    pub last_seen: i64,
    pub last_event_id: String,
}

pub fn put(publication: &PublicationId, unmapped: &Unmapped) -> Result<WriteOp, StoreError> {
    let key = keys_of::unmapped(publication, &unmapped.provider, unmapped.account.as_deref(), &unmapped.id);
    Ok(WriteOp::put(Item::new(key, to_doc(unmapped)?), Cond::None))
}

/// Every unmapped product and resource of the publication, by provider and id.
pub async fn list(store: &dyn Store, publication: &PublicationId) -> Result<Vec<Unmapped>, StoreError> {
    values_all(store, Query::new(Index::Primary, keys_of::unmapped_partition(publication)).limit(500)).await
}
