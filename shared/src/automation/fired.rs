//! What fires automation rules: the timeline entries an applied event produced, mapped to triggers.

use serde::{Deserialize, Serialize};

use crate::domain::activity::{Activity, ActivityKind};
use crate::domain::automation::Trigger;
use crate::domain::customer::Customer;
use crate::domain::ids::CustomerId;
use crate::domain::money::{Currency, Money};

/// One trigger fired by an applied event for a customer. The worker keeps these with the event's
/// ledger entry and hands them to `run`, after applying and again on redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fired {
    pub trigger: Trigger,
    pub customer_id: CustomerId,
    pub event_id: String,
    /// Provider time of what happened, epoch seconds.
    pub at: i64,
    /// The payment, failure or refund amount; for an upgrade or downgrade, how much the customer's
    /// MRR changed (when it changed in one currency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// Products and prices the customer holds after the event (live subscriptions; Piano resources count
    /// as products), plus those of the subscription the entry is about (so a cancellation names its plan).
    #[serde(default)]
    pub product_ids: Vec<String>,
    #[serde(default)]
    pub price_ids: Vec<String>,
    pub summary: String,
    pub provider: String,
    /// The timeline entry's key when it records a fact several event types announce (`payment:in_…`
    /// for both `invoice.paid` and `invoice.payment_succeeded`, `refund:re_…`): rules then run once
    /// per fact rather than once per announcing event. `None`: once per event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fact: Option<String>,
}

impl Fired {
    /// What a rule runs at most once for: the fact, else the event.
    pub fn occurrence(&self) -> &str {
        self.fact.as_deref().unwrap_or(&self.event_id)
    }
}

/// The triggers fired by an event that turned `before` into `after` and produced `activities` (its
/// timeline entries). At most one `Fired` per trigger: the first entry of that kind.
pub fn fired_by(before: &Customer, after: &Customer, activities: &[Activity], event_id: &str) -> Vec<Fired> {
    let mut out: Vec<Fired> = Vec::new();
    for activity in activities {
        let (trigger, amount) = match activity.kind {
            ActivityKind::PaymentSucceeded => (Trigger::PaymentSucceeded, activity.amount.clone()),
            ActivityKind::PaymentFailed => (Trigger::PaymentFailed, activity.amount.clone()),
            ActivityKind::SubscriptionCanceled => (Trigger::SubscriptionCanceled, activity.amount.clone()),
            ActivityKind::TrialWillEnd => (Trigger::TrialWillEnd, activity.amount.clone()),
            ActivityKind::Refund => (Trigger::Refund, activity.amount.clone()),
            ActivityKind::AccessRevoked => (Trigger::AccessRevoked, activity.amount.clone()),
            ActivityKind::PlanChanged => match mrr_change(before, after) {
                Some(change) => change,
                None => continue,
            },
            _ => continue,
        };
        if out.iter().any(|f| f.trigger == trigger) {
            continue;
        }
        let mut held = Held::default();
        held.live(after);
        if let Some(object) = activity.object_id.as_deref() {
            // Providers' objects stay on the record once ended (a canceled subscription keeps its items).
            held.object(after, object);
        }
        let (product_ids, price_ids) = held.finish();
        out.push(Fired {
            trigger,
            customer_id: after.id.clone(),
            event_id: event_id.to_owned(),
            at: activity.at,
            amount,
            product_ids,
            price_ids,
            summary: activity.summary.clone(),
            provider: activity.provider.clone(),
            fact: activity.event_id.is_none().then(|| activity.key.clone()),
        });
    }
    out
}

/// Upgrade or downgrade by the sign of the MRR change summed over currencies; no change, neither.
/// The amount is the change when exactly one currency moved.
fn mrr_change(before: &Customer, after: &Customer) -> Option<(Trigger, Option<Money>)> {
    let (old, new) = (before.stripe.mrr(), after.stripe.mrr());
    let mut currencies: Vec<&Currency> = old.iter().chain(new.iter()).map(|(c, _)| c).collect();
    currencies.sort();
    currencies.dedup();
    let changes: Vec<(&Currency, i64)> = currencies
        .into_iter()
        .map(|c| (c, new.get(c).saturating_sub(old.get(c))))
        .filter(|(_, delta)| *delta != 0)
        .collect();
    let total = changes.iter().fold(0i64, |sum, (_, delta)| sum.saturating_add(*delta));
    let trigger = match total.signum() {
        1 => Trigger::SubscriptionUpgraded,
        -1 => Trigger::SubscriptionDowngraded,
        _ => return None,
    };
    let amount = match changes.as_slice() {
        [(currency, delta)] => Some(Money::new(delta.saturating_abs(), **currency)),
        _ => None,
    };
    Some((trigger, amount))
}

#[derive(Default)]
struct Held {
    products: Vec<String>,
    prices: Vec<String>,
}

impl Held {
    /// Every live subscription's products and prices; Piano resources as products.
    fn live(&mut self, customer: &Customer) {
        for sub in customer.stripe.subscriptions.values().filter(|s| s.state.is_live()) {
            self.stripe_subscription(customer, &sub.state.id);
        }
        for sub in customer.piano.subscriptions.values().filter(|s| s.state.is_live()) {
            self.products.extend(sub.state.resource_id.clone());
        }
    }

    fn stripe_subscription(&mut self, customer: &Customer, id: &str) {
        if let Some(sub) = customer.stripe.subscriptions.get(id) {
            for item in &sub.state.items {
                self.prices.push(item.price.price_id.clone());
                self.products.extend(item.price.product_id.clone());
            }
        }
    }

    /// What the entry's object (a subscription, an invoice, a refund or charge, a Piano subscription,
    /// payment or resource) was bought through, following the links the customer holds.
    fn object(&mut self, customer: &Customer, object: &str) {
        let billing = &customer.stripe;
        let charge = billing.refunds.get(object).and_then(|r| r.state.charge_id.as_deref()).unwrap_or(object);
        let invoice = billing.charges.get(charge).and_then(|c| c.state.invoice_id.as_deref()).unwrap_or(charge);
        let subscription =
            billing.invoices.get(invoice).and_then(|i| i.state.subscription_id.as_deref()).unwrap_or(invoice);
        self.stripe_subscription(customer, subscription);

        let piano = &customer.piano;
        let piano_sub = piano.payments.get(object).and_then(|p| p.state.subscription_id.as_deref()).unwrap_or(object);
        if let Some(sub) = piano.subscriptions.get(piano_sub) {
            self.products.extend(sub.state.resource_id.clone());
        }
        if let Some(entitlement) = piano.entitlements.get(object) {
            self.products.push(entitlement.state.resource_id.clone());
        }
    }

    fn finish(mut self) -> (Vec<String>, Vec<String>) {
        for list in [&mut self.products, &mut self.prices] {
            list.sort();
            list.dedup();
        }
        (self.products, self.prices)
    }
}
