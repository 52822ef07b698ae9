//! `stripe-webhook`: `POST /webhooks/stripe/{publicationId}/{accountKey}`. Verifies the signature over
//! the raw body with the account's signing secrets (read again once when none matches, so a secret
//! made seconds ago is accepted at once), checks the body is a Stripe event, queues it, and
//! answers 200 only once it is queued (a queue failure answers 503, so Stripe retries); then notes
//! the receipt for sync health (`receipts`).

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::AppState;
use crate::domain::ids::{AccountKey, PublicationId};
use crate::http::ApiError;
use crate::http::body::RawBody;
use crate::http::context::{finish, record_event, record_publication};
use crate::http::extract::Path;
use crate::queue::{EVENTS, OutMessage};
use crate::store::repo::publications::StoredSettings;
use crate::stripe::event::Event;
use crate::stripe::signature::{self, SignatureError};
use crate::sync::envelope::{self, Header, MAX_BODY_BYTES, Provider};

pub const PATH: &str = "/webhooks/stripe/{publication_id}/{account_key}";

/// Cached settings younger than this are not read again on a signature miss: a flood of forged
/// deliveries costs at most one read a second per publication.
const REREAD_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

pub fn routes(state: AppState) -> Router {
    Router::new().route(PATH, post(receive)).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).with_state(state)
}

pub fn router(state: AppState) -> Router {
    finish(routes(state))
}

async fn receive(
    State(state): State<AppState>,
    Path((publication, account)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let unknown = || ApiError::NotFound("unknown publication or Stripe account".into());
    let publication = PublicationId::parse(&publication).map_err(|_| unknown())?;
    record_publication(&publication);
    let key = AccountKey::parse(&account).map_err(|_| unknown())?;
    let header = match headers.get("stripe-signature") {
        None => None,
        Some(value) => {
            Some(value.to_str().map_err(|_| ApiError::BadRequest("malformed Stripe-Signature header".into()))?)
        }
    };
    let now = crate::store::now_epoch();
    let tolerance = state.config.stripe_tolerance_secs;
    let verify = |settings: &StoredSettings| -> Result<Result<i64, SignatureError>, ApiError> {
        let account = settings.settings.stripe_account(&key).ok_or_else(unknown)?;
        Ok(signature::verify(header, &body, &account.webhook_secrets, now, tolerance))
    };
    let store = state.store.as_ref();
    let mut verified = verify(&*state.settings.get(store, &publication).await?.ok_or_else(unknown)?)?;
    if verified == Err(SignatureError::NoMatch) {
        // A secret made seconds ago (by the webhook-endpoint route) is not in the cached settings yet:
        // they are read again once before the delivery is refused.
        let fresh = state.settings.reread(store, &publication, REREAD_AFTER).await?.ok_or_else(unknown)?;
        verified = verify(&fresh)?;
    }
    verified.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let event = Event::check(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // A parsed JSON document is UTF-8.
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;

    let header = Header {
        provider: Provider::Stripe,
        publication,
        account: Some(key),
        received_at: now,
        received_at_us: None,
        event_id: None,
        event_type: Some(event.kind.clone()),
    };
    state
        .queue
        .send(EVENTS.name, &[OutMessage::new(envelope::encode(&header, text))])
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not queue event {}: {e}", event.id)))?;
    record_event(event.id.as_str(), &event.kind);
    state.receipts.note(state.store.as_ref(), &header, Some(&event.kind)).await;
    Ok(Json(json!({ "received": true })))
}
