//! Publication settings: one item per publication, listed in GSI1 under its Piano aid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Versioned, from_item, keys_of, to_doc, values_all};
use crate::domain::ids::{AccountKey, PublicationId};
use crate::domain::settings::{PublicationSettings, StripeAccount};
use crate::store::{Cond, Index, Item, Query, Store, StoreError, WriteOp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSettings {
    pub publication_id: PublicationId,
    pub settings: PublicationSettings,
    pub updated_at: i64,
}

pub async fn get(store: &dyn Store, id: &PublicationId) -> Result<Option<Versioned<StoredSettings>>, StoreError> {
    store.get(&keys_of::settings(id)).await?.map(from_item).transpose()
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publication {0} is not configured")]
    UnknownPublication(String),
    #[error("publication has no Stripe account {0}")]
    UnknownAccount(String),
}

/// The publication's settings and its Stripe account `key`, for jobs that read or replay a whole account.
pub async fn stripe_account(
    store: &dyn Store,
    publication: &PublicationId,
    key: &AccountKey,
) -> Result<(PublicationSettings, StripeAccount), AccountError> {
    let settings = get(store, publication)
        .await?
        .ok_or_else(|| AccountError::UnknownPublication(publication.to_string()))?
        .value
        .settings;
    let account = settings.stripe_account(key).cloned().ok_or_else(|| AccountError::UnknownAccount(key.to_string()))?;
    Ok((settings, account))
}

/// Creates (`expected` = None) or replaces the settings at version `expected`; answers the new version.
/// A concurrent change fails with `StoreError::ConditionFailed`. The origin index (for CORS preflights,
/// which carry no token) moves with the settings in the same transaction.
pub async fn put(store: &dyn Store, stored: &StoredSettings, expected: Option<u64>) -> Result<u64, StoreError> {
    let id = &stored.publication_id;
    let previous = match expected {
        Some(_) => get(store, id).await?.map(|v| v.value.settings.origins).unwrap_or_default(),
        None => Vec::new(),
    };
    let version = expected.map_or(1, |v| v + 1);
    let mut item = Item::new(keys_of::settings(id), to_doc(stored)?).with_version(version);
    if let Some(piano) = &stored.settings.piano {
        item = item.with_gsi1(keys_of::piano_aid(&piano.aid, id));
    }
    let cond = expected.map_or(Cond::NotExists, Cond::Version);
    let mut ops = vec![WriteOp::put(item, cond)];
    let current = &stored.settings.origins;
    for origin in current {
        ops.push(WriteOp::put(Item::new(keys_of::origin(origin.as_str(), id), "{}".into()), Cond::None));
    }
    for origin in previous.iter().filter(|o| !current.contains(o)) {
        ops.push(WriteOp::Delete { key: keys_of::origin(origin.as_str(), id), cond: Cond::None });
    }
    store.write(ops).await?;
    Ok(version)
}

/// Whether any publication serves pages from this origin (normalised as `Origin` does).
pub async fn origin_is_configured(store: &dyn Store, origin: &str) -> Result<bool, StoreError> {
    let page = store.query(&Query::new(Index::Primary, keys_of::origin_partition(origin)).limit(1)).await?;
    Ok(!page.items.is_empty())
}

/// Every publication configured with this Piano application id (several sites may share one).
pub async fn by_piano_aid(store: &dyn Store, aid: &str) -> Result<Vec<StoredSettings>, StoreError> {
    values_all(store, Query::new(Index::Gsi1, keys_of::piano_aid_partition(aid))).await
}

type CacheEntries = HashMap<PublicationId, (Instant, Option<Arc<StoredSettings>>)>;

/// Settings read through a short-lived cache: webhooks and workers read them on every event, and a
/// change made through the admin API reaches them within `ttl` (a warm Lambda keeps the cache).
pub struct SettingsCache {
    ttl: Duration,
    entries: Mutex<CacheEntries>,
}

impl SettingsCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::default() }
    }

    pub async fn get(&self, store: &dyn Store, id: &PublicationId) -> Result<Option<Arc<StoredSettings>>, StoreError> {
        let now = Instant::now();
        if let Some((at, value)) = self.lock().get(id)
            && now.duration_since(*at) < self.ttl
        {
            return Ok(value.clone());
        }
        let value = get(store, id).await?.map(|v| Arc::new(v.value));
        self.lock().insert(id.clone(), (now, value.clone()));
        Ok(value)
    }

    fn lock(&self) -> MutexGuard<'_, CacheEntries> {
        // A panic while holding this lock cannot leave the map half-written; keep using it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
