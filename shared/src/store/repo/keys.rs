//! Publication API keys: stored only as SHA-256 hashes, looked up by hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{from_item, keys_of, to_doc};
use crate::domain::ids::PublicationId;
use crate::store::{Cond, Item, Store, StoreError, WriteOp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub publication_id: PublicationId,
    /// First characters of the hash: enough to tell keys apart in logs and listings.
    pub key_id: String,
    pub created_at: i64,
}

pub fn hash_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub async fn put(store: &dyn Store, hash: &str, record: &ApiKeyRecord) -> Result<(), StoreError> {
    let item = Item::new(keys_of::api_key(hash), to_doc(record)?);
    store.write(vec![WriteOp::put(item, Cond::NotExists)]).await
}

pub async fn get(store: &dyn Store, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
    Ok(store.get(&keys_of::api_key(hash)).await?.map(from_item).transpose()?.map(|v| v.value))
}
