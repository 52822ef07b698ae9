//! The three public routes. Every Stripe object is answered as Stripe returned it (plus the CRM's
//! account fields on the list); every Stripe write carries an Idempotency-Key tied to the request.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::{self, bad};
use super::resolve::{self, Caller};
use crate::api::AppState;
use crate::domain::settings::{ChangeAt, StripeAccount};
use crate::http::ApiError;
use crate::http::body::RawBody;
use crate::http::context::current_request_id;
use crate::http::extract::Path;
use crate::stripe::client::{Params, StripeAuth, StripeError};

/// Stripe's list limit.
const PAGE: &str = "100";

/// A Stripe failure the seed has no message for: the admin-facing mapping, except a refused key.
/// A Stripe failure as a reader sees it: the seed's message for a refused key, a retry for what may
/// pass, otherwise a generic failure with the request id; Stripe's own text only in the log.
fn stripe_failure(e: StripeError) -> ApiError {
    match e {
        StripeError::Api { status: 401 | 403, .. } => bad(errors::NO_STRIPE_CLIENT),
        e if e.is_transient() => ApiError::Unavailable(format!("Stripe: {e}")),
        e => errors::stripe_failed(e),
    }
}

fn idempotency_key(action: &str, subscription: &str) -> String {
    format!("crm-{action}-{subscription}-{}", current_request_id())
}

fn id_of(value: &Value) -> Option<&str> {
    value.as_str().or_else(|| value.get("id").and_then(Value::as_str))
}

/// `GET /api/subscriptions`: every subscription of the reader's Stripe customers, all statuses.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = resolve::caller(&state, &headers, query.as_deref()).await?;
    let mut subscriptions = Vec::new();
    for (account, customers) in &caller.accounts {
        let auth = StripeAuth::from(account);
        let mut listed = Vec::new();
        for customer in customers {
            let mut params = Params::new()
                .set("customer", customer.clone())
                .set("status", "all")
                .set("limit", PAGE)
                .list("expand", ["data.schedule"]);
            loop {
                let page = state.stripe.get(&auth, "/v1/subscriptions", &params).await.map_err(stripe_failure)?;
                let data = page["data"].as_array().cloned().unwrap_or_default();
                let last = data.last().and_then(|s| s["id"].as_str()).map(str::to_owned);
                listed.extend(data);
                match last {
                    Some(last) if page["has_more"] == Value::Bool(true) => {
                        params = params.set("starting_after", last);
                    }
                    _ => break,
                }
            }
        }
        // Asked of Stripe after its first answer here, so a refused key is reported as the seed says.
        let account_id =
            crate::api::stripe_accounts::account_id(&state, &caller.publication.publication_id, account).await;
        subscriptions.extend(listed.into_iter().map(|s| with_account(s, account, account_id.as_deref())));
    }
    Ok(Json(json!({ "subscriptions": subscriptions })))
}

fn with_account(mut subscription: Value, account: &StripeAccount, account_id: Option<&str>) -> Value {
    if let Some(object) = subscription.as_object_mut() {
        object.insert("stripeAccountId".into(), json!(account_id));
        object.insert("stripeAccountName".into(), json!(account.name));
    }
    subscription
}

