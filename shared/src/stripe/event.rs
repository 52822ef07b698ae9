//! Stripe's event envelope and the typed object each handled event type carries. The envelope is
//! checked at ingestion (a body that is not an event gets 400); the worker parses the event with its
//! object, in one pass when ingestion named the type (`Event::parse_as`).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::objects::{
    Charge, CheckoutSession, Customer, Invoice, InvoicePayment, Plan, Price, Product, Refund, Subscription,
    SubscriptionSchedule,
};
use crate::domain::ids::StripeEventId;

#[derive(Debug, Clone)]
pub struct Event {
    pub id: StripeEventId,
    pub kind: String,
    /// When Stripe created the event: the provider time of the state it carries.
    pub created: i64,
    pub api_version: Option<String>,
    pub livemode: bool,
    /// What the event is about, parsed into its type.
    pub payload: Payload,
    pub previous_attributes: Option<serde_json::Value>,
}

/// An event as Stripe sends it, its object read as `O`.
#[derive(Deserialize)]
struct Envelope<O> {
    id: StripeEventId,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    livemode: bool,
    data: Data<O>,
}

#[derive(Deserialize)]
struct Data<O> {
    object: O,
    #[serde(default)]
    previous_attributes: Option<serde_json::Value>,
}

impl<O> Envelope<O> {
    fn with(self, payload: Payload) -> Event {
        Event {
            id: self.id,
            kind: self.kind,
            created: self.created,
            api_version: self.api_version,
            livemode: self.livemode,
            payload,
            previous_attributes: self.data.previous_attributes,
        }
    }

    /// The object, and the rest of the event without it.
    fn split(self) -> (Envelope<()>, O) {
        let Envelope { id, kind, created, api_version, livemode, data: Data { object, previous_attributes } } = self;
        (Envelope { id, kind, created, api_version, livemode, data: Data { object: (), previous_attributes } }, object)
    }
}

/// What ingestion reads of a body: the envelope, with `data.object` checked to be an object but not
/// built (the worker parses it; building it twice was a tenth of the server's CPU under load). It
/// accepts exactly the bodies whose envelope `Event::parse` accepts.
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
    object: &'a RawValue,
    #[serde(default, borrow, rename = "previous_attributes")]
    _previous_attributes: Option<&'a RawValue>,
}

