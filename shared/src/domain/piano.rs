//! The Piano side of a customer: the user's profile, entitlements (what they may read), subscriptions
//! and payments, each the latest state seen and stamped with its time like every provider state, and
//! the figures they add to the record's payment status and lifetime value.
//! Piano's webhooks carry no event time and arrive one at a time, in order, so a state's time (`as_of`)
//! is when the proxy received it, in microseconds: receipt order is event order, also within a second.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::access::Entitlement;
use super::billing::{PaymentStatus, Progress, Tracked, empty_map};
use super::money::{Money, Totals};
use super::piano_payments::PianoFigures;

/// What Piano last said of the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PianoProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

impl Progress for PianoProfile {}

/// `active`, `canceled` (will not renew) or `expired` (ended), with what it grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PianoSubscription {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub term_id: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    /// Epoch seconds: end of access (the next renewal for a renewing one).
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl Progress for PianoSubscription {}

impl PianoSubscription {
    pub fn is_live(&self) -> bool {
        self.status == "active"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PianoPaymentStatus {
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PianoPayment {
    pub id: String,
    pub status: PianoPaymentStatus,
    #[serde(default)]
    pub amount: Option<Money>,
    #[serde(default)]
    pub subscription_id: Option<String>,
}

impl Progress for PianoPayment {
    fn progress(&self) -> i64 {
        // A payment that went through stays paid (a refund is its own fact).
        i64::from(self.status == PianoPaymentStatus::Completed)
    }
}

/// One refund, kept under the event that announced it, so partial refunds add up and a redelivery is
/// the same refund.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PianoRefund {
    #[serde(default)]
    pub payment_id: Option<String>,
    pub amount: Money,
}

/// The Piano side of a customer. Payments and refunds are stored in items of their own
/// (`domain::piano_payments`): the maps hold those an operation read, `rest` the figures of the others.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "StoredPiano")]
pub struct PianoSide {
    pub profile: Option<Tracked<PianoProfile>>,
    pub entitlements: BTreeMap<String, Tracked<Entitlement>>,
    pub subscriptions: BTreeMap<String, Tracked<PianoSubscription>>,
    pub payments: BTreeMap<String, Tracked<PianoPayment>>,
    pub refunds: BTreeMap<String, PianoRefund>,
    /// The figures of the payments and refunds not in the maps.
    pub rest: PianoFigures,
    /// Read from a customer item written before payments and refunds had items of their own: the maps
    /// came from that item, and the next write stores each in its own item.
    pub inline: bool,
}

/// `PianoSide` as the customer item holds it. Older items hold the payments and refunds themselves
/// and no `figures`; an item without payments holds neither.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPiano {
    #[serde(default)]
    profile: Option<Tracked<PianoProfile>>,
    #[serde(default)]
    entitlements: BTreeMap<String, Tracked<Entitlement>>,
    #[serde(default)]
    subscriptions: BTreeMap<String, Tracked<PianoSubscription>>,
    #[serde(default)]
    payments: BTreeMap<String, Tracked<PianoPayment>>,
    #[serde(default)]
    refunds: BTreeMap<String, PianoRefund>,
    #[serde(default)]
    figures: Option<PianoFigures>,
}

impl From<StoredPiano> for PianoSide {
    fn from(s: StoredPiano) -> Self {
        Self {
            inline: s.figures.is_none() && !(s.payments.is_empty() && s.refunds.is_empty()),
            profile: s.profile,
            entitlements: s.entitlements,
            subscriptions: s.subscriptions,
            payments: s.payments,
            refunds: s.refunds,
            rest: s.figures.unwrap_or_default(),
        }
    }
}

impl Serialize for PianoSide {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Stored<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            profile: Option<&'a Tracked<PianoProfile>>,
            #[serde(skip_serializing_if = "empty_map")]
            entitlements: &'a BTreeMap<String, Tracked<Entitlement>>,
            #[serde(skip_serializing_if = "empty_map")]
            subscriptions: &'a BTreeMap<String, Tracked<PianoSubscription>>,
            #[serde(skip_serializing_if = "PianoFigures::is_empty")]
            figures: PianoFigures,
        }
        Stored {
            profile: self.profile.as_ref(),
            entitlements: &self.entitlements,
            subscriptions: &self.subscriptions,
            figures: self.figures(),
        }
        .serialize(serializer)
    }
}

