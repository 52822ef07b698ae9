//! A customer's Piano payments and refunds are stored in items of their own, like Stripe's invoices and
//! charges (`domain::payments`), so the customer item keeps its size however long the reader pays
//! through Piano. The item keeps what the record shows from them, `PianoFigures`: lifetime value, the
//! latest payment of each subscription (payment status) and whether any payment went through. Pure: the
//! store reads and writes the items (`store::repo::payments`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::billing::{Progress, Tracked};
use super::money::Totals;
use super::piano::{PianoPayment, PianoPaymentStatus, PianoRefund, PianoSide};

/// What a set of Piano payments and refunds adds to a customer record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PianoFigures {
    /// Completed payments less refunds, per currency.
    #[serde(default)]
    pub value: Totals,
    /// The latest payment of each subscription by receipt; under `""`, the latest naming none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latest: BTreeMap<String, LatestPayment>,
    /// Whether any payment went through.
    #[serde(default)]
    pub completed: bool,
}

/// A payment as the payment status needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestPayment {
    pub as_of: i64,
    pub id: String,
    pub status: PianoPaymentStatus,
}

impl LatestPayment {
    /// Receipt order; between payments received in the same microsecond, the id decides.
    fn order(&self) -> (i64, &str) {
        (self.as_of, &self.id)
    }
}

impl PianoFigures {
    pub fn is_empty(&self) -> bool {
        self.value.is_empty() && self.latest.is_empty() && !self.completed
    }

    /// Adds `other`; for the latest payments, the later of each pair (`other`'s on a tie: the newer state
    /// of the same payment).
    pub fn add(&mut self, other: &PianoFigures) {
        self.value.add_all(&other.value);
        for (subscription, payment) in &other.latest {
            let held = self.latest.get(subscription);
            if held.is_none_or(|held| held.order() <= payment.order()) {
                self.latest.insert(subscription.clone(), payment.clone());
            }
        }
        self.completed |= other.completed;
    }

    /// Takes out the value `add(other)` put in. The latest payments and `completed` stay: a payment's
    /// state never moves back (its receipt time only grows, a completed payment stays completed), and
    /// whoever takes a payment out adds its state back, as it is or newer, which supersedes the old.
    pub fn remove_value(&mut self, other: &PianoFigures) {
        for (currency, amount) in other.value.iter() {
            self.value.add(currency, amount.saturating_neg());
        }
    }

    pub fn of_payment(payment: &Tracked<PianoPayment>) -> Self {
        let state = &payment.state;
        let completed = state.status == PianoPaymentStatus::Completed;
        let mut figures = PianoFigures { completed, ..Default::default() };
        if let Some(amount) = state.amount.as_ref().filter(|_| completed) {
            figures.value.add(&amount.currency, amount.amount);
        }
        let latest = LatestPayment { as_of: payment.as_of, id: state.id.clone(), status: state.status };
        figures.latest.insert(state.subscription_id.clone().unwrap_or_default(), latest);
        figures
    }

    pub fn of_refund(refund: &PianoRefund) -> Self {
        let mut figures = PianoFigures::default();
        figures.value.add(&refund.amount.currency, refund.amount.amount.saturating_neg());
        figures
    }

    /// The latest payment for subscription `id`, or naming none.
    pub fn latest_of(&self, id: &str) -> Option<&LatestPayment> {
        [self.latest.get(id), self.latest.get("")].into_iter().flatten().max_by(|a, b| a.order().cmp(&b.order()))
    }
}

/// The payments and refunds a `PianoSide` holds are those an operation read from their items; `rest`
/// has the figures of the others.
impl PianoSide {
    /// Every payment's and refund's figures: the rest's and the maps'.
    pub fn figures(&self) -> PianoFigures {
        let mut figures = self.rest.clone();
        for payment in self.payments.values() {
            figures.add(&PianoFigures::of_payment(payment));
        }
        for refund in self.refunds.values() {
            figures.add(&PianoFigures::of_refund(refund));
        }
        figures
    }

    /// Takes in a payment read from its item (once: a second read of the same payment is ignored).
    pub fn adopt_payment(&mut self, payment: Tracked<PianoPayment>) {
        if self.payments.contains_key(&payment.state.id) {
            return;
        }
        self.rest.remove_value(&PianoFigures::of_payment(&payment));
        self.payments.insert(payment.state.id.clone(), payment);
    }

    /// Takes in a refund read from its item under `key` (once, like `adopt_payment`).
    pub fn adopt_refund(&mut self, key: &str, refund: PianoRefund) {
        if self.refunds.contains_key(key) {
            return;
        }
        self.rest.remove_value(&PianoFigures::of_refund(&refund));
        self.refunds.insert(key.to_owned(), refund);
    }

