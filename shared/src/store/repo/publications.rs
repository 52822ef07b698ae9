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

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The settings changed since read (or exist already, for a creation).
    #[error("settings were changed by another request")]
    Stale,
    /// Another publication serves this Piano application from this origin: its public routes would
    /// be shadowed.
    #[error("origin {origin} already serves Piano application {aid} for another publication")]
    Claimed { aid: String, origin: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claim {
    publication_id: PublicationId,
}

/// The (Piano application, origin) pairs a publication's public routes answer for.
fn pairs(settings: &PublicationSettings) -> Vec<(String, String)> {
    let Some(piano) = &settings.piano else { return Vec::new() };
    settings.origins.iter().map(|o| (piano.aid.clone(), o.as_str().to_owned())).collect()
}

/// Creates (`expected` = None) or replaces the settings at version `expected`; answers the new version.
/// In the same transaction: the origin index (for CORS preflights, which carry no token) moves with
/// the settings, and each (Piano application, origin) pair is claimed for this publication, as an
/// email is for a customer, so no other publication can answer the public routes for it.
pub async fn put(store: &dyn Store, stored: &StoredSettings, expected: Option<u64>) -> Result<u64, PutError> {
    let id = &stored.publication_id;
    let previous = match expected {
        Some(_) => get(store, id).await?.map(|v| v.value.settings),
        None => None,
    };
    let version = expected.map_or(1, |v| v + 1);
    let mut item = Item::new(keys_of::settings(id), to_doc(stored)?).with_version(version);
    if let Some(piano) = &stored.settings.piano {
        item = item.with_gsi1(keys_of::piano_aid(&piano.aid, id));
    }
    let cond = expected.map_or(Cond::NotExists, Cond::Version);
    let mut ops = vec![WriteOp::put(item, cond)];
    let (old_pairs, new_pairs) = (previous.as_ref().map(pairs).unwrap_or_default(), pairs(&stored.settings));
    // Pairs already claimed (by this publication, or, for settings older than claims, unclaimed) are
    // read: a pair another publication holds is refused before anything is written.
    let mut claimed = Vec::new();
    for (aid, origin) in &new_pairs {
        let key = keys_of::aid_origin_claim(aid, origin);
        match store.get(&key).await?.map(from_item::<Claim>).transpose()? {
            Some(holder) if &holder.value.publication_id != id => {
                return Err(PutError::Claimed { aid: aid.clone(), origin: origin.clone() });
            }
            Some(held) => ops.push(WriteOp::Check { key, cond: Cond::Version(held.version) }),
            None => {
                claimed.push((aid.clone(), origin.clone()));
                let doc = to_doc(&Claim { publication_id: id.clone() })?;
                ops.push(WriteOp::put(Item::new(key, doc), Cond::NotExists));
            }
        }
    }
    let first_claim = 1;
    for (aid, origin) in old_pairs.iter().filter(|p| !new_pairs.contains(p)) {
        ops.push(WriteOp::Delete { key: keys_of::aid_origin_claim(aid, origin), cond: Cond::None });
    }
    let current = &stored.settings.origins;
    for origin in current {
        ops.push(WriteOp::put(Item::new(keys_of::origin(origin.as_str(), id), "{}".into()), Cond::None));
    }
    let old_origins = previous.map(|p| p.origins).unwrap_or_default();
    for origin in old_origins.iter().filter(|o| !current.contains(o)) {
        ops.push(WriteOp::Delete { key: keys_of::origin(origin.as_str(), id), cond: Cond::None });
    }
    match store.write(ops).await {
        Ok(()) => Ok(version),
        Err(StoreError::ConditionFailed { index: 0 }) => Err(PutError::Stale),
        // A pair claimed (or released and claimed by another) meanwhile.
        Err(StoreError::ConditionFailed { index }) => {
            let (aid, origin) = new_pairs.get(index - first_claim).cloned().unwrap_or_default();
            Err(PutError::Claimed { aid, origin })
        }
        Err(e) => Err(e.into()),
    }
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
        self.reread(store, id, self.ttl).await
    }

    /// The settings read again now, unless the cached ones were read within `fresh_enough`: a caller
    /// that found them wanting (a signature no secret matches) asks once, and a flood of such callers
    /// costs at most one read per `fresh_enough`.
    pub async fn reread(
        &self,
        store: &dyn Store,
        id: &PublicationId,
        fresh_enough: Duration,
    ) -> Result<Option<Arc<StoredSettings>>, StoreError> {
        let now = Instant::now();
        if let Some((at, value)) = self.lock().get(id)
            && now.duration_since(*at) < fresh_enough
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
