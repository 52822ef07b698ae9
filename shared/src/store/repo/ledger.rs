//! The processed-event ledger (Lambda Powertools' idempotency pattern): a conditional put claims
//! `(publication, provider, event id)` until the claim expires; completion keeps it for `KEEP`.
//! An expired claim (a crashed attempt) counts as absent, so the event becomes claimable again.

use serde::{Deserialize, Serialize};

use super::{from_item, keys_of, to_doc};
use crate::domain::ids::PublicationId;
use crate::store::{Cond, Item, Key, Store, StoreError, WriteOp};

/// How long a completed event is remembered: past Stripe's 3 days of retries and 30 days of `/v1/events`.
pub const KEEP_SECONDS: i64 = 35 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    InProgress,
    Completed,
}

#[derive(Debug, Serialize, Deserialize)]
struct LedgerDoc {
    status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the event until the claim expires; pass the token to `complete`/`release`.
    Claimed(ClaimToken),
    Completed,
    InProgress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    key: Key,
    version: u64,
}

pub async fn claim(
    store: &dyn Store,
    publication: &PublicationId,
    provider: &str,
    event_id: &str,
    hold_until: i64,
) -> Result<Claim, StoreError> {
    let key = keys_of::event(publication, provider, event_id);
    // Each claim gets its own version (milliseconds, then 20 random bits for claims within one
    // millisecond), so the stale token of a crashed attempt can never complete a newer claim.
    let version = (ulid::Ulid::new().timestamp_ms() << 20) | u64::from(rand::random::<u32>() & 0xF_FFFF);
    let item = Item::new(key.clone(), to_doc(&LedgerDoc { status: Status::InProgress })?)
        .with_version(version)
        .expiring_at(hold_until);
    match store.write(vec![WriteOp::put(item, Cond::NotExists)]).await {
        Ok(()) => Ok(Claim::Claimed(ClaimToken { key, version })),
        Err(StoreError::ConditionFailed { .. }) => match store.get(&key).await? {
            Some(existing) => match from_item::<LedgerDoc>(existing)?.value.status {
                Status::Completed => Ok(Claim::Completed),
                Status::InProgress => Ok(Claim::InProgress),
            },
            // Expired between the two calls: report in progress, the next delivery claims it.
            None => Ok(Claim::InProgress),
        },
        Err(e) => Err(e),
    }
}

/// Whether the event was applied (or recorded as seen) already: a delivery now would be a duplicate.
pub async fn completed(
    store: &dyn Store,
    publication: &PublicationId,
    provider: &str,
    event_id: &str,
) -> Result<bool, StoreError> {
    match store.get(&keys_of::event(publication, provider, event_id)).await? {
        Some(item) => Ok(from_item::<LedgerDoc>(item)?.value.status == Status::Completed),
        None => Ok(false),
    }
}

/// The write that records an event as applied, for the transaction that applies it: it fails
/// (and with it the whole transaction) when the event was applied before, so its effects happen once.
pub fn applied(publication: &PublicationId, provider: &str, event_id: &str, now: i64) -> Result<WriteOp, StoreError> {
    let item =
        Item::new(keys_of::event(publication, provider, event_id), to_doc(&LedgerDoc { status: Status::Completed })?)
            .expiring_at(now + KEEP_SECONDS);
    Ok(WriteOp::put(item, Cond::NotExists))
}

/// Marks the claimed event done. Fails with `ConditionFailed` if the claim was lost meanwhile.
pub async fn complete(store: &dyn Store, token: &ClaimToken, now: i64) -> Result<(), StoreError> {
    let item = Item::new(token.key.clone(), to_doc(&LedgerDoc { status: Status::Completed })?)
        .with_version(token.version + 1)
        .expiring_at(now + KEEP_SECONDS);
    store.write(vec![WriteOp::put(item, Cond::Version(token.version))]).await
}

/// Gives the claim up after a failure, so a retry need not wait for it to expire.
pub async fn release(store: &dyn Store, token: &ClaimToken) -> Result<(), StoreError> {
    match store.write(vec![WriteOp::Delete { key: token.key.clone(), cond: Cond::Version(token.version) }]).await {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The automations an applied event fired and that have not run yet (the outbox), next to its ledger
/// entry; written in the event's transaction, deleted once they ran.
pub fn pending_put(
    publication: &PublicationId,
    provider: &str,
    event_id: &str,
    fired: &[crate::automation::Fired],
) -> Result<WriteOp, StoreError> {
    Ok(WriteOp::put(
        Item::new(keys_of::pending_automations(publication, provider, event_id), to_doc(&fired)?),
        Cond::None,
    ))
}

pub async fn pending(
    store: &dyn Store,
    publication: &PublicationId,
    provider: &str,
    event_id: &str,
) -> Result<Vec<crate::automation::Fired>, StoreError> {
    match store.get(&keys_of::pending_automations(publication, provider, event_id)).await? {
        Some(item) => Ok(from_item(item)?.value),
        None => Ok(Vec::new()),
    }
}

pub async fn pending_done(
    store: &dyn Store,
    publication: &PublicationId,
    provider: &str,
    event_id: &str,
) -> Result<(), StoreError> {
    let key = keys_of::pending_automations(publication, provider, event_id);
    store.write(vec![WriteOp::Delete { key, cond: Cond::None }]).await
}
