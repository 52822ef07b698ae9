//! The timeline entries a Stripe event records. Each depends only on the event itself (never on
//! what the store held before), so every delivery order produces the same timeline.

use serde_json::Value;

use crate::domain::activity::{Activity, ActivityKind};
use crate::domain::billing::{InvoiceState, SubscriptionState};
use crate::domain::ids::AccountKey;
use crate::domain::money::{Currency, Money};
use crate::stripe::event::Event;

/// How an entry is keyed. A fact that several event types announce (a payment: `invoice.paid` and
/// `invoice.payment_succeeded`) is keyed by its object and names no event, so whichever arrives last
/// writes the same entry; an occurrence (a failed attempt, a plan change) is keyed by its event.
enum Entry {
    Fact(String),
    Occurrence,
}

pub struct Recorder<'a> {
    pub event: &'a Event,
    pub account: &'a AccountKey,
    pub out: Vec<Activity>,
}

impl<'a> Recorder<'a> {
    pub fn new(event: &'a Event, account: &'a AccountKey) -> Self {
        Self { event, account, out: Vec::new() }
    }

    fn push(
        &mut self,
        key: Entry,
        at: Option<i64>,
        kind: ActivityKind,
        summary: String,
        amount: Option<Money>,
        object: &str,
    ) {
        let (key, event_id) = match key {
            Entry::Fact(key) => (key, None),
            Entry::Occurrence => (format!("{kind:?}:{}", self.event.id), Some(self.event.id.to_string())),
        };
        self.out.push(Activity {
            key,
            at: at.unwrap_or(self.event.created),
            kind,
            summary,
            amount,
            provider: "stripe".into(),
            account: Some(self.account.clone()),
            object_id: Some(object.to_owned()),
            event_id,
        });
    }

    pub fn invoice(&mut self, invoice: &InvoiceState) {
        let money = |amount: i64| invoice.currency.map(|c| Money::new(amount, c));
        let shown = |amount: i64| money(amount).map_or_else(|| amount.to_string(), |m| m.display());
        match self.event.kind.as_str() {
            // Both event types announce the same payment: one entry, keyed by the invoice.
            "invoice.paid" | "invoice.payment_succeeded" if invoice.amount_paid > 0 => self.payment(invoice),
            "invoice.backfilled" if invoice.status == "paid" && invoice.amount_paid > 0 => self.payment(invoice),
            // Every failed attempt is its own entry.
            "invoice.payment_failed" => self.push(
                Entry::Occurrence,
                None,
                ActivityKind::PaymentFailed,
                format!("Payment of {} failed (attempt {})", shown(invoice.amount_due), invoice.attempt_count.max(1)),
                money(invoice.amount_due),
                &invoice.id,
            ),
            _ => {}
        }
    }

    /// One entry per paid invoice, whichever event types announce it.
    fn payment(&mut self, invoice: &InvoiceState) {
        let money = invoice.currency.map(|c| Money::new(invoice.amount_paid, c));
        let shown = money.as_ref().map_or_else(|| invoice.amount_paid.to_string(), Money::display);
        self.push(
            Entry::Fact(format!("payment:{}", invoice.id)),
            invoice.paid_at,
            ActivityKind::PaymentSucceeded,
            format!("Payment of {shown} received"),
            money,
            &invoice.id,
        );
    }

    pub fn refund(&mut self, id: &str, amount: i64, currency: Option<&Currency>, at: Option<i64>) {
        let money = currency.map(|c| Money::new(amount, *c));
        let shown = money.as_ref().map_or_else(|| amount.to_string(), Money::display);
        self.push(
            Entry::Fact(format!("refund:{id}")),
            at,
            ActivityKind::Refund,
            format!("Refund of {shown}"),
            money,
            id,
        );
    }

