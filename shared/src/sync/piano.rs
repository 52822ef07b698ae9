//! The Piano sync: a Piano user is the CRM customer holding its uid, or a new one; it joins the record
//! a Stripe customer made only on evidence (`sync::link`), never on an email alone. Each event then
//! sets what it is about: the user's profile (email and name, read from Piano's user API when the event
//! lacks them), an entitlement, a subscription, a payment or a refund, with a timeline entry where a
//! person would want one. Each event is recorded in the ledger (under the id the proxy gave it) in the
//! transaction that applies it, so a redelivery is a duplicate; every state keeps its receipt time and
//! never goes back, so a late redelivery changes nothing.

use serde_json::Value;

use super::{Committed, Fact, FiredSink, Outcome, ROUNDS, SyncError, commit, contention_pause, record_seen};
use crate::domain::access::{Entitlement, EntitlementStatus};
use crate::domain::activity::{Activity, ActivityKind};
use crate::domain::billing::{Merge, Progress, Tracked};
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::{Email, PublicationId};
use crate::domain::money::{Currency, Money};
use crate::domain::piano::{PianoPayment, PianoPaymentStatus, PianoProfile, PianoRefund, PianoSubscription};
use crate::domain::settings::PublicationSettings;
use crate::piano::client::{PianoApi, PianoError, PianoUser, base_for};
use crate::piano::webhook::PianoEvent;
use crate::store::repo::customers::{self, CustomerWriteError};
use crate::store::repo::unmapped::{self, Unmapped};
use crate::store::repo::{Versioned, activities, ledger, payments};
use crate::store::{Store, StoreError, WriteOp};

const PROVIDER: &str = "piano";

/// One Piano event as the worker received it.
pub struct Delivery<'a> {
    pub publication: &'a PublicationId,
    pub settings: &'a PublicationSettings,
    pub event_id: &'a str,
    pub event: &'a PianoEvent,
    /// The user's profile from Piano's API, when the event lacked it (`fetch_profile`).
    pub fetched: Option<&'a PianoUser>,
    /// Receipt time, epoch seconds (timeline entries) and microseconds (state order).
    pub received_at: i64,
    pub received_at_us: i64,
    /// Receives the automations the applied event fired.
    pub fired: &'a FiredSink,
    pub now: i64,
}

/// What an event is about.
enum Subject {
    User { disabled: bool },
    Access(ActivityKind, EntitlementStatus),
    Subscription,
    Payment(PianoPaymentStatus),
    Refund,
    Other,
}

fn subject_of(kind: &str) -> Subject {
    match kind {
        k if k.starts_with("user_") => Subject::User { disabled: k == "user_disabled" },
        k if k.starts_with("access_granted") => Subject::Access(ActivityKind::AccessGranted, EntitlementStatus::Active),
        k if k.starts_with("access_modified") => {
            Subject::Access(ActivityKind::AccessModified, EntitlementStatus::Active)
        }
        k if k.starts_with("access_revoked") => {
            Subject::Access(ActivityKind::AccessRevoked, EntitlementStatus::Revoked)
        }
        k if k.starts_with("subscription_") || k.starts_with("term_change") => Subject::Subscription,
        k if k.starts_with("payment_refund") => Subject::Refund,
        k if k.starts_with("payment_") && (k.contains("fail") || k.contains("declin")) => {
            Subject::Payment(PianoPaymentStatus::Failed)
        }
        k if k.starts_with("payment_") => Subject::Payment(PianoPaymentStatus::Completed),
        _ => Subject::Other,
    }
}

