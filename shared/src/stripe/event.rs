//! Stripe's event envelope and the typed object each handled event type carries. The envelope is
//! checked at ingestion (a body that is not an event gets 400); the object is parsed by the worker.

use serde::Deserialize;

use super::objects::{
    Charge, CheckoutSession, Customer, Invoice, InvoicePayment, Plan, Price, Product, Refund, Subscription,
    SubscriptionSchedule,
};
use crate::domain::ids::StripeEventId;

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: StripeEventId,
    #[serde(rename = "type")]
    pub kind: String,
    /// When Stripe created the event: the provider time of the state it carries.
    pub created: i64,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
    #[serde(default)]
    pub previous_attributes: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a Stripe event: {0}")]
    NotAnEvent(String),
    #[error("event {event} ({kind}): unexpected object: {reason}")]
    Object { event: String, kind: String, reason: String },
}

/// What an event is about, for the types the CRM applies.
#[derive(Debug, Clone)]
pub enum Payload {
    Customer(Customer),
    Subscription(Box<Subscription>),
    Schedule(SubscriptionSchedule),
    Invoice(Box<Invoice>),
    InvoicePayment(InvoicePayment),
    Charge(Charge),
    Refund(Refund),
    Product(Product),
    Price(Price),
    Checkout(CheckoutSession),
    /// Acknowledged and recorded as seen, nothing to apply.
    Other,
}

/// The type of the events a backfill makes of listed objects (`customer.backfilled`,
/// `customer.subscription.backfilled`, …): applied by the same code as Stripe's events, and recorded
/// as what they are. Their `created` is the object's own time (for the revenue movements and timeline
/// they make); the state's time is when it was listed (`sync::stripe::Context::as_of`).
pub const BACKFILLED: &str = "backfilled";

impl Event {
    /// The event a backfill applies for `object`, listed at `prefix` (`customer`, `customer.subscription`).
    pub fn backfilled(id: StripeEventId, prefix: &str, object: serde_json::Value, created: i64) -> Self {
        Self {
            id,
            kind: format!("{prefix}.{BACKFILLED}"),
            created,
            api_version: Some(super::client::API_VERSION.to_owned()),
            livemode: object.get("livemode").and_then(serde_json::Value::as_bool).unwrap_or(false),
            data: EventData { object, previous_attributes: None },
        }
    }

    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let event: Event = serde_json::from_slice(body).map_err(|e| EventError::NotAnEvent(e.to_string()))?;
        if !event.data.object.is_object() {
            return Err(EventError::NotAnEvent("data.object is not an object".into()));
        }
        Ok(event)
    }

    pub fn payload(&self) -> Result<Payload, EventError> {
        Ok(match self.kind.as_str() {
            "customer.created" | "customer.updated" | "customer.deleted" | "customer.backfilled" => {
                Payload::Customer(self.object()?)
            }
            k if k.starts_with("customer.subscription.") => Payload::Subscription(Box::new(self.object()?)),
            k if k.starts_with("subscription_schedule.") => Payload::Schedule(self.object()?),
            "invoice.created"
            | "invoice.finalized"
            | "invoice.sent"
            | "invoice.paid"
            | "invoice.payment_succeeded"
            | "invoice.payment_failed"
            | "invoice.voided"
            | "invoice.marked_uncollectible"
            | "invoice.updated"
            | "invoice.deleted"
            | "invoice.overdue"
            | "invoice.payment_action_required"
            | "invoice.backfilled" => Payload::Invoice(Box::new(self.object()?)),
            "invoice_payment.paid" => Payload::InvoicePayment(self.object()?),
            "charge.succeeded" | "charge.failed" | "charge.refunded" | "charge.captured" | "charge.updated"
            | "charge.backfilled" => Payload::Charge(self.object()?),
            "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" | "refund.backfilled" => {
                Payload::Refund(self.object()?)
            }
            k if k.starts_with("product.") => Payload::Product(self.object()?),
            k if k.starts_with("price.") => Payload::Price(self.object()?),
            k if k.starts_with("plan.") => Payload::Price(self.object::<Plan>()?.into_price()),
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                Payload::Checkout(self.object()?)
            }
            _ => Payload::Other,
        })
    }

    fn object<T: serde::de::DeserializeOwned>(&self) -> Result<T, EventError> {
        let error = |reason: String| EventError::Object { event: self.id.to_string(), kind: self.kind.clone(), reason };
        // Every object field is optional when parsed; the id, which keys what is stored, is not.
        if self.data.object.get("id").and_then(serde_json::Value::as_str).is_none_or(str::is_empty) {
            return Err(error("the object has no id".into()));
        }
        T::deserialize(&self.data.object).map_err(|e| error(e.to_string()))
    }

    /// The event types a webhook endpoint of the CRM subscribes to.
    pub const ENABLED_EVENTS: &'static [&'static str] = &[
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
        "subscription_schedule.aborted",
        "subscription_schedule.canceled",
        "subscription_schedule.completed",
        "subscription_schedule.created",
        "subscription_schedule.expiring",
        "subscription_schedule.released",
        "subscription_schedule.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.sent",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "invoice.voided",
        "invoice.marked_uncollectible",
        "invoice_payment.paid",
        "charge.succeeded",
        "charge.failed",
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "product.created",
        "product.updated",
        "product.deleted",
        "price.created",
        "price.updated",
        "price.deleted",
        "checkout.session.completed",
    ];
}