    pub fn subscription(&mut self, sub: &SubscriptionState, previous: Option<&Value>) {
        let plan = plan_label(sub);
        let id = sub.id.as_str();
        match self.event.kind.as_str() {
            "customer.subscription.created" => self.started(sub, &plan),
            "customer.subscription.deleted" => self.canceled(sub, &plan),
            // A listed subscription: the same facts its creation and end announced.
            "customer.subscription.backfilled" => {
                self.started(sub, &plan);
                if sub.status == "canceled" || sub.status == "incomplete_expired" {
                    self.canceled(sub, &plan);
                }
            }
            "customer.subscription.paused" => {
                self.simple(ActivityKind::SubscriptionPaused, format!("{plan} paused"), id)
            }
            "customer.subscription.resumed" => {
                self.simple(ActivityKind::SubscriptionResumed, format!("{plan} resumed"), id)
            }
            "customer.subscription.trial_will_end" => self.push(
                Entry::Fact(format!("trial-will-end:{id}:{}", sub.trial_end.unwrap_or(0))),
                None,
                ActivityKind::TrialWillEnd,
                format!("Trial of {plan} ends soon"),
                None,
                id,
            ),
            "customer.subscription.updated" => self.subscription_change(sub, previous, &plan),
            _ => {}
        }
    }

    fn started(&mut self, sub: &SubscriptionState, plan: &str) {
        let summary = format!("Subscribed to {plan}");
        let key = Entry::Fact(format!("subscription-started:{}", sub.id));
        self.push(key, sub.created, ActivityKind::SubscriptionStarted, summary, None, &sub.id);
    }

    fn canceled(&mut self, sub: &SubscriptionState, plan: &str) {
        let summary = format!("Subscription to {plan} canceled");
        let key = Entry::Fact(format!("subscription-canceled:{}", sub.id));
        self.push(key, sub.ended_at.or(sub.canceled_at), ActivityKind::SubscriptionCanceled, summary, None, &sub.id);
    }

    /// One entry per checkout session, whichever event types announce it.
    pub fn checkout(&mut self, id: &str, mode: &str, amount: Option<Money>) {
        let shown = amount.as_ref().map_or_else(String::new, |m| format!(" for {}", m.display()));
        let summary = format!("Checkout ({mode}) completed{shown}");
        self.push(Entry::Fact(format!("checkout:{id}")), None, ActivityKind::CheckoutCompleted, summary, amount, id);
    }

    pub fn simple(&mut self, kind: ActivityKind, summary: String, object: &str) {
        self.push(Entry::Occurrence, None, kind, summary, None, object);
    }

    /// Plan changes and scheduled cancellations, read from `previous_attributes`: what the event says
    /// changed, not a comparison with a stored state that may be older or newer.
    fn subscription_change(&mut self, sub: &SubscriptionState, previous: Option<&Value>, plan: &str) {
        let Some(previous) = previous else { return };
        let old_prices = previous_price_ids(previous);
        let new_prices: Vec<&str> = sub.items.iter().map(|i| i.price.price_id.as_str()).collect();
        if !old_prices.is_empty() && old_prices != new_prices {
            let summary = format!("Plan changed from {} to {plan}", old_prices.join(", "));
            self.simple(ActivityKind::PlanChanged, summary, &sub.id);
        }
        if previous.get("cancel_at_period_end").and_then(Value::as_bool) == Some(!sub.cancel_at_period_end) {
            if sub.cancel_at_period_end {
                let summary = format!("{plan} will end at the end of the period");
                self.simple(ActivityKind::CancellationScheduled, summary, &sub.id);
            } else {
                self.simple(ActivityKind::CancellationWithdrawn, format!("{plan} will renew again"), &sub.id);
            }
        }
    }
}

fn plan_label(sub: &SubscriptionState) -> String {
    let labels: Vec<String> =
        sub.items.iter().map(|i| i.price.nickname.clone().unwrap_or_else(|| i.price.price_id.clone())).collect();
    if labels.is_empty() { sub.id.clone() } else { labels.join(" + ") }
}

/// Price ids before the change, from `previous_attributes.items` (or `.plan` in old API versions).
fn previous_price_ids(previous: &Value) -> Vec<&str> {
    let from_items: Vec<&str> = previous
        .pointer("/items/data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.pointer("/price/id").or_else(|| item.pointer("/plan/id")).and_then(Value::as_str))
        .collect();
    if !from_items.is_empty() {
        return from_items;
    }
    previous.pointer("/plan/id").and_then(Value::as_str).into_iter().collect()
}
