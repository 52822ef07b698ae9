//! How an object Piano's API lists becomes the event its webhooks would have sent, so the history
//! import applies it with the webhook path's own code (`sync::piano::apply`): a user is
//! `user_updated`, an access `access_granted` or `access_revoked`, a subscription `subscription_updated`
//! with its status, a conversion that carries a payment `payment_completed`. Pure.

use serde_json::{Map, Value, json};

use crate::piano::webhook::{PianoEvent, parse_event};

/// A text field at `pointer` (`/user/uid`), numbers given as text.
fn text(object: &Value, pointer: &str) -> Option<String> {
    match object.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first of `pointers` present.
fn first(object: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| text(object, p))
}

/// An epoch-seconds field; Piano leaves it out, or gives 0 or null, when there is none.
fn time(object: &Value, pointers: &[&str]) -> Option<i64> {
    pointers.iter().find_map(|p| object.pointer(p)?.as_i64().filter(|t| *t > 0))
}

/// An event: `fields` whose value is known, with `type` and `uid`.
fn event(kind: &str, uid: &str, fields: &[(&str, Option<Value>)]) -> Result<PianoEvent, String> {
    let mut map = Map::new();
    map.insert("version".into(), json!(2));
    map.insert("type".into(), json!(kind));
    map.insert("uid".into(), json!(uid));
    for (key, value) in fields {
        if let Some(value) = value {
            map.insert((*key).into(), value.clone());
        }
    }
    parse_event(&Value::Object(map).to_string()).map_err(|e| e.to_string())
}

fn some(value: Option<String>) -> Option<Value> {
    value.map(Value::String)
}

/// A listed object's id (what its ledger entry is named after), and its event.
pub type Mapped = (String, PianoEvent);

/// A user of `user/list`.
pub fn user(object: &Value) -> Result<Mapped, String> {
    let uid = text(object, "/uid").ok_or("a user without uid")?;
    let event = event(
        "user_updated",
        &uid,
        &[
            ("user_email", some(text(object, "/email"))),
            ("first_name", some(text(object, "/first_name"))),
            ("last_name", some(text(object, "/last_name"))),
            ("personal_name", some(text(object, "/personal_name"))),
        ],
    )?;
    Ok((uid, event))
}

/// An access of user `uid`'s `user/access/list`.
pub fn access(uid: &str, object: &Value) -> Result<Mapped, String> {
    let rid = first(object, &["/resource/rid", "/rid"]).ok_or("an access without resource")?;
    let id = text(object, "/access_id").unwrap_or_else(|| format!("{uid}.{rid}"));
    let granted = object.get("granted").and_then(Value::as_bool).unwrap_or(true);
    let kind = if granted { "access_granted" } else { "access_revoked" };
    let event = event(
        kind,
        uid,
        &[
            ("rid", Some(json!(rid))),
            ("term_id", some(first(object, &["/term/term_id", "/term_id"]))),
            ("expires", time(object, &["/expire_date", "/expires"]).map(Value::from)),
        ],
    )?;
    Ok((id, event))
}

/// The status a subscription of `subscription/list` has in the record: `active`, `canceled` (will not
/// renew) or `expired` (ended), as the webhooks' statuses are kept.
fn subscription_status(status: &str) -> String {
    match status.to_ascii_lowercase().as_str() {
        "active" => "active".into(),
        "cancelled" | "canceled" => "canceled".into(),
        "expired" | "completed" | "terminated" | "ended" => "expired".into(),
        other => other.into(),
    }
}

/// A subscription of `subscription/list`.
pub fn subscription(object: &Value) -> Result<Mapped, String> {
    let id = text(object, "/subscription_id").ok_or("a subscription without subscription_id")?;
    let uid = first(object, &["/user/uid", "/uid"]).ok_or("a subscription without user")?;
    let status = text(object, "/status").map(|s| subscription_status(&s)).unwrap_or_else(|| "active".into());
    let event = event(
        "subscription_updated",
        &uid,
        &[
            ("subscription_id", Some(json!(id))),
            ("subscription_status", Some(json!(status))),
            ("user_email", some(first(object, &["/user/email", "/user_email"]))),
            ("term_id", some(first(object, &["/term/term_id", "/term_id"]))),
            ("rid", some(first(object, &["/term/resource/rid", "/resource/rid", "/rid"]))),
            ("expires", time(object, &["/end_date", "/expire_date", "/expires"]).map(Value::from)),
        ],
    )?;
    Ok((id, event))
}