impl PianoSide {
    /// The same scale as Stripe's: overdue when a live subscription's last payment failed, current with
    /// a live subscription or any completed payment, cancelled when every subscription ended.
    pub fn payment_status(&self) -> PaymentStatus {
        let figures = self.figures();
        let subs: Vec<&PianoSubscription> = self.subscriptions.values().map(|t| &t.state).collect();
        let failed =
            |s: &PianoSubscription| figures.latest_of(&s.id).is_some_and(|p| p.status == PianoPaymentStatus::Failed);
        if subs.iter().any(|s| s.is_live() && failed(s)) {
            PaymentStatus::Overdue
        } else if subs.iter().any(|s| s.is_live()) {
            PaymentStatus::Current
        } else if !subs.is_empty() {
            PaymentStatus::Cancelled
        } else if figures.completed {
            PaymentStatus::Current
        } else {
            PaymentStatus::None
        }
    }

    /// Completed payments less refunds, per currency.
    pub fn lifetime_value(&self) -> Totals {
        self.figures().value
    }
}

/// Two providers' statuses as one: a failure anywhere shows; then any current billing; then a
/// cancellation; else none.
pub fn combined_status(a: PaymentStatus, b: PaymentStatus) -> PaymentStatus {
    let rank = |s: PaymentStatus| match s {
        PaymentStatus::Overdue => 3,
        PaymentStatus::Current => 2,
        PaymentStatus::Cancelled => 1,
        PaymentStatus::None => 0,
    };
    if rank(a) >= rank(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;

    fn sub(id: &str, status: &str) -> Tracked<PianoSubscription> {
        Tracked {
            as_of: 1,
            state: PianoSubscription {
                id: id.into(),
                status: status.into(),
                term_id: None,
                resource_id: None,
                expires_at: None,
            },
        }
    }

    fn payment(id: &str, status: PianoPaymentStatus, cents: i64, currency: &str) -> Tracked<PianoPayment> {
        Tracked {
            as_of: 1,
            state: PianoPayment {
                id: id.into(),
                status,
                amount: Some(Money::new(cents, Currency::parse(currency).unwrap())),
                subscription_id: None,
            },
        }
    }

    fn at(mut t: Tracked<PianoPayment>, as_of: i64, subscription: &str) -> Tracked<PianoPayment> {
        t.as_of = as_of;
        t.state.subscription_id = Some(subscription.into());
        t
    }

    #[test]
    fn status_follows_subscriptions_then_payments() {
        let mut side = PianoSide::default();
        assert_eq!(side.payment_status(), PaymentStatus::None);
        side.payments.insert("P1".into(), payment("P1", PianoPaymentStatus::Completed, 999, "usd"));
        assert_eq!(side.payment_status(), PaymentStatus::Current);
        side.subscriptions.insert("S1".into(), sub("S1", "expired"));
        assert_eq!(side.payment_status(), PaymentStatus::Cancelled);
        side.subscriptions.insert("S2".into(), sub("S2", "active"));
        assert_eq!(side.payment_status(), PaymentStatus::Current);
        // The latest payment of the live subscription decides, whatever order they were recorded in.
        side.payments.insert("P2".into(), at(payment("P2", PianoPaymentStatus::Failed, 999, "usd"), 20, "S2"));
        assert_eq!(side.payment_status(), PaymentStatus::Overdue);
        side.payments.insert("P0".into(), at(payment("P0", PianoPaymentStatus::Completed, 999, "usd"), 10, "S2"));
        assert_eq!(side.payment_status(), PaymentStatus::Overdue);
        side.payments.insert("P3".into(), at(payment("P3", PianoPaymentStatus::Completed, 999, "usd"), 30, "S2"));
        assert_eq!(side.payment_status(), PaymentStatus::Current);
        // A failed payment of an ended subscription is not overdue.
        side.payments.insert("P4".into(), at(payment("P4", PianoPaymentStatus::Failed, 999, "usd"), 40, "S1"));
        assert_eq!(side.payment_status(), PaymentStatus::Current);
    }

    #[test]
    fn lifetime_value_counts_completed_payments_less_refunds_per_currency() {
        let mut side = PianoSide::default();
        side.payments.insert("P1".into(), payment("P1", PianoPaymentStatus::Completed, 999, "usd"));
        side.payments.insert("P2".into(), payment("P2", PianoPaymentStatus::Failed, 999, "usd"));
        side.payments.insert("P3".into(), payment("P3", PianoPaymentStatus::Completed, 1500, "jpy"));
        let usd = Currency::parse("usd").unwrap();
        side.refunds.insert("e1".into(), PianoRefund { payment_id: Some("P1".into()), amount: Money::new(300, usd) });
        let ltv = side.lifetime_value();
        assert_eq!(ltv.get(&usd), 699);
        assert_eq!(ltv.get(&Currency::parse("jpy").unwrap()), 1500);
    }

    #[test]
    fn combined_status_shows_the_worst_news_first() {
        use PaymentStatus::*;
        assert_eq!(combined_status(Current, Overdue), Overdue);
        assert_eq!(combined_status(Cancelled, Current), Current);
        assert_eq!(combined_status(None, Cancelled), Cancelled);
        assert_eq!(combined_status(None, None), None);
    }
}