/// A text field of the raw event, the first of `keys` present (Piano's payloads vary by event type).
fn text(event: &PianoEvent, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match event.raw.get(*k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// An amount Piano writes in major units (`9.99`, `"9.99"`) with its currency, in minor units.
fn money(event: &PianoEvent, amount_keys: &[&str]) -> Option<Money> {
    let currency = Currency::parse(&text(event, &["currency", "currency_code"])?).ok()?;
    Money::from_major(&text(event, amount_keys)?, currency)
}

fn first_last_name(event: &PianoEvent) -> Option<String> {
    let user = PianoUser {
        first_name: text(event, &["first_name"]),
        last_name: text(event, &["last_name"]),
        ..PianoUser::default()
    };
    user.name().or_else(|| text(event, &["personal_name", "name"]))
}

/// Reads the user from Piano's API when a user event lacks the email or the name. A refusal (unknown
/// user, wrong API token) is logged and the event applies with what it has; an outage is retried.
pub async fn fetch_profile(
    api: &dyn PianoApi,
    settings: &PublicationSettings,
    base_override: Option<&str>,
    event: &PianoEvent,
) -> Result<Option<PianoUser>, SyncError> {
    let kind = event.kind.as_deref().unwrap_or_default();
    let (Some(piano), Some(uid)) = (&settings.piano, event.uid.as_deref().filter(|u| !u.is_empty())) else {
        return Ok(None);
    };
    let complete = event.user_email.as_deref().is_some_and(|e| !e.is_empty()) && first_last_name(event).is_some();
    if !matches!(subject_of(kind), Subject::User { .. }) || complete {
        return Ok(None);
    }
    let base = base_for(piano.region, base_override);
    match api.user(&base, &piano.aid, &piano.api_token, uid).await {
        Ok(user) => Ok(Some(user)),
        Err(e @ PianoError::Rejected(_)) | Err(e @ PianoError::InvalidToken) => {
            tracing::warn!(error = %e, "Piano user not readable; applied with the event's fields");
            Ok(None)
        }
        Err(e) => Err(SyncError::Piano(e)),
    }
}

/// The customer of this Piano user: the one holding its uid, else a new one. A Piano event never
/// links the uid to another record by email: Piano's webhooks do not say whether the reader confirmed
/// the address, and anyone can open an account claiming someone's. When another record holds the
/// email, the new one is made without it (its Piano profile keeps it), so the possible duplicates pair
/// them for review; evidence links them later (`sync::link`).
async fn customer_of(
    store: &dyn Store,
    d: &Delivery<'_>,
    uid: &str,
    email: Option<&Email>,
) -> Result<Versioned<Customer>, SyncError> {
    let identity = Identity::Piano(uid.to_owned());
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
        }
        if let Some(found) = customers::find(store, d.publication, &identity).await? {
            return Ok(found);
        }
        let email_free = match email {
            Some(email) => customers::find(store, d.publication, &Identity::Email(email.clone())).await?.is_none(),
            None => false,
        };
        let mut candidate = Customer::new(d.publication.clone(), d.now);
        candidate.email = email.filter(|_| email_free).cloned();
        candidate.piano_uid = Some(uid.to_owned());
        match customers::create(store, &candidate).await {
            Ok(()) => return Ok(Versioned { value: candidate, version: 1 }),
            // Someone created the uid's record, or took the email, meanwhile: the next round sees it.
            Err(CustomerWriteError::Stale | CustomerWriteError::Taken { .. } | CustomerWriteError::Extra(_)) => {}
            Err(CustomerWriteError::Store(e)) => return Err(e.into()),
        }
    }
    Err(SyncError::Contention)
}

/// Merges a state stamped with the event's receipt time; on the same microsecond (a redelivery of
/// another event at once) the later delivery wins, as Piano delivers in order.
fn merge_in<T: PartialEq + Progress + Clone>(slot: &mut Option<Tracked<T>>, state: T, as_of: i64) -> bool {
    match Tracked::merge(slot, state.clone(), as_of) {
        Merge::Applied => true,
        Merge::Kept => false,
        Merge::Undecided => {
            Tracked::replace(slot, state, as_of);
            true
        }
    }
}

fn merge_keyed<T: PartialEq + Progress + Clone>(
    map: &mut std::collections::BTreeMap<String, Tracked<T>>,
    key: &str,
    state: T,
    as_of: i64,
) {
    let mut slot = map.remove(key);
    merge_in(&mut slot, state, as_of);
    if let Some(value) = slot {
        map.insert(key.to_owned(), value);
    }
}

/// The payment a payment or refund event names.
fn named_payment(event: &PianoEvent) -> Option<String> {
    text(event, &["payment_id", "user_payment_id", "transaction_id"])
}

/// The payment a payment event is about: the one it names, else the event itself.
fn payment_id(d: &Delivery<'_>) -> String {
    named_payment(d.event).unwrap_or_else(|| d.event_id.to_owned())
}

