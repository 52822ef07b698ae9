//! Publication API keys: stored only as SHA-256 hashes, looked up by hash. Each key also has an entry
//! in its publication's key listing (masked prefix, creation, expiry, last use), written in the same
//! transaction, by which an operator lists and revokes keys. An expiring key's item expires with it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{from_item, keys_of, to_doc, values_all};
use crate::domain::ids::PublicationId;
use crate::store::{Cond, Index, Item, Query, Store, StoreError, WriteOp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub publication_id: PublicationId,
    /// First characters of the hash: enough to tell keys apart in logs and listings.
    pub key_id: String,
    pub created_at: i64,
    /// Epoch seconds from which the key is refused; `None`: it does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A key as its publication's listing shows it: never the key, never its whole hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyListing {
    pub key_id: String,
    /// The key's first characters and an ellipsis (`crm_pk_AbCd…`).
    pub prefix: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Epoch seconds of a use, at most an hour old per process (`AdminAuth` notes uses hourly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// The hash the key is looked up by, so revoking can delete that item.
    #[serde(default)]
    hash: String,
}

pub fn hash_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Characters of a key shown in listings, after its type prefix.
const SHOWN: usize = 4;

/// Stores a new key (its hash) and its listing entry, all or nothing.
pub async fn put(store: &dyn Store, key: &str, hash: &str, record: &ApiKeyRecord) -> Result<(), StoreError> {
    let shown: String = key.chars().take(crate::http::auth::KEY_PREFIX.len() + SHOWN).collect();
    let listing = KeyListing {
        key_id: record.key_id.clone(),
        prefix: format!("{shown}…"),
        created_at: record.created_at,
        expires_at: record.expires_at,
        last_used_at: None,
        hash: hash.to_owned(),
    };
    let mut item = Item::new(keys_of::api_key(hash), to_doc(record)?);
    let mut entry = Item::new(keys_of::api_key_listing(&record.publication_id, &record.key_id), to_doc(&listing)?);
    if let Some(at) = record.expires_at {
        item = item.expiring_at(at);
        entry = entry.expiring_at(at);
    }
    store.write(vec![WriteOp::put(item, Cond::NotExists), WriteOp::put(entry, Cond::NotExists)]).await
}

/// The key with this hash, unless revoked or expired.
pub async fn get(store: &dyn Store, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
    Ok(store.get(&keys_of::api_key(hash)).await?.map(from_item).transpose()?.map(|v| v.value))
}

/// The publication's keys, unexpired, in key-id order.
pub async fn list(store: &dyn Store, publication: &PublicationId) -> Result<Vec<KeyListing>, StoreError> {
    values_all(store, Query::new(Index::Primary, keys_of::api_keys_partition(publication))).await
}

/// Revokes a key: its hash item and its listing entry go in one transaction. Answers whether it existed.
pub async fn revoke(store: &dyn Store, publication: &PublicationId, key_id: &str) -> Result<bool, StoreError> {
    let listing_key = keys_of::api_key_listing(publication, key_id);
    let Some(found) = store.get(&listing_key).await? else { return Ok(false) };
    let listing: KeyListing = from_item(found)?.value;
    let ops = vec![
        WriteOp::Delete { key: keys_of::api_key(&listing.hash), cond: Cond::None },
        WriteOp::Delete { key: listing_key, cond: Cond::None },
    ];
    store.write(ops).await.map(|()| true)
}

/// Notes a use of the key at `now` in its listing entry, unless one noted within `every` seconds is
/// there already (the caller asks about once per `every` and process; the store is written at most
/// that often whatever the number of processes).
pub async fn note_use(store: &dyn Store, record: &ApiKeyRecord, now: i64, every: i64) -> Result<(), StoreError> {
    let key = keys_of::api_key_listing(&record.publication_id, &record.key_id);
    let Some(found) = store.get(&key).await? else { return Ok(()) };
    let version = found.version;
    let expires = found.expires_at;
    let mut listing: KeyListing = from_item(found)?.value;
    if listing.last_used_at.is_some_and(|at| now - at < every) {
        return Ok(());
    }
    listing.last_used_at = Some(now);
    let mut item = Item::new(key, to_doc(&listing)?).with_version(version + 1);
    if let Some(at) = expires {
        item = item.expiring_at(at);
    }
    // A revocation meanwhile wins: the entry is written only over the version read.
    match store.write(vec![WriteOp::put(item, Cond::Version(version))]).await {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
