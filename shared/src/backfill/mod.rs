//! Historical backfill of a Stripe account: every product, price, customer, subscription (all
//! statuses), invoice, charge and refund, listed page by page and applied by the webhook path's own
//! code (`sync::stripe::apply`, through a `backfilled` event per object), with a checkpoint per object
//! type after every page, a request rate it keeps under, and a lease so one runner advances a job.
//! `crm backfill`, the `backfill` Lambda (the jobs queue) and `crm serve` all run `Runner`; the Piano
//! history import (`PianoRunner`) shares its jobs, checkpoints and lease.

pub mod objects;
pub mod piano;
pub mod piano_objects;
pub mod run;

pub use piano::PianoRunner;
pub use run::{Runner, Stop};

use crate::store::StoreError;
use crate::stripe::client::StripeError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Stripe API: {0}")]
    Stripe(#[from] StripeError),
    #[error("jobs queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error("applying a listed object: {0}")]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Account(#[from] crate::store::repo::publications::AccountError),
    #[error("no backfill was started for Stripe account {0}")]
    NotStarted(String),
    #[error("another runner holds this backfill until {until} (epoch seconds)")]
    Busy { until: i64 },
    #[error("another runner took this backfill over")]
    LeaseLost,
    #[error("the request rate must be 1 to 100 requests per second")]
    BadRate,
    #[error("a {0} stage in a job of another provider")]
    WrongKind(&'static str),
    #[error("Piano API: {0}")]
    Piano(#[from] crate::piano::client::PianoError),
    #[error("publication {0} has no Piano application")]
    NoPiano(String),
}

impl BackfillError {
    /// Whether running the job again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            BackfillError::Store(e) => e.is_transient(),
            BackfillError::Stripe(e) => e.is_transient(),
            BackfillError::Sync(e) => e.is_transient(),
            BackfillError::Piano(e) => e.is_transient(),
            BackfillError::Queue(_) | BackfillError::Busy { .. } | BackfillError::LeaseLost => true,
            _ => false,
        }
    }
}
