//! `POST …/customers` and `PATCH …/customers/{id}` (functions `customers-create`, `customers-update`),
//! and `POST …/customers/{id}/piano-link` (`customers-link`, an operator's evidence for `sync::link`):
//! an operator creates a CRM customer (email unique in the publication) and, when asked, its Stripe
//! customer in one of the publication's accounts, carrying `metadata.crm_customer_id` so the events
//! Stripe sends back join this record; email and name changes are pushed to the customer's Stripe
//! customers first, so Stripe and the CRM never disagree for long and the events coming back change
//! nothing.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::AppState;
use super::settings::authorize;
use crate::domain::billing::Tracked;
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::{AccountKey, CustomerId, Email, PublicationId};
use crate::domain::record::{CustomerRecord, ProductNames};
use crate::http::ApiError;
use crate::http::body::{JsonBytes, parse_json};
use crate::http::extract::Path;
use crate::store::repo::customers::{self, CustomerWriteError};
use crate::store::repo::publications;
use crate::stripe::client::{Params, StripeAuth};
use crate::stripe::objects as obj;
use crate::sync::link;
use crate::sync::stripe::map;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewCustomer {
    email: String,
    #[serde(default)]
    name: Option<String>,
    /// Also create the customer in this Stripe account of the publication.
    #[serde(default)]
    stripe_account: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CustomerChange {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

fn name_of(name: Option<String>) -> Result<Option<String>, ApiError> {
    match name.map(|n| n.trim().to_owned()) {
        Some(n) if n.chars().count() > 200 => Err(ApiError::BadRequest("name is longer than 200 characters".into())),
        Some(n) if n.is_empty() => Ok(None),
        other => Ok(other),
    }
}

async fn email_free(
    state: &AppState,
    publication: &PublicationId,
    email: &Email,
    own: Option<&CustomerId>,
) -> Result<(), ApiError> {
    match customers::find(state.store.as_ref(), publication, &Identity::Email(email.clone())).await? {
        Some(holder) if Some(&holder.value.id) != own => {
            Err(ApiError::Conflict(format!("customer {} already has the email {email}", holder.value.id)))
        }
        _ => Ok(()),
    }
}

fn record(customer: &Customer) -> Json<CustomerRecord> {
    Json(CustomerRecord::build(customer, Vec::new(), None, &ProductNames::new(), Vec::new()))
}

pub async fn create(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<(StatusCode, Json<CustomerRecord>), ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let wanted: NewCustomer = parse_json(&bytes)?;
    let email = Email::parse(&wanted.email)?;
    let now = crate::store::now_epoch();
    let mut customer = Customer::new(publication.clone(), now);
    customer.email = Some(email.clone());
    customer.name = name_of(wanted.name)?;
    email_free(&state, &publication, &email, None).await?;

    if let Some(raw_key) = &wanted.stripe_account {
        let settings = publications::get(state.store.as_ref(), &publication)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("publication {publication} not found")))?
            .value
            .settings;
        let unknown = || ApiError::BadRequest(format!("publication {publication} has no Stripe account {raw_key}"));
        let key = AccountKey::parse(raw_key).map_err(|_| unknown())?;
        let account = settings.stripe_account(&key).ok_or_else(unknown)?;
        let mut form =
            Params::new().set("email", email.as_str()).set("metadata[crm_customer_id]", customer.id.to_string());
        if let Some(name) = &customer.name {
            form = form.set("name", name.clone());
        }
        // The CRM id is the idempotency key: a retried request gets the same Stripe customer.
        let created = state
            .stripe
            .post(&StripeAuth::from(account), "/v1/customers", &form, &format!("crm-{}", customer.id))
            .await?;
        let created: obj::Customer = serde_json::from_value(created)
            .map_err(|e| ApiError::Upstream(format!("Stripe answered an unexpected customer: {e}")))?;
        customer.link_stripe(&key, &created.id);
        let as_of = created.created.unwrap_or(now);
        customer.stripe.profiles.insert(created.id.clone(), Tracked { as_of, state: map::profile(&key, &created) });
    }
    match customers::create(state.store.as_ref(), &customer).await {
        Ok(()) => {
            tracing::info!(customer = %customer.id, "customer created by the operator");
            Ok((StatusCode::CREATED, record(&customer)))
        }
        Err(CustomerWriteError::Taken { holder, .. }) => Err(ApiError::Conflict(format!(
            "the email {email} was taken meanwhile (customer {})",
            holder.map_or_else(|| "unknown".to_owned(), |h| h.to_string())
        ))),
        Err(e) => Err(write_error(e)),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Path((raw_id, raw_customer)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Json<CustomerRecord>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let not_found = || ApiError::NotFound("customer not found".into());
    let id = CustomerId::parse(&raw_customer).map_err(|_| not_found())?;
    let change: CustomerChange = parse_json(&bytes)?;
    let email = change.email.as_deref().map(Email::parse).transpose()?;
    let name = change.name.map(|n| name_of(Some(n))).transpose()?;
    if let Some(email) = &email {
        email_free(&state, &publication, email, Some(&id)).await?;
    }
    let store = state.store.as_ref();
    let current = customers::get(store, &publication, &id).await?.ok_or_else(not_found)?;
    let settings = publications::get(store, &publication).await?.map(|s| s.value.settings);

    // Stripe first: a record changed here but not there would be changed back by the next event.
    let mut form = Params::new();
    if let Some(email) = &email {
        form = form.set("email", email.as_str());
    }
    if let Some(name) = &name {
        form = form.set("name", name.clone().unwrap_or_default());
    }
    let now = crate::store::now_epoch();
    let mut pushed = Vec::new();
    if !form.is_empty() {
        for (key, stripe_id) in &current.value.stripe_customer_ids {
            let Some(account) = settings.as_ref().and_then(|s| s.stripe_account(key)) else { continue };
            // The same change of the same version is one Stripe update however often it is retried.
            let digest = &crate::store::repo::keys::hash_hex(&form.encode())[..16];
            let idempotency = format!("crm-{id}-v{}-{digest}", current.version);
            let answer = state
                .stripe
                .post(&StripeAuth::from(account), &format!("/v1/customers/{stripe_id}"), &form, &idempotency)
                .await?;
            let updated: obj::Customer = serde_json::from_value(answer)
                .map_err(|e| ApiError::Upstream(format!("Stripe answered an unexpected customer: {e}")))?;
            pushed.push((key.clone(), updated));
        }
    }

    for _ in 0..5 {
        let found = customers::get(store, &publication, &id).await?.ok_or_else(not_found)?;
        let mut after = found.value.clone();
        if let Some(email) = &email {
            after.email = Some(email.clone());
        }
        if let Some(name) = &name {
            after.name = name.clone();
        }
        // Stripe's profiles as Stripe now holds them, so the record's contact follows them.
        for (key, updated) in &pushed {
            let mut slot = after.stripe.profiles.remove(&updated.id);
            Tracked::replace(&mut slot, map::profile(key, updated), now);
            if let Some(profile) = slot {
                after.stripe.profiles.insert(updated.id.clone(), profile);
            }
        }
        if after == found.value {
            return Ok(record(&after));
        }
        after.updated_at = now;
        match customers::update(store, &found.value, &after, found.version).await {
            Ok(_) => return Ok(record(&after)),
            Err(CustomerWriteError::Stale) => continue,
            Err(CustomerWriteError::Taken { holder, .. }) => {
                return Err(ApiError::Conflict(format!(
                    "the email was taken meanwhile (customer {})",
                    holder.map_or_else(|| "unknown".to_owned(), |h| h.to_string())
                )));
            }
            Err(e) => return Err(write_error(e)),
        }
    }
    Err(ApiError::Unavailable("the customer kept changing; retry".into()))
}

fn write_error(e: CustomerWriteError) -> ApiError {
    match e {
        CustomerWriteError::Store(e) => e.into(),
        other => ApiError::Internal(other.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PianoLink {
    piano_uid: String,
}

/// Links a Piano user to the customer on the operator's word: the review of a possible duplicate
/// (a Piano user whose email another record holds) ends here. The uid's own record, if it has one
/// without Stripe customers, is folded in.
pub async fn link_piano(
    State(state): State<AppState>,
    Path((raw_id, raw_customer)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Json<CustomerRecord>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let id = CustomerId::parse(&raw_customer).map_err(|_| ApiError::NotFound("customer not found".into()))?;
    let link: PianoLink = parse_json(&bytes)?;
    let uid = crate::domain::ids::provider_id(link.piano_uid.trim(), "pianoUid")?;
    let now = crate::store::now_epoch();
    let store = state.store.as_ref();
    let linked = link::link_piano(store, &publication, &id, &uid, link::Evidence::Operator, now).await?;
    Ok(record(&linked.value))
}
