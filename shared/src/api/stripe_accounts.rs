//! `POST /admin/publications/{id}/stripe-accounts/{accountKey}/webhook-endpoint` (the `stripe-webhook-endpoint` function):
//! points the account's Stripe webhook endpoint at this deployment and keeps its signing secret; and
//! learns the account's `acct_…` id from Stripe, which the public list shows.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::settings::authorize;
use crate::domain::ids::{AccountKey, PublicationId};
use crate::domain::secret::Secret;
use crate::domain::settings::StripeAccount;
use crate::http::ApiError;
use crate::http::extract::Path;
use crate::http::public_url::PublicBaseUrl;
use crate::store::repo::{publications, stripe_account_ids};
use crate::stripe::client::{Params, StripeAuth};
use crate::stripe::endpoints;
use crate::stripe::event::Event;

pub async fn connect_webhook(
    State(state): State<AppState>,
    Path((raw_id, raw_account)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, id) = authorize(&state, &headers, &raw_id).await?;
    let no_account = || ApiError::NotFound(format!("publication {id} has no Stripe account {raw_account}"));
    let key = AccountKey::parse(&raw_account).map_err(|_| no_account())?;
    let base = PublicBaseUrl::from_request(&headers, state.config.public_base_url.as_ref())?;
    let url = base.join(&format!("/webhooks/stripe/{id}/{key}"));
    let stored = publications::get(state.store.as_ref(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("publication {id} not found")))?;
    let account = stored.value.settings.stripe_account(&key).ok_or_else(no_account)?;
    let description = format!("Subscription CRM: {id}/{key}");
    let connected = endpoints::connect(
        state.stripe.as_ref(),
        &StripeAuth::from(account),
        &url,
        &description,
        !account.webhook_secrets.is_empty(),
    )
    .await?;
    let secrets = match &connected.new_secret {
        Some(secret) => keep_secret(&state, &id, &key, secret).await?,
        None => account.webhook_secrets.clone(),
    };
    tracing::info!(endpoint = %connected.endpoint_id, created = connected.created, "Stripe webhook endpoint connected");
    let account_id = account_id(&state, &id, account).await;
    let status = if connected.created { StatusCode::CREATED } else { StatusCode::OK };
    let body = json!({
        "endpointId": connected.endpoint_id,
        "accountId": account_id,
        "url": connected.url,
        "created": connected.created,
        "enabledEvents": Event::ENABLED_EVENTS,
        "webhookSecrets": secrets.iter().map(Secret::masked).collect::<Vec<_>>(),
    });
    Ok((status, Json(body)).into_response())
}

/// Adds the new signing secret to the account (older ones stay, for events signed before the change).
async fn keep_secret(
    state: &AppState,
    id: &PublicationId,
    key: &AccountKey,
    secret: &Secret,
) -> Result<Vec<Secret>, ApiError> {
    for _ in 0..5 {
        let current = publications::get(state.store.as_ref(), id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("publication {id} not found")))?;
        let mut stored = current.value;
        let Some(account) = stored.settings.stripe_accounts.iter_mut().find(|a| &a.key == key) else {
            return Err(ApiError::Conflict(format!("Stripe account {key} was removed meanwhile")));
        };
        if !account.webhook_secrets.contains(secret) {
            account.webhook_secrets.push(secret.clone());
        }
        let secrets = account.webhook_secrets.clone();
        stored.updated_at = crate::store::now_epoch();
        match publications::put(state.store.as_ref(), &stored, Some(current.version)).await {
            Ok(_) => return Ok(secrets),
            Err(publications::PutError::Stale) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict("settings kept changing; retry".into()))
}

/// The account's `acct_…` id: as the operator set it, else as Stripe reported it (`GET /v1/account`,
/// asked once and kept). `None` when Stripe cannot say (a restricted key, an outage): the id is only
/// shown, never needed.
pub(crate) async fn account_id(
    state: &AppState,
    publication: &PublicationId,
    account: &StripeAccount,
) -> Option<String> {
    if let Some(id) = &account.account_id {
        return Some(id.clone());
    }
    let store = state.store.as_ref();
    match stripe_account_ids::get(store, publication, account).await {
        Ok(Some(id)) => return Some(id),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "Stripe account id not read");
            return None;
        }
    }
    let answer = match state.stripe.get(&StripeAuth::from(account), "/v1/account", &Params::new()).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::info!(error = %e, account = %account.key, "Stripe account id unknown for now");
            return None;
        }
    };
    let id = answer.get("id").and_then(serde_json::Value::as_str).filter(|id| {
        id.starts_with("acct_") && id.len() <= 255 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })?;
    if let Err(e) = stripe_account_ids::put(store, publication, account, id, crate::store::now_epoch()).await {
        tracing::warn!(error = %e, "Stripe account id not kept; asked again next time");
    }
    Some(id.to_owned())
}