/// A conversion of `conversion/list`: a payment when it carries one (`user_payment`), else `None`.
pub fn payment(object: &Value) -> Result<Option<Mapped>, String> {
    let Some(paid) = object.get("user_payment").filter(|p| p.is_object()) else { return Ok(None) };
    let id = first(paid, &["/user_payment_id"])
        .or_else(|| text(object, "/term_conversion_id"))
        .ok_or("a payment without user_payment_id")?;
    let uid = first(object, &["/user/uid", "/uid"]).ok_or("a payment without user")?;
    let event = event(
        "payment_completed",
        &uid,
        &[
            ("payment_id", Some(json!(id))),
            ("amount", some(first(paid, &["/amount"]))),
            ("currency", some(first(paid, &["/currency"]))),
            ("subscription_id", some(first(object, &["/subscription/subscription_id", "/subscription_id"]))),
            ("user_email", some(first(object, &["/user/email"]))),
            ("rid", some(first(object, &["/term/resource/rid", "/user_access/resource/rid"]))),
            ("term_id", some(first(object, &["/term/term_id"]))),
        ],
    )?;
    Ok(Some((id, event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_becomes_user_updated_with_its_profile() {
        let (id, e) =
            user(&json!({"uid": "PNIa", "email": "a@example.com", "first_name": "Ann", "last_name": ""})).unwrap();
        assert_eq!(id, "PNIa");
        assert_eq!((e.kind.as_deref(), e.uid.as_deref()), (Some("user_updated"), Some("PNIa")));
        assert_eq!(e.user_email.as_deref(), Some("a@example.com"));
        assert_eq!(e.raw["first_name"], "Ann");
        assert!(e.raw.get("last_name").is_none(), "blank fields are left out");
        assert!(user(&json!({"email": "x@example.com"})).is_err());
    }

    #[test]
    fn accesses_are_granted_or_revoked_with_their_resource_and_expiry() {
        let object =
            json!({"access_id": "acc1", "granted": false, "resource": {"rid": "RGUIDE"}, "expire_date": 1_800_000_000});
        let (id, e) = access("PNIa", &object).unwrap();
        assert_eq!(id, "acc1");
        assert_eq!(e.kind.as_deref(), Some("access_revoked"));
        assert_eq!((e.rid.as_deref(), e.expires), (Some("RGUIDE"), Some(1_800_000_000)));
        let (id, e) = access("PNIa", &json!({"resource": {"rid": "R2"}, "expire_date": 0})).unwrap();
        assert_eq!((id.as_str(), e.kind.as_deref(), e.expires), ("PNIa.R2", Some("access_granted"), None));
        assert!(access("PNIa", &json!({"granted": true})).is_err());
    }

    #[test]
    fn subscription_statuses_become_the_records() {
        let object = |status: &str| {
            json!({"subscription_id": "S1", "status": status, "user": {"uid": "PNIa", "email": "a@example.com"},
                   "term": {"term_id": "TM1", "resource": {"rid": "RDIGI"}}, "end_date": 1_800_000_000})
        };
        for (given, kept) in
            [("active", "active"), ("cancelled", "canceled"), ("completed", "expired"), ("Expired", "expired")]
        {
            let (id, e) = subscription(&object(given)).unwrap();
            assert_eq!(id, "S1");
            assert_eq!(e.raw["subscription_status"], kept, "{given}");
            assert_eq!((e.term_id.as_deref(), e.rid.as_deref()), (Some("TM1"), Some("RDIGI")));
            assert_eq!((e.subscription_id.as_deref(), e.expires), (Some("S1"), Some(1_800_000_000)));
        }
        assert!(subscription(&json!({"subscription_id": "S1"})).is_err(), "no user");
    }

    #[test]
    fn only_conversions_with_a_payment_are_payments() {
        let paid = json!({"term_conversion_id": "TC1", "user": {"uid": "PNIa"}, "subscription": {"subscription_id": "S1"},
                          "user_payment": {"user_payment_id": "UP1", "amount": 9.99, "currency": "EUR"}});
        let (id, e) = payment(&paid).unwrap().unwrap();
        assert_eq!((id.as_str(), e.kind.as_deref()), ("UP1", Some("payment_completed")));
        assert_eq!((e.raw["amount"].as_str(), e.raw["currency"].as_str()), (Some("9.99"), Some("EUR")));
        assert_eq!(e.subscription_id.as_deref(), Some("S1"));
        assert_eq!(payment(&json!({"term_conversion_id": "TC2", "user": {"uid": "PNIa"}})).unwrap(), None);
    }
}
