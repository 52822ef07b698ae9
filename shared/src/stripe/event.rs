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
    /// The object's JSON text, parsed once into its type by `payload` (building a JSON tree of it
    /// first doubled the worker's parsing).
    pub object: Box<serde_json::value::RawValue>,
    #[serde(default)]
    pub previous_attributes: Option<serde_json::Value>,
}

/// What ingestion reads of a body: the envelope, with `data.object` checked to be an object but not
/// built (the worker parses it; building it twice was a tenth of the server's CPU under load). It
/// accepts exactly the bodies `Event::parse` accepts.
#[derive(Debug, Deserialize)]
pub struct EventHead<'a> {
    pub id: StripeEventId,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    #[serde(default, rename = "api_version")]
    _api_version: Option<String>,
    #[serde(default, rename = "livemode")]
    _livemode: bool,
    #[serde(borrow)]
    data: HeadData<'a>,
}

/// The event's data as slices of the body: skipping a value as raw JSON is the quickest way over it.
#[derive(Debug, Deserialize)]
struct HeadData<'a> {
    #[serde(borrow)]
    object: &'a serde_json::value::RawValue,
    #[serde(default, borrow, rename = "previous_attributes")]
    _previous_attributes: Option<&'a serde_json::value::RawValue>,
}

/// Whether raw JSON is an object: the one kind of value whose text starts with a brace.
fn is_object(raw: &serde_json::value::RawValue) -> bool {
    raw.get().starts_with('{')
}

/// An object an event carries, keyed by its id.
pub trait Keyed {
    fn id(&self) -> &str;
}

macro_rules! keyed {
    ($($object:ty),*) => {
        $(impl Keyed for $object {
            fn id(&self) -> &str {
                &self.id
            }
        })*
    };
}

keyed!(
    Charge,
    CheckoutSession,
    Customer,
    Invoice,
    InvoicePayment,
    Plan,
    Price,
    Product,
    Refund,
    Subscription,
    SubscriptionSchedule
);

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
    pub fn backfilled(
        id: StripeEventId,
        prefix: &str,
        object: &serde_json::Value,
        created: i64,
    ) -> Result<Self, EventError> {
        let raw = serde_json::value::to_raw_value(object).map_err(|e| EventError::NotAnEvent(e.to_string()))?;
        Ok(Self {
            id,
            kind: format!("{prefix}.{BACKFILLED}"),
            created,
            api_version: Some(super::client::API_VERSION.to_owned()),
            livemode: object.get("livemode").and_then(serde_json::Value::as_bool).unwrap_or(false),
            data: EventData { object: raw, previous_attributes: None },
        })
    }

    /// Checks a body is an event (ingestion), reading only its envelope.
    pub fn check(body: &[u8]) -> Result<EventHead<'_>, EventError> {
        let head: EventHead = serde_json::from_slice(body).map_err(|e| EventError::NotAnEvent(e.to_string()))?;
        if !is_object(head.data.object) {
            return Err(EventError::NotAnEvent("data.object is not an object".into()));
        }
        Ok(head)
    }

    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let event: Event = serde_json::from_slice(body).map_err(|e| EventError::NotAnEvent(e.to_string()))?;
        if !is_object(&event.data.object) {
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

    fn object<T: serde::de::DeserializeOwned + Keyed>(&self) -> Result<T, EventError> {
        let error = |reason: String| EventError::Object { event: self.id.to_string(), kind: self.kind.clone(), reason };
        let object: T = serde_json::from_str(self.data.object.get()).map_err(|e| error(e.to_string()))?;
        // Every object field is optional when parsed; the id, which keys what is stored, is not.
        if object.id().is_empty() {
            return Err(error("the object has no id".into()));
        }
        Ok(object)
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

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn ingestion_check_accepts_exactly_what_the_worker_parses() {
        let bodies = [
            r#"{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1","lines":{"data":[1,[2]]}}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"livemode":true,"api_version":"2024-06-20","data":{"object":{},"previous_attributes":{"a":null}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{},"previous_attributes":[1]}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"data":{"object":[]}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"data":{"object":"in_1"}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"data":{}}"#,
            r#"{"id":"evt_1","type":"x","created":1.5,"data":{"object":{}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"livemode":"yes","data":{"object":{}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"api_version":7,"data":{"object":{}}}"#,
            r#"{"id":"","type":"x","created":1,"data":{"object":{}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{}},"data":{"object":{}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{"a":1,"a":2}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{"a":}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{}}} trailing"#,
        ];
        let mut accepted = 0;
        for body in bodies {
            let checked = Event::check(body.as_bytes());
            let parsed = Event::parse(body.as_bytes());
            assert_eq!(checked.is_ok(), parsed.is_ok(), "{body}: {checked:?} / {parsed:?}");
            if let (Ok(head), Ok(event)) = (checked, parsed) {
                assert_eq!((&head.id, &head.kind, head.created), (&event.id, &event.kind, event.created));
                accepted += 1;
            }
        }
        assert_eq!(accepted, 4, "the first three and the repeated key inside the object are events");
    }
}
