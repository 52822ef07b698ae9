//! Applies provider events to the store: idempotent (each event's effects are written in one
//! transaction with its ledger entry, which exists only once) and order-safe (every object keeps
//! the provider time of its state and never goes back; same-second ties are settled by the provider's API).

pub mod envelope;
pub mod identity;
pub mod link;
pub mod piano;
pub mod stripe;
pub mod tally;
pub mod worker;

use crate::store::StoreError;
use crate::store::repo::customers::CustomerWriteError;
use crate::stripe::client::StripeError;
use crate::stripe::event::EventError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Stripe API: {0}")]
    Stripe(#[from] StripeError),
    #[error("Piano API: {0}")]
    Piano(#[from] crate::piano::client::PianoError),
    #[error("automation: {0}")]
    Automation(#[from] crate::automation::AutomationError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("bad queue message: {0}")]
    Message(String),
    #[error("publication {0} is not configured")]
    UnknownPublication(String),
    #[error("publication has no Stripe account {0}")]
    UnknownAccount(String),
    #[error("the customer kept changing concurrently; retry")]
    Contention,
}

impl SyncError {
    /// Whether a later attempt may succeed (the message is retried; otherwise it is still retried
    /// until the dead-letter queue takes it, but logged as an error to look at).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Store(e) => e.is_transient(),
            SyncError::Stripe(e) => e.is_transient(),
            SyncError::Piano(e) => e.is_transient(),
            SyncError::Automation(e) => e.is_transient(),
            SyncError::Contention => true,
            _ => false,
        }
    }
}

impl From<CustomerWriteError> for SyncError {
    fn from(e: CustomerWriteError) -> Self {
        match e {
            CustomerWriteError::Store(e) => SyncError::Store(e),
            CustomerWriteError::Stale | CustomerWriteError::Taken { .. } | CustomerWriteError::Extra(_) => {
                SyncError::Contention
            }
        }
    }
}

/// Rounds of read-merge-write before giving up on a record that keeps changing (the message is then
/// retried by the queue).
pub(crate) const ROUNDS: u32 = 10;

/// Waits a random while before round `round` retries, so racing writers stop colliding (full jitter).
pub(crate) async fn contention_pause(round: u32) {
    use rand::Rng;
    let cap_ms = (4u64 << round.min(6)).min(250);
    let wait = rand::rng().random_range(0..=cap_ms);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

/// Writes an event's ledger entry alone (an event that changes no record): `outcome` the first
/// time, `Duplicate` when the event was recorded before.
pub(crate) async fn record_seen(
    store: &dyn crate::store::Store,
    ledger_entry: crate::store::WriteOp,
    outcome: Outcome,
) -> Result<Outcome, SyncError> {
    match store.write(vec![ledger_entry]).await {
        Ok(()) => Ok(outcome),
        Err(StoreError::ConditionFailed { .. }) => Ok(Outcome::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// What writing a customer's new state did (`commit`).
pub(crate) enum Committed {
    Applied,
    /// The event's ledger entry exists: delivered before, nothing written.
    Duplicate,
    /// The email the record would take belongs to another customer; merge again keeping its own.
    EmailTaken,
    /// The record changed meanwhile: merge again on its new state.
    Retry,
}

/// The event a commit applies: its provider time and id (for the revenue movements it makes), the
/// timeline entries it made and the publication's settings (for the automations it fires).
pub(crate) struct Fact<'a> {
    pub at: i64,
    pub provider: &'a str,
    pub event_id: &'a str,
    pub activities: &'a [crate::domain::activity::Activity],
    pub settings: &'a crate::domain::settings::PublicationSettings,
    /// Receives the automations the commit recorded as pending.
    pub fired: &'a FiredSink,
}

/// The triggers an applied event fired that some rule of the publication matches, handed from the
/// commit to the worker, which runs them once the event's transaction is in.
#[derive(Default)]
pub struct FiredSink(std::sync::Mutex<Vec<crate::automation::Fired>>);

impl FiredSink {
    fn set(&self, fired: Vec<crate::automation::Fired>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = fired;
    }

    pub fn take(&self) -> Vec<crate::automation::Fired> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Writes `after` (when it differs from `found`) with `extra` (the event's ledger entry first, then its
/// timeline entries and other items) and the MRR movements between the two states, in one transaction.
pub(crate) async fn commit(
    store: &dyn crate::store::Store,
    found: &crate::store::repo::Versioned<crate::domain::customer::Customer>,
    mut after: crate::domain::customer::Customer,
    mut extra: Vec<crate::store::WriteOp>,
    fact: &Fact<'_>,
    now: i64,
) -> Result<Committed, SyncError> {
    use crate::domain::customer::Identity;
    let (movements, ever) = crate::domain::revenue::movements(&found.value, &after, fact.at, fact.event_id);
    let fired: Vec<_> = crate::automation::fired_by(&found.value, &after, fact.activities, fact.event_id)
        .into_iter()
        .filter(|f| !crate::automation::matching(fact.settings, f).is_empty())
        .collect();
    // The outbox: pending automations are written with the event, so a crash before they run leaves
    // them for the redelivery (which finds the event a duplicate, and this item).
    if !fired.is_empty() {
        extra.push(crate::store::repo::ledger::pending_put(
            &after.publication_id,
            fact.provider,
            fact.event_id,
            &fired,
        )?);
    }
    after.mrr_currencies = ever;
    let recorded_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    for movement in &movements {
        extra.push(crate::store::repo::revenue::put(&after.publication_id, movement, recorded_ms)?);
    }
    let result = if after == found.value {
        store.write(extra).await.map_err(|e| match e {
            StoreError::ConditionFailed { index } => CustomerWriteError::Extra(index),
            other => CustomerWriteError::Store(other),
        })
    } else {
        after.updated_at = now;
        crate::store::repo::customers::update_with(store, &found.value, &after, found.version, extra).await.map(|_| ())
    };
    match result {
        Ok(()) => {
            fact.fired.set(fired);
            Ok(Committed::Applied)
        }
        Err(CustomerWriteError::Extra(0)) => Ok(Committed::Duplicate),
        Err(CustomerWriteError::Taken { identity: Some(Identity::Email(email)), holder }) => {
            tracing::warn!(%email, holder = ?holder, customer = %found.value.id, "email belongs to another customer; kept the record's own");
            Ok(Committed::EmailTaken)
        }
        Err(CustomerWriteError::Stale | CustomerWriteError::Taken { .. } | CustomerWriteError::Extra(_)) => {
            Ok(Committed::Retry)
        }
        Err(CustomerWriteError::Store(e)) => Err(e.into()),
    }
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Delivered before: nothing changed.
    Duplicate,
    /// A type the CRM does not apply, or an object it cannot attach to a customer: recorded as seen.
    Ignored(String),
}
