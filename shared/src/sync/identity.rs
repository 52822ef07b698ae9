//! One customer per person: finds the CRM customer a provider's customer belongs to (by provider id,
//! then by the CRM id written in the provider's metadata, then by normalised email), links the
//! provider id to it, or creates the customer. Uniqueness holds under concurrency because every
//! identity is a conditional item (`store::repo::customers`); a lost race re-reads the winner.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{ROUNDS, SyncError, contention_pause};
use crate::domain::billing::{ProfileState, Tracked};
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::{AccountKey, CustomerId, Email, PublicationId};
use crate::store::Store;
use crate::store::repo::Versioned;
use crate::store::repo::customers::{self, CustomerWriteError};

/// What the provider tells about the person, to match and to fill a new record.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    pub email: Option<Email>,
    pub name: Option<String>,
    pub crm_id: Option<CustomerId>,
}

/// Which CRM customer holds a Stripe customer id, as this process last saw it. A hit saves the identity
/// read on every later event of that customer; it is only a hint: the record read with it must still
/// hold the id, or the identity item is read after all.
#[derive(Default)]
pub struct IdentityCache {
    entries: Mutex<HashMap<(PublicationId, AccountKey, String), CustomerId>>,
}

/// Entries kept before the cache starts over (a few MB at most).
const CACHE_CAPACITY: usize = 50_000;

impl IdentityCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<(PublicationId, AccountKey, String), CustomerId>> {
        // Entries are independent; a panic elsewhere cannot leave one half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &(PublicationId, AccountKey, String)) -> Option<CustomerId> {
        self.lock().get(key).cloned()
    }

    pub(crate) fn remember(&self, key: (PublicationId, AccountKey, String), customer: CustomerId) {
        let mut entries = self.lock();
        if entries.len() >= CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(key, customer);
    }
}

/// The customer holding this Stripe customer id, or `None`.
pub async fn find_stripe(
    store: &dyn Store,
    cache: &IdentityCache,
    publication: &PublicationId,
    account: &AccountKey,
    stripe_id: &str,
) -> Result<Option<Versioned<Customer>>, SyncError> {
    let identity = Identity::Stripe(account.clone(), stripe_id.to_owned());
    let key = (publication.clone(), account.clone(), stripe_id.to_owned());
    if let Some(id) = cache.get(&key)
        && let Some(found) = customers::get(store, publication, &id).await?
        && found.value.holds(&identity)
    {
        return Ok(Some(found));
    }
    let found = customers::find(store, publication, &identity).await?;
    if let Some(found) = &found {
        cache.remember(key, found.value.id.clone());
    }
    Ok(found)
}

/// Links `stripe_id` to the person `hints` describe, creating the CRM customer when nobody matches.
/// Called after `find_stripe` missed, so the first round does not look the id up again.
pub async fn link_stripe(
    store: &dyn Store,
    publication: &PublicationId,
    account: &AccountKey,
    stripe_id: &str,
    profile: Tracked<ProfileState>,
    hints: &Hints,
    now: i64,
) -> Result<Versioned<Customer>, SyncError> {
    let identity = Identity::Stripe(account.clone(), stripe_id.to_owned());
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
            if let Some(found) = customers::find(store, publication, &identity).await? {
                return Ok(found);
            }
        }
        let existing = match &hints.crm_id {
            Some(id) => customers::get(store, publication, id).await?,
            None => None,
        };
        let existing = match (existing, &hints.email) {
            (Some(found), _) => Some(found),
            (None, Some(email)) => customers::find(store, publication, &Identity::Email(email.clone())).await?,
            (None, None) => None,
        };
        let attach = |customer: &mut Customer| {
            customer.link_stripe(account, stripe_id);
            // The profile also claims the id's identity when the account already has a primary id.
            customer.stripe.profiles.entry(stripe_id.to_owned()).or_insert_with(|| profile.clone());
            customer.updated_at = now;
        };
        let result = match existing {
            Some(found) => {
                let mut after = found.value.clone();
                attach(&mut after);
                customers::update(store, &found.value, &after, found.version)
                    .await
                    .map(|version| Versioned { value: after, version })
            }
            None => {
                let mut candidate = Customer::new(publication.clone(), now);
                candidate.email = hints.email.clone();
                candidate.name = hints.name.clone();
                attach(&mut candidate);
                customers::create(store, &candidate).await.map(|()| Versioned { value: candidate, version: 1 })
            }
        };
        match result {
            Ok(linked) => return Ok(linked),
            // Someone else linked or created meanwhile (or the store cancelled a racing transaction).
            Err(CustomerWriteError::Stale | CustomerWriteError::Taken { .. }) => {}
            Err(CustomerWriteError::Store(e)) if e.is_transient() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(SyncError::Contention)
}
