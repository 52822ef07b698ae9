//! Linking a Piano user to an existing customer, only on evidence that the Piano user is that
//! person: Piano confirmed the reader's email (on their first visit), a Stripe customer or checkout
//! of the record names the uid in its metadata, or an operator said so. A Piano event alone never
//! links by email (`sync::piano`): anyone can open a Piano account claiming someone's address.
//!
//! When the uid already has a record of its own (made by its Piano events), that record is folded
//! into the target: its Piano states, payments, refunds and timeline move over, and it is deleted in
//! the transaction that gives the target the uid. A record holding Stripe customers is never folded
//! automatically: that is two people, or a merge for an operator to decide.

use std::fmt;

use super::{ROUNDS, SyncError, contention_pause};
use crate::domain::activity::{Activity, ActivityKind};
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::{CustomerId, PublicationId};
use crate::store::Store;
use crate::store::repo::customers::{self, CustomerWriteError};
use crate::store::repo::{Versioned, activities, payments};

/// Why a Piano user is linked to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Piano's token verification said the reader's email needs no confirmation, and the record holds it.
    ConfirmedEmail,
    /// A Stripe customer or checkout of the record carries the uid in its metadata.
    StripeMetadata,
    /// An operator linked them (`POST …/customers/{id}/piano-link`).
    Operator,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Evidence::ConfirmedEmail => "email confirmed at Piano",
            Evidence::StripeMetadata => "named in Stripe metadata",
            Evidence::Operator => "linked by an operator",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("customer not found")]
    CustomerNotFound,
    #[error("the customer is linked to another Piano user")]
    OtherPianoUser,
    /// The uid's record has Stripe customers of its own: folding it is not for a link to decide.
    #[error("the Piano user belongs to customer {0}, which has Stripe customers")]
    HeldElsewhere(CustomerId),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<crate::store::StoreError> for LinkError {
    fn from(e: crate::store::StoreError) -> Self {
        LinkError::Sync(e.into())
    }
}

/// Whether `customer` has anything of Stripe's.
fn has_stripe(customer: &Customer) -> bool {
    !customer.stripe_customer_ids.is_empty() || !customer.stripe.profiles.is_empty()
}

/// Gives customer `target` the Piano uid `uid`, folding in the uid's own record if it has one.
/// Linking again is a no-op.
pub async fn link_piano(
    store: &dyn Store,
    publication: &PublicationId,
    target: &CustomerId,
    uid: &str,
    evidence: Evidence,
    now: i64,
) -> Result<Versioned<Customer>, LinkError> {
    let identity = Identity::Piano(uid.to_owned());
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
        }
        let found = customers::get(store, publication, target).await?.ok_or(LinkError::CustomerNotFound)?;
        match found.value.piano_uid.as_deref() {
            Some(held) if held == uid => return Ok(found),
            Some(_) => return Err(LinkError::OtherPianoUser),
            None => {}
        }
        let holder = customers::find(store, publication, &identity).await?;
        let mut after = found.value.clone();
        after.piano_uid = Some(uid.to_owned());
        after.updated_at = now;
        let entry = Activity {
            key: format!("link.piano:{uid}"),
            at: now,
            kind: ActivityKind::IdentityLinked,
            summary: format!("Piano user {uid} linked: {evidence}"),
            amount: None,
            provider: "piano".into(),
            account: None,
            object_id: Some(uid.to_owned()),
            event_id: None,
        };
        let extra = vec![activities::put(publication, &after.id, &entry)?];
        let result = match holder {
            None => customers::update_with(store, &found.value, &after, found.version, extra).await,
            Some(source) if source.value.id == found.value.id => return Ok(source),
            Some(source) if has_stripe(&source.value) => return Err(LinkError::HeldElsewhere(source.value.id)),
            Some(source) => {
                payments::move_out(store, &source.value).await?;
                let moved = customers::copy_partition(store, publication, &source.value.id, &found.value.id).await?;
                after.piano.absorb(&source.value.piano);
                // The name may come from the Piano profile; the email stays the record's own, the
                // address the evidence was about.
                after.refresh_contact();
                after.email = found.value.email.clone();
                tracing::info!(from = %source.value.id, to = %found.value.id, moved, %evidence, "Piano user's record folded in");
                customers::absorb(store, &found.value, &after, found.version, &source, extra).await
            }
        };
        match result {
            Ok(version) => return Ok(Versioned { value: after, version }),
            Err(CustomerWriteError::Stale | CustomerWriteError::Taken { .. } | CustomerWriteError::Extra(_)) => {}
            Err(CustomerWriteError::Store(e)) if e.is_transient() => {}
            Err(CustomerWriteError::Store(e)) => return Err(e.into()),
        }
    }
    Err(SyncError::Contention.into())
}
