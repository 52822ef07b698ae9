//! The Piano sync: a Piano user becomes (or is linked to) the CRM customer, found by Piano uid, then by
//! normalised email, so the reader a Stripe customer already made is the same record; access events
//! set the customer's entitlements, with a timeline entry each. Each event is recorded in the ledger
//! (under the id the proxy gave it) in the transaction that applies it, so a redelivery is a duplicate.

use super::{Outcome, ROUNDS, SyncError, contention_pause, record_seen};
use crate::domain::access::{Entitlement, EntitlementStatus};
use crate::domain::activity::{Activity, ActivityKind};
use crate::domain::billing::{Merge, Tracked};
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::{Email, PublicationId};
use crate::piano::webhook::PianoEvent;
use crate::store::Store;
use crate::store::repo::customers::{self, CustomerWriteError};
use crate::store::repo::{Versioned, activities, ledger};

const PROVIDER: &str = "piano";

/// One Piano event as the worker received it.
pub struct Delivery<'a> {
    pub publication: &'a PublicationId,
    pub event_id: &'a str,
    pub event: &'a PianoEvent,
    /// When the proxy received it: Piano sends an application's events one at a time, in order.
    pub received_at: i64,
    pub now: i64,
}

/// The customer of this Piano user: by uid, else the one with its email (linked now), else a new one.
async fn customer_of(store: &dyn Store, d: &Delivery<'_>, uid: &str) -> Result<Versioned<Customer>, SyncError> {
    let identity = Identity::Piano(uid.to_owned());
    let email = d.event.user_email.as_deref().and_then(|e| Email::parse(e).ok());
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
        }
        if let Some(found) = customers::find(store, d.publication, &identity).await? {
            return Ok(found);
        }
        let by_email = match &email {
            Some(email) => customers::find(store, d.publication, &Identity::Email(email.clone())).await?,
            None => None,
        };
        let result = match by_email {
            // One email, two Piano accounts: the record keeps its first.
            Some(found) if found.value.piano_uid.is_some() => {
                tracing::warn!(customer = %found.value.id, "email already linked to another Piano user");
                return Ok(found);
            }
            Some(found) => {
                let mut after = found.value.clone();
                after.piano_uid = Some(uid.to_owned());
                after.updated_at = d.now;
                customers::update(store, &found.value, &after, found.version)
                    .await
                    .map(|version| Versioned { value: after, version })
            }
            None => {
                let mut candidate = Customer::new(d.publication.clone(), d.now);
                candidate.email = email.clone();
                candidate.piano_uid = Some(uid.to_owned());
                customers::create(store, &candidate).await.map(|()| Versioned { value: candidate, version: 1 })
            }
        };
        match result {
            Ok(linked) => return Ok(linked),
            // Someone linked or created meanwhile: the next round finds their write.
            Err(CustomerWriteError::Stale | CustomerWriteError::Taken { .. } | CustomerWriteError::Extra(_)) => {}
            Err(CustomerWriteError::Store(e)) => return Err(e.into()),
        }
    }
    Err(SyncError::Contention)
}

fn access_change(d: &Delivery<'_>) -> Option<(ActivityKind, EntitlementStatus)> {
    let kind = d.event.kind.as_deref().unwrap_or_default();
    match kind {
        k if k.starts_with("access_granted") => Some((ActivityKind::AccessGranted, EntitlementStatus::Active)),
        k if k.starts_with("access_modified") => Some((ActivityKind::AccessModified, EntitlementStatus::Active)),
        k if k.starts_with("access_revoked") => Some((ActivityKind::AccessRevoked, EntitlementStatus::Revoked)),
        _ => None,
    }
}

pub async fn apply(store: &dyn Store, d: &Delivery<'_>) -> Result<Outcome, SyncError> {
    let ledger = || ledger::applied(d.publication, PROVIDER, d.event_id, d.now);
    let Some(uid) = d.event.uid.clone().filter(|u| !u.is_empty()) else {
        return record_seen(store, ledger()?, Outcome::Ignored("Piano event without a user".into())).await;
    };
    let access = access_change(d).zip(d.event.rid.clone().filter(|r| !r.is_empty()));
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
        }
        let found = customer_of(store, d, &uid).await?;
        let Some(((kind, status), rid)) = access.clone() else {
            return record_seen(store, ledger()?, Outcome::Applied).await;
        };
        let mut after = found.value.clone();
        let entitlement = Entitlement {
            resource_id: rid.clone(),
            term_id: d.event.term_id.clone(),
            expires_at: d.event.expires,
            status,
        };
        let mut slot = after.piano.entitlements.remove(&rid);
        // Same second, different content: Piano delivers in order, so the later delivery is the later state.
        if Tracked::merge(&mut slot, entitlement.clone(), d.received_at) == Merge::Undecided {
            Tracked::replace(&mut slot, entitlement, d.received_at);
        }
        if let Some(value) = slot {
            after.piano.entitlements.insert(rid.clone(), value);
        }
        let verb = match kind {
            ActivityKind::AccessGranted => "granted",
            ActivityKind::AccessRevoked => "revoked",
            _ => "modified",
        };
        let activity = Activity {
            key: format!("{kind:?}:{}", d.event_id),
            at: d.received_at,
            kind,
            summary: format!("Access to {rid} {verb}"),
            amount: None,
            provider: PROVIDER.into(),
            account: None,
            object_id: Some(rid.clone()),
            event_id: Some(d.event_id.to_owned()),
        };
        let extra = vec![ledger()?, activities::put(d.publication, &after.id, &activity)?];
        after.updated_at = d.now;
        match customers::update_with(store, &found.value, &after, found.version, extra).await {
            Ok(_) => return Ok(Outcome::Applied),
            Err(CustomerWriteError::Extra(0)) => return Ok(Outcome::Duplicate),
            Err(CustomerWriteError::Stale | CustomerWriteError::Taken { .. } | CustomerWriteError::Extra(_)) => {}
            Err(CustomerWriteError::Store(e)) => return Err(e.into()),
        }
    }
    Err(SyncError::Contention)
}