/// Whether raw JSON is an object: the one kind of value whose text starts with a brace.
fn is_object(raw: &RawValue) -> bool {
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

impl Payload {
    /// Whether the event changes something the CRM keeps.
    fn is_applied(&self) -> bool {
        !matches!(self, Payload::Other)
    }
}

/// Where an event's object is read from.
trait Source {
    fn object<T: DeserializeOwned + Keyed>(self) -> Result<T, String>;
}

/// Every object field is optional when parsed; the id, which keys what is stored, is not.
fn with_id<T: Keyed>(object: T) -> Result<T, String> {
    if object.id().is_empty() {
        return Err("the object has no id".into());
    }
    Ok(object)
}

/// The object's JSON text.
impl Source for &RawValue {
    fn object<T: DeserializeOwned + Keyed>(self) -> Result<T, String> {
        with_id(serde_json::from_str(self.get()).map_err(|e| e.to_string())?)
    }
}

/// An object listed from Stripe's API (a backfill).
impl Source for &serde_json::Value {
    fn object<T: DeserializeOwned + Keyed>(self) -> Result<T, String> {
        with_id(T::deserialize(self).map_err(|e| e.to_string())?)
    }
}

/// The whole body, read with its object in one pass; the envelope is left in `envelope`.
struct Whole<'b, 'e> {
    body: &'b [u8],
    envelope: &'e mut Option<Envelope<()>>,
}

impl Source for Whole<'_, '_> {
    fn object<T: DeserializeOwned + Keyed>(self) -> Result<T, String> {
        let (envelope, object) = serde_json::from_slice::<Envelope<T>>(self.body).map_err(|e| e.to_string())?.split();
        *self.envelope = Some(envelope);
        with_id(object)
    }
}

/// The object of an event of type `kind`, read from `source`; `Other` for the types the CRM does not apply.
fn payload_of(kind: &str, source: impl Source) -> Result<Payload, String> {
    Ok(match kind {
        "customer.created" | "customer.updated" | "customer.deleted" | "customer.backfilled" => {
            Payload::Customer(source.object()?)
        }
        k if k.starts_with("customer.subscription.") => Payload::Subscription(Box::new(source.object()?)),
        k if k.starts_with("subscription_schedule.") => Payload::Schedule(source.object()?),
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
        | "invoice.backfilled" => Payload::Invoice(Box::new(source.object()?)),
        "invoice_payment.paid" => Payload::InvoicePayment(source.object()?),
        "charge.succeeded" | "charge.failed" | "charge.refunded" | "charge.captured" | "charge.updated"
        | "charge.backfilled" => Payload::Charge(source.object()?),
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" | "refund.backfilled" => {
            Payload::Refund(source.object()?)
        }
        k if k.starts_with("product.") => Payload::Product(source.object()?),
        k if k.starts_with("price.") => Payload::Price(source.object()?),
        k if k.starts_with("plan.") => Payload::Price(source.object::<Plan>()?.into_price()),
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            Payload::Checkout(source.object()?)
        }
        _ => Payload::Other,
    })
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
        let kind = format!("{prefix}.{BACKFILLED}");
        let payload = payload_of(&kind, object).map_err(|reason| EventError::Object {
            event: id.to_string(),
            kind: kind.clone(),
            reason,
        })?;
        Ok(Self {
            id,
            kind,
            created,
            api_version: Some(super::client::API_VERSION.to_owned()),
            livemode: object.get("livemode").and_then(serde_json::Value::as_bool).unwrap_or(false),
            payload,
            previous_attributes: None,
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

    /// The event and its object: the envelope first, keeping the object as a slice of the body, then
    /// the object by the type the envelope names. `NotAnEvent` exactly when `check` refuses the body.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let envelope: Envelope<&RawValue> =
            serde_json::from_slice(body).map_err(|e| EventError::NotAnEvent(e.to_string()))?;
        if !is_object(envelope.data.object) {
            return Err(EventError::NotAnEvent("data.object is not an object".into()));
        }
        match payload_of(&envelope.kind, envelope.data.object) {
            Ok(payload) => Ok(envelope.with(payload)),
            Err(reason) => {
                Err(EventError::Object { event: envelope.id.to_string(), kind: envelope.kind.clone(), reason })
            }
        }
    }

    /// `parse` for a body ingestion has checked and found to be of type `kind`: the envelope and the
    /// object in one pass over the body, where `parse` goes over the object twice (finding its end,
    /// then reading it). Any other outcome (another type, an error) is `parse`'s.
    pub fn parse_as(body: &[u8], kind: &str) -> Result<Self, EventError> {
        let mut envelope = None;
        match payload_of(kind, Whole { body, envelope: &mut envelope }) {
            Ok(payload) if payload.is_applied() => match envelope {
                Some(envelope) if envelope.kind == kind => Ok(envelope.with(payload)),
                _ => Self::parse(body),
            },
            _ => Self::parse(body),
        }
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
    use super::{Event, EventError, Payload};

    #[test]
    fn one_pass_reads_the_named_type_and_leaves_any_other_to_the_two_passes() {
        let body = r#"{"id":"evt_2","object":"event","type":"invoice.paid","created":5,"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1"},"previous_attributes":{"status":"open"}}}"#;
        let two = Event::parse(body.as_bytes()).expect("an event");
        assert!(matches!(&two.payload, Payload::Invoice(i) if i.id == "in_1"), "{two:?}");
        assert_eq!(two.previous_attributes, Some(serde_json::json!({"status": "open"})));
        // The named type; another that reads the object too (ids only), and one the CRM does not apply.
        for kind in ["invoice.paid", "customer.updated", "balance.available"] {
            let one = Event::parse_as(body.as_bytes(), kind).expect("an event");
            assert_eq!(format!("{one:?}"), format!("{two:?}"), "{kind}");
        }
        let no_id = r#"{"id":"evt_3","type":"invoice.paid","created":5,"data":{"object":{"object":"invoice"}}}"#;
        let refused = Event::parse_as(no_id.as_bytes(), "invoice.paid");
        assert!(matches!(&refused, Err(EventError::Object { reason, .. }) if reason.contains("no id")), "{refused:?}");
    }

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
            let envelope_ok = !matches!(parsed, Err(EventError::NotAnEvent(_)));
            assert_eq!(checked.is_ok(), envelope_ok, "{body}: {checked:?} / {parsed:?}");
            if let Ok(head) = checked {
                // The one pass reads what the two do, errors included.
                let in_one_pass = Event::parse_as(body.as_bytes(), &head.kind);
                assert_eq!(format!("{in_one_pass:?}"), format!("{parsed:?}"), "{body}");
                accepted += 1;
            }
            if let Ok(event) = parsed {
                assert_eq!(event.id.as_str(), "evt_1");
            }
        }
        assert_eq!(accepted, 4, "the first three and the repeated key inside the object are events");
        let misshapen =
            r#"{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1","amount_paid":"all"}}}"#;
        assert!(Event::check(misshapen.as_bytes()).is_ok());
        let misshapen = Event::parse(misshapen.as_bytes());
        assert!(matches!(misshapen, Err(EventError::Object { .. })), "an amount that is not a number: {misshapen:?}");
    }
}
