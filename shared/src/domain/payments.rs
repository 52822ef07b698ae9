//! A customer's Stripe invoices, charges and refunds are stored in items of their own (one per
//! invoice, one per charge with its refunds), so the customer item keeps its size however long the
//! customer pays. The item keeps what the record shows from them, `PaymentFigures`: lifetime value,
//! the invoices past due and how many invoices and charges there are. Pure: the store reads and
//! writes the items (`store::repo::payments`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::billing::{ChargeState, InvoiceState, RefundState, StripeBilling, Tracked};
use super::money::Totals;

/// What a set of invoices and charge groups adds to a customer record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFigures {
    /// Paid invoices less refunds, per currency.
    #[serde(default)]
    pub value: Totals,
    /// Invoices whose payment was attempted and failed (`display_status` past due).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub past_due: BTreeSet<String>,
    /// Invoices and charges.
    #[serde(default)]
    pub count: u64,
}

impl PaymentFigures {
    pub fn add(&mut self, other: &PaymentFigures) {
        self.value.add_all(&other.value);
        self.past_due.extend(other.past_due.iter().cloned());
        self.count = self.count.saturating_add(other.count);
    }

    /// Takes out what `add(other)` put in. A currency whose amount comes back to zero is kept, as
    /// the figure computed from the states keeps it.
    pub fn remove(&mut self, other: &PaymentFigures) {
        for (currency, amount) in other.value.iter() {
            self.value.add(currency, amount.saturating_neg());
        }
        for id in &other.past_due {
            self.past_due.remove(id);
        }
        self.count = self.count.saturating_sub(other.count);
    }

    pub fn of_invoice(invoice: &InvoiceState) -> Self {
        let mut figures = PaymentFigures { count: 1, ..Default::default() };
        if invoice.status == "paid"
            && let Some(currency) = &invoice.currency
        {
            figures.value.add(currency, invoice.amount_paid);
        }
        if invoice.display_status() == "past_due" {
            figures.past_due.insert(invoice.id.clone());
        }
        figures
    }
}

/// A charge and its refunds, stored together because a charge's refunds count once, whether they
/// were seen as refund objects, as the charge's `amount_refunded`, or both. A refund with no charge
/// is a group of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<Tracked<ChargeState>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refunds: BTreeMap<String, Tracked<RefundState>>,
}

impl ChargeGroup {
    /// The group a refund belongs to: its charge's, else its own.
    pub fn key_of_refund(refund: &RefundState) -> &str {
        refund.charge_id.as_deref().unwrap_or(&refund.id)
    }

    pub fn figures(&self) -> PaymentFigures {
        let mut figures = PaymentFigures { count: u64::from(self.charge.is_some()), ..Default::default() };
        let counted =
            self.refunds.values().map(|t| &t.state).filter(|r| matches!(r.status.as_str(), "succeeded" | "pending"));
        let mut refunded: i64 = 0;
        let mut currency = None;
        for refund in counted {
            refunded = refunded.saturating_add(refund.amount);
            currency = currency.or(refund.currency.as_ref());
        }
        if let Some(charge) = &self.charge {
            refunded = refunded.max(charge.state.amount_refunded);
            currency = currency.or(charge.state.currency.as_ref());
        }
        if let Some(currency) = currency {
            figures.value.add(currency, refunded.saturating_neg());
        }
        figures
    }
}

/// The invoices, charges and refunds a `StripeBilling` holds are those an operation read from their
/// items (or all of them, for a full record); `rest` has the figures of the others.
impl StripeBilling {
    /// The charge groups the maps hold.
    pub fn groups(&self) -> BTreeMap<String, ChargeGroup> {
        let mut groups: BTreeMap<String, ChargeGroup> = BTreeMap::new();
        for (id, charge) in &self.charges {
            groups.entry(id.clone()).or_default().charge = Some(charge.clone());
        }
        for (id, refund) in &self.refunds {
            let key = ChargeGroup::key_of_refund(&refund.state).to_owned();
            groups.entry(key).or_default().refunds.insert(id.clone(), refund.clone());
        }
        groups
    }

    /// Every invoice and charge group's figures: the rest's and the maps'.
    pub fn payment_figures(&self) -> PaymentFigures {
        let mut figures = self.rest.clone();
        for invoice in self.invoices.values() {
            figures.add(&PaymentFigures::of_invoice(&invoice.state));
        }
        for group in self.groups().values() {
            figures.add(&group.figures());
        }
        figures
    }

    pub fn holds_invoice(&self, id: &str) -> bool {
        self.invoices.contains_key(id)
    }

    pub fn holds_group(&self, key: &str) -> bool {
        self.charges.contains_key(key) || self.refunds.values().any(|r| ChargeGroup::key_of_refund(&r.state) == key)
    }

    /// Takes in an invoice read from its item (once: a second read of the same invoice is ignored).
    pub fn adopt_invoice(&mut self, invoice: Tracked<InvoiceState>) {
        if self.holds_invoice(&invoice.state.id) {
            return;
        }
        self.rest.remove(&PaymentFigures::of_invoice(&invoice.state));
        self.invoices.insert(invoice.state.id.clone(), invoice);
    }

