//! Applies provider events to the store: idempotent (each event's effects are written in one
//! transaction with its ledger entry, which exists only once) and order-safe (every object keeps
//! the provider time of its state and never goes back; same-second ties are settled by the provider's API).

pub mod envelope;
pub mod identity;
pub mod piano;
pub mod stripe;
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

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Delivered before: nothing changed.
    Duplicate,
    /// A type the CRM does not apply, or an object it cannot attach to a customer: recorded as seen.
    Ignored(String),
}
