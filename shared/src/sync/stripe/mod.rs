//! The Stripe sync: an event (any API version) merged into the customer record it belongs to,
//! with its ledger entry and timeline entries in the same transaction.

mod activities;
mod apply;
pub(crate) mod map;

pub use apply::{Context, apply};
