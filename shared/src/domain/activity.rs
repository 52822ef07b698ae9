//! The customer's timeline: one entry per payment, failure, refund, plan change, cancellation, …
//! An entry's key is derived from what it records (the invoice paid, the refund, the event), so the
//! same fact delivered twice, or by two event types (`invoice.paid` and `invoice.payment_succeeded`),
//! is one entry.

use serde::{Deserialize, Serialize};

use super::ids::AccountKey;
use super::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    CustomerCreated,
    CustomerDeleted,
    SubscriptionStarted,
    PlanChanged,
    CancellationScheduled,
    CancellationWithdrawn,
    SubscriptionCanceled,
    SubscriptionPaused,
    SubscriptionResumed,
    TrialWillEnd,
    PaymentSucceeded,
    PaymentFailed,
    Refund,
    CheckoutCompleted,
    AccessGranted,
    AccessModified,
    AccessRevoked,
    /// A provider's account was linked to the record (`sync::link`).
    IdentityLinked,
    /// A note written by an automation rule (`logActivity`).
    Note,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Unique within the customer; the same fact always gets the same key.
    pub key: String,
    /// Provider time of the fact, epoch seconds.
    pub at: i64,
    pub kind: ActivityKind,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountKey>,
    /// The provider object the entry is about (`in_…`, `sub_…`, `re_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The event that recorded it, for entries of one event (a failed attempt, a plan change); facts
    /// several event types announce (a payment, a refund) name none, so every delivery order agrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}