/// The subscription, when it belongs to one of the reader's Stripe customers; otherwise the same
/// answer whether it exists elsewhere or not.
async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<(StripeAccount, Value), ApiError> {
    let not_found = || bad(errors::SUBSCRIPTION_NOT_FOUND);
    let valid = id.starts_with("sub_") && id.len() <= 255 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(not_found());
    }
    for (account, customers) in &caller.accounts {
        let auth = StripeAuth::from(account);
        let params = Params::new().list("expand", ["schedule"]);
        match state.stripe.get(&auth, &format!("/v1/subscriptions/{id}"), &params).await {
            Ok(subscription) => {
                let customer = id_of(&subscription["customer"]).unwrap_or_default();
                if customers.iter().any(|c| c == customer) {
                    return Ok((account.clone(), subscription));
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(stripe_failure(e)),
        }
    }
    Err(not_found())
}

/// `DELETE /api/subscriptions/{id}`: cancel at the end of the period, releasing a schedule first.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = resolve::caller(&state, &headers, query.as_deref()).await?;
    resolve::confirm_with_piano(&state, &caller).await?;
    let (account, subscription) = owned(&state, &caller, &id).await?;
    let auth = StripeAuth::from(&account);
    // A schedule manages the subscription's cancellation; Stripe refuses the update until it is released.
    if let Some(schedule) = id_of(&subscription["schedule"]) {
        let path = format!("/v1/subscription_schedules/{schedule}/release");
        state.stripe.post(&auth, &path, &Params::new(), &idempotency_key("release", &id)).await.map_err(|e| {
            tracing::warn!(error = %e, subscription = %id, "schedule release failed");
            bad(errors::FAILED_TO_RELEASE)
        })?;
    }
    let form = Params::new().set("cancel_at_period_end", "true");
    let updated = state
        .stripe
        .post(&auth, &format!("/v1/subscriptions/{id}"), &form, &idempotency_key("cancel", &id))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, subscription = %id, "cancel at period end failed");
            bad(errors::FAILED_TO_CANCEL)
        })?;
    tracing::info!(subscription = %id, "subscription set to cancel at period end");
    Ok(Json(json!({ "success": true, "data": updated })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WinbackBody {
    subscription_id: String,
    new_price_id: String,
}

/// `POST /api/subscriptions/winback`: applies an offered price, now or from the next period.
pub async fn winback(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let caller = resolve::caller(&state, &headers, query.as_deref()).await?;
    resolve::confirm_with_piano(&state, &caller).await?;
    let body: WinbackBody = serde_json::from_slice(&body)
        .ok()
        .filter(|b: &WinbackBody| !b.subscription_id.is_empty() && !b.new_price_id.is_empty())
        .ok_or_else(|| bad("Invalid body: subscriptionId and newPriceId are required."))?;
    let (account, subscription) = owned(&state, &caller, &body.subscription_id).await?;
    let item = &subscription["items"]["data"][0];
    let (Some(item_id), Some(current_price)) = (item["id"].as_str(), id_of(&item["price"])) else {
        return Err(bad(errors::SUBSCRIPTION_NOT_FOUND));
    };
    let offer = caller
        .publication
        .settings
        .winback_offers
        .iter()
        .find(|o| o.price_id == body.new_price_id && o.applies_to_price_ids.iter().any(|p| p == current_price))
        .ok_or_else(|| bad("This price is not offered for this subscription."))?;
    let auth = StripeAuth::from(&account);
    let id = body.subscription_id.as_str();
    match offer.change_at {
        ChangeAt::Now => {
            let form = Params::new()
                .set("items[0][id]", item_id)
                .set("items[0][price]", body.new_price_id.clone())
                .set("proration_behavior", "none");
            let path = format!("/v1/subscriptions/{id}");
            state
                .stripe
                .post(&auth, &path, &form, &idempotency_key("winback", id))
                .await
                .map_err(errors::plan_change_failed)?;
            tracing::info!(subscription = %id, price = %body.new_price_id, "winback price applied now");
            Ok(Json(json!({ "data": { "message": "Plan changed. No schedule for this price." }, "error": null })))
        }
        ChangeAt::PeriodEnd => {
            let period_end = item["current_period_end"].as_i64().or(subscription["current_period_end"].as_i64());
            let period_end =
                period_end.ok_or_else(|| errors::plan_change_failed("the subscription has no current period"))?;
            let quantity = item["quantity"].as_u64().unwrap_or(1).to_string();
            let schedule = match id_of(&subscription["schedule"]) {
                Some(existing) => {
                    state.stripe.get(&auth, &format!("/v1/subscription_schedules/{existing}"), &Params::new()).await
                }
                None => {
                    let form = Params::new().set("from_subscription", id);
                    state
                        .stripe
                        .post(&auth, "/v1/subscription_schedules", &form, &idempotency_key("schedule", id))
                        .await
                }
            }
            .map_err(errors::plan_change_failed)?;
            let schedule_id = schedule["id"].as_str().unwrap_or_default().to_owned();
            let start = schedule["phases"][0]["start_date"].as_i64().or(item["current_period_start"].as_i64());
            let start = start.ok_or_else(|| errors::plan_change_failed("the schedule has no current phase"))?;
            let form = Params::new()
                .set("phases[0][items][0][price]", current_price)
                .set("phases[0][items][0][quantity]", quantity.clone())
                .set("phases[0][start_date]", start.to_string())
                .set("phases[0][end_date]", period_end.to_string())
                .set("phases[1][items][0][price]", body.new_price_id.clone())
                .set("phases[1][items][0][quantity]", quantity)
                .set("phases[1][iterations]", "1")
                .set("end_behavior", "release")
                .set("proration_behavior", "none");
            let path = format!("/v1/subscription_schedules/{schedule_id}");
            state
                .stripe
                .post(&auth, &path, &form, &idempotency_key("phases", id))
                .await
                .map_err(errors::plan_change_failed)?;
            tracing::info!(subscription = %id, price = %body.new_price_id, period_end, "winback price scheduled");
            Ok(Json(json!({
                "success": true,
                "message": "Subscription plan will change at the end of your current billing period",
                "data": { "subscriptionId": id, "currentPeriodEnd": period_end, "newPriceId": body.new_price_id },
            })))
        }
    }
}
