//! The `notify` action's delivery: a JSON POST (chat or email service webhook) as a job on the forward
//! queue, whose worker retries with backoff and leaves it in the forward dead-letter queue at the end.
//! `Idempotency-Key: {occurrence}:{rule}` is the same for every attempt and rerun, so receivers can dedupe.

use serde::Serialize;

use super::AutomationError;
use super::fired::Fired;
use crate::domain::automation::NotifyTarget;
use crate::domain::customer::Customer;
use crate::domain::ids::{CustomerId, PublicationId};
use crate::domain::money::Money;
use crate::domain::record::rfc3339;
use crate::piano::forward::ForwardJob;

/// The body a notification target receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// One line for people (chat services show `text`).
    pub text: String,
    pub trigger: &'static str,
    pub rule: String,
    pub publication: PublicationId,
    pub customer: PayloadCustomer,
    pub event_id: String,
    pub amount: Option<Money>,
    pub summary: String,
    /// RFC 3339.
    pub at: Option<String>,
    /// The `Idempotency-Key` header's value, for receivers that only see bodies.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PayloadCustomer {
    pub id: CustomerId,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// `{occurrence}:{rule}`, with anything outside visible ASCII percent-encoded (it travels as a header).
pub fn idempotency_key(fired: &Fired, rule_key: &str) -> String {
    let raw = format!("{}:{rule_key}", fired.occurrence());
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_graphic() && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn payload(publication: &PublicationId, rule_key: &str, fired: &Fired, customer: &Customer) -> Payload {
    let who = customer
        .name
        .clone()
        .or_else(|| customer.email.as_ref().map(|e| e.to_string()))
        .unwrap_or_else(|| customer.id.to_string());
    Payload {
        text: format!("[{publication}] {}: {} ({who})", fired.trigger, fired.summary),
        trigger: fired.trigger.as_str(),
        rule: rule_key.to_owned(),
        publication: publication.clone(),
        customer: PayloadCustomer {
            id: customer.id.clone(),
            email: customer.email.as_ref().map(|e| e.to_string()),
            name: customer.name.clone(),
        },
        event_id: fired.event_id.clone(),
        amount: fired.amount.clone(),
        summary: fired.summary.clone(),
        at: rfc3339(fired.at),
        idempotency_key: idempotency_key(fired, rule_key),
    }
}

/// The forward job that POSTs the payload to the target (its query string kept apart, as jobs carry it).
pub fn job(
    publication: &PublicationId,
    rule_key: &str,
    fired: &Fired,
    customer: &Customer,
    target: &NotifyTarget,
) -> Result<ForwardJob, AutomationError> {
    let payload = payload(publication, rule_key, fired, customer);
    let body = serde_json::to_string(&payload).map_err(|e| AutomationError::Encode(e.to_string()))?;
    let mut url = target.url.url().clone();
    let query = url.query().map(str::to_owned);
    url.set_query(None);
    url.set_fragment(None);
    Ok(ForwardJob {
        publication: publication.clone(),
        url: url.to_string(),
        method: "POST".into(),
        query,
        content_type: Some("application/json".into()),
        body,
        headers: vec![("Idempotency-Key".into(), payload.idempotency_key)],
    })
}
