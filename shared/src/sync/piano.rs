//! The Piano sync, first part: a Piano user becomes (or is linked to) the CRM customer, found by Piano
//! uid, then by normalised email, so the reader a Stripe customer already made is the same record.
//! Each event is recorded in the ledger under the id the proxy gave it, so a redelivery is a duplicate.

use super::{Outcome, ROUNDS, SyncError, contention_pause};
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::{Email, PublicationId};
use crate::piano::webhook::PianoEvent;
use crate::store::repo::customers::{self, CustomerWriteError};
use crate::store::repo::ledger;
use crate::store::{Store, StoreError, WriteOp};

const PROVIDER: &str = "piano";

async fn record(store: &dyn Store, op: WriteOp, outcome: Outcome) -> Result<Outcome, SyncError> {
    match store.write(vec![op]).await {
        Ok(()) => Ok(outcome),
        Err(StoreError::ConditionFailed { .. }) => Ok(Outcome::Duplicate),
        Err(e) => Err(e.into()),
    }
}

pub async fn apply(
    store: &dyn Store,
    publication: &PublicationId,
    event_id: &str,
    event: &PianoEvent,
    now: i64,
) -> Result<Outcome, SyncError> {
    let ledger = || ledger::applied(publication, PROVIDER, event_id, now);
    let Some(uid) = event.uid.clone().filter(|u| !u.is_empty()) else {
        return record(store, ledger()?, Outcome::Ignored("Piano event without a user".into())).await;
    };
    let email = event.user_email.as_deref().and_then(|e| Email::parse(e).ok());
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
        }
        if customers::find(store, publication, &Identity::Piano(uid.clone())).await?.is_some() {
            return record(store, ledger()?, Outcome::Applied).await;
        }
        let by_email = match &email {
            Some(email) => customers::find(store, publication, &Identity::Email(email.clone())).await?,
            None => None,
        };
        // Whether the write also recorded the event (a creation cannot carry the ledger item).
        let result = match by_email {
            Some(found) if found.value.piano_uid.is_some() => {
                // One email, two Piano accounts: the record keeps its first; the event is still recorded.
                tracing::warn!(customer = %found.value.id, "email already linked to another Piano user");
                return record(store, ledger()?, Outcome::Applied).await;
            }
            Some(found) => {
                let mut after = found.value.clone();
                after.piano_uid = Some(uid.clone());
                after.updated_at = now;
                customers::update_with(store, &found.value, &after, found.version, vec![ledger()?]).await.map(|_| true)
            }
            None => {
                let mut candidate = Customer::new(publication.clone(), now);
                candidate.email = email.clone();
                candidate.piano_uid = Some(uid.clone());
                customers::create(store, &candidate).await.map(|()| false)
            }
        };
        match result {
            Ok(true) => return Ok(Outcome::Applied),
            Ok(false) => return record(store, ledger()?, Outcome::Applied).await,
            Err(CustomerWriteError::Extra(0)) => return Ok(Outcome::Duplicate),
            // Someone linked or created meanwhile: the next round finds their write.
            Err(CustomerWriteError::Stale | CustomerWriteError::Taken { .. } | CustomerWriteError::Extra(_)) => {}
            Err(CustomerWriteError::Store(e)) => return Err(e.into()),
        }
    }
    Err(SyncError::Contention)
}
