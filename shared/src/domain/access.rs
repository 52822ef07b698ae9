//! What a customer may read, watch or download through Piano: one entitlement per resource (`rid`),
//! the latest access event's state of it, stamped like every provider state with its time.

use serde::{Deserialize, Serialize};

use super::billing::Progress;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntitlementStatus {
    Active,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entitlement {
    pub resource_id: String,
    pub term_id: Option<String>,
    /// Epoch seconds; `None`: no end.
    pub expires_at: Option<i64>,
    pub status: EntitlementStatus,
}

impl Progress for Entitlement {}