    /// Takes in a charge group read from its item under `key` (once, like `adopt_invoice`).
    pub fn adopt_group(&mut self, key: &str, group: ChargeGroup) {
        if self.holds_group(key) {
            return;
        }
        self.rest.remove(&group.figures());
        if let Some(charge) = group.charge {
            self.charges.insert(key.to_owned(), charge);
        }
        self.refunds.extend(group.refunds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::AccountKey;
    use crate::domain::money::Currency;

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    fn invoice(id: &str, status: &str, paid: i64, attempts: u32) -> Tracked<InvoiceState> {
        let state = InvoiceState {
            account: AccountKey::parse("main").unwrap(),
            id: id.into(),
            number: None,
            status: status.into(),
            currency: Some(usd()),
            amount_due: 1000,
            amount_paid: paid,
            amount_remaining: 1000 - paid,
            attempt_count: attempts,
            created: Some(1),
            due_date: None,
            paid_at: None,
            period_start: None,
            period_end: None,
            subscription_id: None,
            hosted_invoice_url: None,
        };
        Tracked { as_of: 1, state }
    }

    fn charge(id: &str, refunded: i64) -> Tracked<ChargeState> {
        let state = ChargeState {
            account: AccountKey::parse("main").unwrap(),
            id: id.into(),
            status: "succeeded".into(),
            amount: 1000,
            amount_refunded: refunded,
            currency: Some(usd()),
            created: Some(1),
            invoice_id: None,
        };
        Tracked { as_of: 1, state }
    }

    fn refund(id: &str, charge: Option<&str>, amount: i64) -> Tracked<RefundState> {
        let state = RefundState {
            account: AccountKey::parse("main").unwrap(),
            id: id.into(),
            charge_id: charge.map(Into::into),
            status: "succeeded".into(),
            amount,
            currency: Some(usd()),
            created: Some(1),
        };
        Tracked { as_of: 1, state }
    }

    fn all() -> StripeBilling {
        let mut payments = StripeBilling::default();
        for i in [invoice("in_1", "paid", 1000, 1), invoice("in_2", "open", 0, 2), invoice("in_3", "draft", 0, 0)] {
            payments.invoices.insert(i.state.id.clone(), i);
        }
        payments.charges.insert("ch_1".into(), charge("ch_1", 300));
        // Seen as objects and on the charge: counted once, the larger of the two.
        payments.refunds.insert("re_1".into(), refund("re_1", Some("ch_1"), 200));
        payments.refunds.insert("re_2".into(), refund("re_2", Some("ch_1"), 200));
        // A refund whose charge was never seen, and one with no charge at all.
        payments.refunds.insert("re_3".into(), refund("re_3", Some("ch_gone"), 50));
        payments.refunds.insert("re_4".into(), refund("re_4", None, 25));
        payments
    }

    #[test]
    fn figures_count_paid_invoices_less_each_charges_refunds_once() {
        let figures = all().payment_figures();
        assert_eq!(figures.value.get(&usd()), 1000 - 400 - 50 - 25);
        assert_eq!(figures.past_due, BTreeSet::from(["in_2".to_owned()]));
        assert_eq!(figures.count, 4, "three invoices and one charge");
    }

    #[test]
    fn figures_are_the_same_whatever_is_read_from_items() {
        let full = all();
        let groups = full.groups();
        assert_eq!(groups.keys().collect::<Vec<_>>(), ["ch_1", "ch_gone", "re_4"]);
        // Stored: the item keeps only the figures; reading some items back changes no figure.
        let stored = StripeBilling { rest: full.payment_figures(), ..Default::default() };
        for (invoices, group_keys) in [
            (vec![], vec![]),
            (vec!["in_2"], vec!["ch_1"]),
            (vec!["in_1", "in_2", "in_3"], vec!["ch_1", "ch_gone", "re_4"]),
        ] {
            let mut read = stored.clone();
            for id in &invoices {
                read.adopt_invoice(full.invoices[*id].clone());
                read.adopt_invoice(full.invoices[*id].clone());
            }
            for key in &group_keys {
                read.adopt_group(key, groups[*key].clone());
                read.adopt_group(key, groups[*key].clone());
            }
            assert_eq!(read.payment_figures(), full.payment_figures(), "read {invoices:?} and {group_keys:?}");
        }
    }

    #[test]
    fn a_change_to_a_read_invoice_moves_the_figures() {
        let full = all();
        let mut read = StripeBilling { rest: full.payment_figures(), ..Default::default() };
        read.adopt_invoice(full.invoices["in_2"].clone());
        read.invoices.insert("in_2".into(), invoice("in_2", "paid", 1000, 2));
        let figures = read.payment_figures();
        assert_eq!(figures.value.get(&usd()), 2000 - 475);
        assert!(figures.past_due.is_empty());
        assert_eq!(figures.count, 4);
    }
}