/// Reads the payment or refund item the event merges into; for a refund, also the payment it names
/// (automations name what a refund was bought through).
async fn read_touched(
    store: &dyn Store,
    customer: &mut Customer,
    d: &Delivery<'_>,
    subject: &Subject,
) -> Result<(), StoreError> {
    match subject {
        Subject::Payment(_) => payments::read_piano_payment(store, customer, &payment_id(d)).await,
        Subject::Refund => {
            payments::read_piano_refund(store, customer, d.event_id).await?;
            match named_payment(d.event) {
                Some(payment) => payments::read_piano_payment(store, customer, &payment).await,
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Sets on `after` what the event says and answers the timeline entries it makes.
fn change(after: &mut Customer, d: &Delivery<'_>, subject: &Subject) -> Vec<Activity> {
    let event = d.event;
    let as_of = d.received_at_us;
    // Keyed by the event and led by its receipt microsecond, so a second's entries keep Piano's order.
    let activity = |kind: ActivityKind, summary: String, amount: Option<Money>, object: Option<String>| Activity {
        key: format!("{:06}.{kind:?}:{}", d.received_at_us.rem_euclid(1_000_000), d.event_id),
        at: d.received_at,
        kind,
        summary,
        amount,
        provider: PROVIDER.into(),
        account: None,
        object_id: object,
        event_id: Some(d.event_id.to_owned()),
    };
    match subject {
        Subject::User { disabled } => {
            let fetched = d.fetched;
            let profile = PianoProfile {
                email: event
                    .user_email
                    .clone()
                    .filter(|e| !e.is_empty())
                    .or_else(|| fetched.and_then(|u| u.email.clone())),
                name: first_last_name(event).or_else(|| fetched.and_then(PianoUser::name)),
                disabled: *disabled,
            };
            merge_in(&mut after.piano.profile, profile, as_of);
            after.refresh_contact();
            Vec::new()
        }
        Subject::Access(kind, status) => {
            let Some(rid) = event.rid.clone().filter(|r| !r.is_empty()) else { return Vec::new() };
            let entitlement = Entitlement {
                resource_id: rid.clone(),
                term_id: event.term_id.clone(),
                expires_at: event.expires,
                status: *status,
            };
            merge_keyed(&mut after.piano.entitlements, &rid, entitlement, as_of);
            let verb = match kind {
                ActivityKind::AccessGranted => "granted",
                ActivityKind::AccessRevoked => "revoked",
                _ => "modified",
            };
            let summary = format!("Access to {} {verb}", product_name(d, &rid));
            vec![activity(*kind, summary, None, Some(rid))]
        }
        Subject::Subscription => {
            let Some(id) = event.subscription_id.clone().filter(|s| !s.is_empty()) else { return Vec::new() };
            let kind = event.kind.as_deref().unwrap_or_default();
            let status =
                text(event, &["subscription_status", "status"]).map(|s| s.to_ascii_lowercase()).unwrap_or_else(|| {
                    if kind.contains("cancel") {
                        "canceled".into()
                    } else if kind.contains("expire") || kind.ends_with("_ended") {
                        "expired".into()
                    } else {
                        "active".into()
                    }
                });
            // The state is what this event says, nothing carried over from the one held: filling gaps
            // from an older state would make the result depend on delivery order.
            let state = PianoSubscription {
                id: id.clone(),
                status: status.clone(),
                term_id: event.term_id.clone(),
                resource_id: event.rid.clone(),
                expires_at: event.expires,
            };
            merge_keyed(&mut after.piano.subscriptions, &id, state, as_of);
            let what = event.rid.as_deref().map_or_else(|| format!("subscription {id}"), |rid| product_name(d, rid));
            let (activity_kind, summary) = if kind.starts_with("term_change") {
                (
                    ActivityKind::PlanChanged,
                    format!("Piano term changed to {}", event.term_id.as_deref().unwrap_or("?")),
                )
            } else if status == "canceled" {
                (ActivityKind::CancellationScheduled, format!("Piano {what} will not renew"))
            } else if status == "expired" {
                (ActivityKind::SubscriptionCanceled, format!("Piano {what} ended"))
            } else if kind == "subscription_created" {
                (ActivityKind::SubscriptionStarted, format!("Piano {what} started"))
            } else {
                return Vec::new();
            };
            vec![activity(activity_kind, summary, None, Some(id))]
        }
        Subject::Payment(status) => {
            let id = payment_id(d);
            let amount = money(event, &["amount", "price", "total"]);
            let state = PianoPayment {
                id: id.clone(),
                status: *status,
                amount: amount.clone(),
                subscription_id: event.subscription_id.clone().filter(|s| !s.is_empty()),
            };
            merge_keyed(&mut after.piano.payments, &id, state, as_of);
            let shown = amount.as_ref().map_or_else(String::new, |m| format!(" of {}", m.display()));
            let (kind, verb) = match status {
                PianoPaymentStatus::Completed => (ActivityKind::PaymentSucceeded, "succeeded"),
                PianoPaymentStatus::Failed => (ActivityKind::PaymentFailed, "failed"),
            };
            vec![activity(kind, format!("Piano payment{shown} {verb}"), amount, Some(id))]
        }
        Subject::Refund => {
            let Some(amount) = money(event, &["refund_amount", "amount", "price", "total"]) else {
                return Vec::new();
            };
            let payment_id = named_payment(event);
            after
                .piano
                .refunds
                .insert(d.event_id.to_owned(), PianoRefund { payment_id: payment_id.clone(), amount: amount.clone() });
            vec![activity(
                ActivityKind::Refund,
                format!("Piano refund of {}", amount.display()),
                Some(amount),
                payment_id,
            )]
        }
        Subject::Other => Vec::new(),
    }
}

/// The catalogue's name for a resource, else its id.
fn product_name(d: &Delivery<'_>, rid: &str) -> String {
    d.settings.product_of_piano_resource(rid).map_or_else(|| rid.to_owned(), |p| p.name.clone())
}

/// The unmapped-resource record this event adds, when it names a resource outside the catalogue.
fn unmapped_of(d: &Delivery<'_>) -> Result<Option<WriteOp>, StoreError> {
    let Some(rid) = d.event.rid.as_deref().filter(|r| !r.is_empty()) else { return Ok(None) };
    if d.settings.product_of_piano_resource(rid).is_some() {
        return Ok(None);
    }
    let record = Unmapped {
        provider: PROVIDER.into(),
        account: None,
        id: rid.to_owned(),
        last_seen: d.received_at,
        last_event_id: d.event_id.to_owned(),
    };
    unmapped::put(d.publication, &record).map(Some)
}

pub async fn apply(store: &dyn Store, d: &Delivery<'_>) -> Result<Outcome, SyncError> {
    let ledger = || ledger::applied(d.publication, PROVIDER, d.event_id, d.now);
    let Some(uid) = d.event.uid.clone().filter(|u| !u.is_empty()) else {
        return record_seen(store, ledger()?, Outcome::Ignored("Piano event without a user".into())).await;
    };
    let subject = subject_of(d.event.kind.as_deref().unwrap_or_default());
    let email = d
        .event
        .user_email
        .as_deref()
        .or_else(|| d.fetched.and_then(|u| u.email.as_deref()))
        .and_then(|e| Email::parse(e).ok());
    let unmapped = unmapped_of(d)?;
    // Set when the email Piano shows belongs to another CRM customer: the record keeps its own.
    let mut keep_email = false;
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
        }
        let mut found = customer_of(store, d, &uid, email.as_ref()).await?;
        read_touched(store, &mut found.value, d, &subject).await?;
        let mut after = found.value.clone();
        let activities = change(&mut after, d, &subject);
        if keep_email {
            after.email = found.value.email.clone();
        }
        let mut extra = vec![ledger()?];
        extra.extend(unmapped.clone());
        for activity in &activities {
            extra.push(activities::put(d.publication, &after.id, activity)?);
        }
        let fact = Fact {
            at: d.received_at,
            provider: PROVIDER,
            event_id: d.event_id,
            activities: &activities,
            settings: d.settings,
            fired: d.fired,
        };
        match commit(store, &found, after, extra, &fact, d.now).await? {
            Committed::Applied => return Ok(Outcome::Applied),
            Committed::Duplicate => return Ok(Outcome::Duplicate),
            Committed::EmailTaken => keep_email = true,
            Committed::Retry => {}
        }
    }
    Err(SyncError::Contention)
}
