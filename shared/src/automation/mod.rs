//! The automations engine: rules from publication settings (`automations`) run on what events do to a
//! customer. `fired_by` maps the timeline entries an applied event produced to triggers; `run` runs the
//! matching rules' actions (stage, task, note, notification), each at most once per (event, rule)
//! across retries and crashed attempts.

mod actions;
mod fired;
pub mod notify;
mod rules;
mod run;
mod template;

pub use actions::ACTION_LEDGER;
pub use fired::{Fired, fired_by};
pub use rules::{matches, matching, rule_key};
pub use run::{CLAIM_LEDGER, HOLD_SECONDS, claim_id, run};
pub use template::render;

use crate::domain::ids::CustomerId;
use crate::queue::QueueError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("notification not queued: {0}")]
    Queue(#[from] QueueError),
    /// Another attempt holds the rule's claim (until it completes or expires).
    #[error("automation {0} is being run by another attempt")]
    InProgress(String),
    #[error("customer {0} not found")]
    CustomerNotFound(CustomerId),
    #[error("the customer kept changing concurrently")]
    Contention,
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl AutomationError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            AutomationError::Store(e) => e.is_transient(),
            AutomationError::Queue(e) => matches!(e, QueueError::Unavailable(_) | QueueError::Partial { .. }),
            AutomationError::InProgress(_) | AutomationError::Contention => true,
            AutomationError::CustomerNotFound(_) | AutomationError::Encode(_) => false,
        }
    }
}