    /// Takes in the Piano side of another record of the same reader (a Piano user linked to this
    /// record after it had a record of its own): each state where it is newer than the one held, and
    /// the figures of all its payments and refunds, whose items the caller copies alongside.
    pub fn absorb(&mut self, other: &PianoSide) {
        fn newer<T: Clone + PartialEq + Progress>(slot: &mut Option<Tracked<T>>, incoming: &Tracked<T>) {
            // Undecided (same time, other content) keeps the held state: this record's own events win.
            let _ = Tracked::merge(slot, incoming.state.clone(), incoming.as_of);
        }
        fn keyed<T: Clone + PartialEq + Progress>(
            map: &mut BTreeMap<String, Tracked<T>>,
            other: &BTreeMap<String, Tracked<T>>,
        ) {
            for (key, incoming) in other {
                let mut slot = map.remove(key);
                newer(&mut slot, incoming);
                if let Some(state) = slot {
                    map.insert(key.clone(), state);
                }
            }
        }
        if let Some(profile) = &other.profile {
            newer(&mut self.profile, profile);
        }
        keyed(&mut self.entitlements, &other.entitlements);
        keyed(&mut self.subscriptions, &other.subscriptions);
        self.rest.add(&other.figures());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::PaymentStatus;
    use crate::domain::money::{Currency, Money};
    use crate::domain::piano::PianoSubscription;

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    fn payment(id: &str, status: PianoPaymentStatus, as_of: i64, subscription: &str) -> Tracked<PianoPayment> {
        let state = PianoPayment {
            id: id.into(),
            status,
            amount: Some(Money::new(999, usd())),
            subscription_id: Some(subscription.into()).filter(|s: &String| !s.is_empty()),
        };
        Tracked { as_of, state }
    }

    /// `side` as the customer item stores it and an operation reads it back: the figures, no states.
    fn stored(side: &PianoSide) -> PianoSide {
        serde_json::from_value(serde_json::to_value(side).unwrap()).unwrap()
    }

    fn live(id: &str) -> Tracked<PianoSubscription> {
        let state = PianoSubscription {
            id: id.into(),
            status: "active".into(),
            term_id: None,
            resource_id: None,
            expires_at: None,
        };
        Tracked { as_of: 1, state }
    }

    #[test]
    fn the_stored_figures_give_what_the_states_give() {
        use PianoPaymentStatus::*;
        let mut side = PianoSide::default();
        side.subscriptions.insert("S1".into(), live("S1"));
        for p in [payment("P1", Completed, 10, "S1"), payment("P2", Failed, 20, "S1"), payment("P3", Completed, 5, "")]
        {
            side.payments.insert(p.state.id.clone(), p);
        }
        side.refunds
            .insert("evt_r".into(), PianoRefund { payment_id: Some("P1".into()), amount: Money::new(300, usd()) });
        let read = stored(&side);
        assert!(read.payments.is_empty() && read.refunds.is_empty() && !read.inline);
        assert_eq!((read.payment_status(), read.lifetime_value()), (side.payment_status(), side.lifetime_value()));
        assert_eq!(side.payment_status(), PaymentStatus::Overdue, "S1's latest payment failed");
        assert_eq!(side.lifetime_value().get(&usd()), 2 * 999 - 300);

        // The failed payment read from its item and paid: current, and counted once.
        let mut touched = read.clone();
        touched.adopt_payment(side.payments["P2"].clone());
        touched.adopt_payment(side.payments["P2"].clone());
        assert_eq!(touched.figures().value, read.figures().value, "reading changes nothing");
        touched.payments.insert("P2".into(), payment("P2", Completed, 30, "S1"));
        let after = stored(&touched);
        assert_eq!(after.payment_status(), PaymentStatus::Current);
        assert_eq!(after.lifetime_value().get(&usd()), 3 * 999 - 300);

        // A new failed payment naming no subscription is the latest for every one.
        let mut next = after.clone();
        next.payments.insert("P4".into(), payment("P4", Failed, 40, ""));
        assert_eq!(stored(&next).payment_status(), PaymentStatus::Overdue);
        // A refund read and read again counts once.
        let mut refunded = stored(&next);
        refunded.adopt_refund("evt_r", side.refunds["evt_r"].clone());
        refunded.adopt_refund("evt_r", side.refunds["evt_r"].clone());
        assert_eq!(stored(&refunded).lifetime_value(), stored(&next).lifetime_value());
    }

    #[test]
    fn a_side_without_payments_stores_no_figures() {
        let mut side = PianoSide::default();
        side.subscriptions.insert("S1".into(), live("S1"));
        let json = serde_json::to_value(&side).unwrap();
        assert!(json.get("figures").is_none(), "{json}");
        assert_eq!(stored(&side), side);
    }
}
