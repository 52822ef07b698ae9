//! What a backfill lists for each object type, and how a listed object becomes the event the
//! webhook path applies.

use serde_json::Value;

use crate::domain::ids::StripeEventId;
use crate::store::repo::backfill::ObjectKind;
use crate::stripe::client::Params;
use crate::stripe::event::Event;

/// The Stripe list endpoint of `kind` (`None` for Piano's kinds: `backfill::piano` lists those).
pub fn path(kind: ObjectKind) -> Option<&'static str> {
    Some(match kind {
        ObjectKind::Products => "/v1/products",
        ObjectKind::Prices => "/v1/prices",
        ObjectKind::Customers => "/v1/customers",
        ObjectKind::Subscriptions => "/v1/subscriptions",
        ObjectKind::Invoices => "/v1/invoices",
        ObjectKind::Charges => "/v1/charges",
        ObjectKind::Refunds => "/v1/refunds",
        ObjectKind::PianoUsers | ObjectKind::PianoSubscriptions | ObjectKind::PianoPayments => return None,
    })
}

/// The list's filters: subscriptions default to the live ones, a backfill wants the ended ones too;
/// a refund comes with its charge, whose customer owns it (instead of a request per refund).
pub fn filters(kind: ObjectKind) -> Params {
    match kind {
        ObjectKind::Subscriptions => Params::new().set("status", "all"),
        ObjectKind::Refunds => Params::new().list("expand", ["data.charge"]),
        _ => Params::new(),
    }
}

/// The event type prefix whose handling applies the object (`{prefix}.backfilled`).
fn event_prefix(kind: ObjectKind) -> Option<&'static str> {
    Some(match kind {
        ObjectKind::Products => "product",
        ObjectKind::Prices => "price",
        ObjectKind::Customers => "customer",
        ObjectKind::Subscriptions => "customer.subscription",
        ObjectKind::Invoices => "invoice",
        ObjectKind::Charges => "charge",
        ObjectKind::Refunds => "refund",
        ObjectKind::PianoUsers | ObjectKind::PianoSubscriptions | ObjectKind::PianoPayments => return None,
    })
}

/// When what the object records happened: a subscription's start, an invoice's payment, otherwise its
/// creation. Revenue movements and timeline entries are dated by it, so history lands in its month.
fn happened_at(kind: ObjectKind, object: &Value) -> Option<i64> {
    let field = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64);
    match kind {
        ObjectKind::Subscriptions => field("/start_date").or_else(|| field("/created")),
        ObjectKind::Invoices => field("/status_transitions/paid_at").or_else(|| field("/created")),
        _ => field("/created"),
    }
}

/// The id the backfill's event for `object` has in the ledger: one per job and object, so a page
/// applied again after an interruption is recognised, and a later job applies the object again.
fn event_id(job: &str, object_id: &str) -> Option<StripeEventId> {
    StripeEventId::parse(&format!("evt_bf{job}_{object_id}")).ok()
}

/// The creation time of a listed object (how far back a stage has come).
pub fn created(object: &Value) -> Option<i64> {
    object.get("created").and_then(Value::as_i64)
}

/// The Stripe customer an object belongs to, for applying one customer's objects in order.
pub fn owner(kind: ObjectKind, object: &Value) -> Option<&str> {
    match kind {
        ObjectKind::Customers => object.get("id").and_then(Value::as_str),
        _ => object.get("customer").and_then(|c| c.as_str().or_else(|| c.get("id").and_then(Value::as_str))),
    }
}

/// The event that applies `object`; why not, when its id cannot be part of an event id or the object
/// is not one of its kind.
pub fn event(kind: ObjectKind, job: &str, object: &Value, listed_at: i64) -> Result<Event, String> {
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| event_id(job, id))
        .ok_or_else(|| "not a Stripe id".to_owned())?;
    let created = happened_at(kind, object).unwrap_or(listed_at);
    let prefix = event_prefix(kind).ok_or_else(|| format!("{} is not a Stripe object type", kind.name()))?;
    Event::backfilled(id, prefix, object, created).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::stripe::event::Payload;

    #[test]
    fn every_kind_becomes_an_event_the_sync_applies() {
        for kind in ObjectKind::ALL {
            let object = json!({"id": "obj_1", "object": "x", "created": 100, "customer": "cus_1"});
            let event = event(kind, "01job", &object, 500).expect("an event");
            assert!(event.kind.ends_with(".backfilled"), "{}", event.kind);
            assert!(!matches!(event.payload, Payload::Other), "{kind:?} would be ignored: {}", event.kind);
        }
    }

    #[test]
    fn history_is_dated_by_what_happened() {
        let sub = json!({"id": "sub_1", "created": 100, "start_date": 90});
        assert_eq!(event(ObjectKind::Subscriptions, "j", &sub, 500).map(|e| e.created), Ok(90));
        let invoice = json!({"id": "in_1", "created": 100, "status_transitions": {"paid_at": 160}});
        assert_eq!(event(ObjectKind::Invoices, "j", &invoice, 500).map(|e| e.created), Ok(160));
        let undated = json!({"id": "cus_1"});
        assert_eq!(event(ObjectKind::Customers, "j", &undated, 500).map(|e| e.created), Ok(500));
    }

    #[test]
    fn ids_outside_stripe_alphabet_and_objects_of_another_shape_make_no_event() {
        let not_an_id = Err("not a Stripe id".to_owned());
        assert_eq!(event(ObjectKind::Customers, "j", &json!({"id": "cus 1/.."}), 1).map(|e| e.kind), not_an_id);
        assert_eq!(event(ObjectKind::Customers, "j", &json!({"name": "no id"}), 1).map(|e| e.kind), not_an_id);
        let misshapen =
            event(ObjectKind::Invoices, "j", &json!({"id": "in_1", "amount_paid": "all"}), 1).map(|e| e.kind);
        assert!(misshapen.as_ref().is_err_and(|e| e.contains("unexpected object")), "{misshapen:?}");
    }

    #[test]
    fn owners_are_read_from_ids_and_expanded_objects() {
        assert_eq!(owner(ObjectKind::Customers, &json!({"id": "cus_1"})), Some("cus_1"));
        assert_eq!(owner(ObjectKind::Invoices, &json!({"id": "in_1", "customer": {"id": "cus_2"}})), Some("cus_2"));
        assert_eq!(owner(ObjectKind::Refunds, &json!({"id": "re_1", "charge": "ch_1"})), None);
    }
}
