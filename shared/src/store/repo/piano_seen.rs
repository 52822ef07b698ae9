//! Piano events the webhook received, by identity (`piano::webhook::event_identity`): one item each,
//! expiring long after Piano would retry, so a replayed `data` is neither applied nor forwarded again.

use super::keys_of;
use crate::domain::ids::PublicationId;
use crate::store::{Cond, Item, Store, StoreError, WriteOp};

pub async fn received(store: &dyn Store, publication: &PublicationId, event_id: &str) -> Result<bool, StoreError> {
    Ok(store.get(&keys_of::piano_seen(publication, event_id)).await?.is_some())
}

/// Remembers the event until `expires_at` (epoch seconds); remembered already is fine.
pub async fn remember(
    store: &dyn Store,
    publication: &PublicationId,
    event_id: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    let item = Item::new(keys_of::piano_seen(publication, event_id), "{}".into()).expiring_at(expires_at);
    match store.write(vec![WriteOp::put(item, Cond::NotExists)]).await {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
