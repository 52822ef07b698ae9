//! `piano-webhook`: `GET|POST /webhooks/piano/{publicationId}`, the one URL Piano allows. Checks and
//! decrypts `data` (query, form or JSON body; signed unless the publication accepts unsigned data),
//! ignores an event received before (by its decrypted content, so a re-encoded replay too), then
//! queues the event for the CRM and one forward job per legacy endpoint of the publication, and
//! answers 200 at once: a legacy endpoint never makes
//! Piano wait or retry. The receipt is then noted for sync health (`receipts`).

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, Method, header::CONTENT_TYPE};
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;
use crate::domain::ids::PublicationId;
use crate::http::ApiError;
use crate::http::body::RawBody;
use crate::http::context::{finish, record_publication};
use crate::http::extract::Path;
use crate::piano::forward::Replay;
use crate::piano::webhook::{decrypt, event_identity, event_type, is_signed};
use crate::queue::{EVENTS, FORWARD, OutMessage};
use crate::store::repo::piano_seen as seen;
use crate::sync::envelope::{self, Header, MAX_BODY_BYTES, Provider};

pub const PATH: &str = "/webhooks/piano/{publication_id}";

pub fn routes(state: AppState) -> Router {
    Router::new().route(PATH, get(receive).post(receive)).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).with_state(state)
}

pub fn router(state: AppState) -> Router {
    finish(routes(state))
}

fn form_value(text: &str, name: &str) -> Option<String> {
    crate::http::form::value(text, name)
}

/// `data` from the query string, a form body or a JSON body, in that order.
fn data_of(query: Option<&str>, content_type: Option<&str>, body: &str) -> Option<String> {
    let from_query = query.and_then(|q| form_value(q, "data"));
    let from_body = || match content_type.unwrap_or_default() {
        t if t.starts_with("application/x-www-form-urlencoded") => form_value(body, "data"),
        t if t.starts_with("application/json") => {
            serde_json::from_str::<Value>(body).ok()?.get("data")?.as_str().map(str::to_owned)
        }
        _ => None,
    };
    from_query.or_else(from_body).filter(|d| !d.is_empty())
}

/// How long a received Piano event is remembered, so a captured `data` replayed later is ignored
/// (longer than the ledger's 35 days: a replay is cheap to make).
const SEEN_FOR_SECONDS: i64 = 400 * 86_400;

async fn receive(
    State(state): State<AppState>,
    Path(publication): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let unknown = || ApiError::NotFound("unknown publication".into());
    let publication = PublicationId::parse(&publication).map_err(|_| unknown())?;
    record_publication(&publication);
    let settings = state.settings.get(state.store.as_ref(), &publication).await?.ok_or_else(unknown)?;
    let piano = settings.settings.piano.as_ref().ok_or_else(unknown)?;

    let body = String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let data = data_of(query.as_deref(), content_type.as_deref(), &body)
        .ok_or_else(|| ApiError::BadRequest("missing data".into()))?;
    if !piano.accept_unsigned_webhooks && !is_signed(&data) {
        return Err(ApiError::BadRequest(
            "Piano data without its HMAC is refused (piano.acceptUnsignedWebhooks allows it)".into(),
        ));
    }
    let plaintext = decrypt(&data, &piano.private_key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // The worker parses the event; here it need only be a JSON object (its type goes to the log).
    let kind = event_type(&plaintext).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let event_id = event_identity(&plaintext).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let store = state.store.as_ref();
    if seen::received(store, &publication, &event_id).await? {
        // Delivered before (Piano retrying an answer it lost, or a replay): Piano moves on, and neither
        // the CRM nor a legacy endpoint gets it twice.
        tracing::info!(event = %event_id, "Piano event received before; not queued again");
        return Ok(Json(json!({ "received": true, "duplicate": true })));
    }

    let replay = Replay {
        publication: &publication,
        method: method.as_str(),
        query: query.as_deref(),
        content_type: content_type.as_deref(),
        body: &body,
    };
    let jobs: Vec<OutMessage> = piano
        .legacy_webhook_urls
        .iter()
        .map(|url| replay.job(url.url().as_str()).map(OutMessage::new))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // The CRM's copy first: when it cannot be queued, Piano retries and no endpoint got it twice.
    let now = time::OffsetDateTime::now_utc();
    let header = Header {
        provider: Provider::Piano,
        publication: publication.clone(),
        account: None,
        received_at: now.unix_timestamp(),
        received_at_us: i64::try_from(now.unix_timestamp_nanos() / 1000).ok(),
        event_id: Some(event_id.clone()),
        event_type: None,
    };
    let crm = OutMessage::new(envelope::encode(&header, &plaintext));
    state.queue.send(EVENTS.name, &[crm]).await.map_err(|e| ApiError::Unavailable(format!("CRM event: {e}")))?;
    if !jobs.is_empty() {
        state.queue.send(FORWARD.name, &jobs).await.map_err(|e| ApiError::Unavailable(format!("forward jobs: {e}")))?;
    }
    tracing::info!(kind = kind.as_deref().unwrap_or("unknown"), forwards = jobs.len(), "Piano event received");
    // After queueing: a failure before it leaves Piano's retry free to queue the event.
    if let Err(e) = seen::remember(store, &publication, &event_id, now.unix_timestamp() + SEEN_FOR_SECONDS).await {
        tracing::warn!(error = %e, "Piano event not remembered; a replay of it would be queued again");
    }
    state.receipts.note(state.store.as_ref(), &header, kind.as_deref()).await;
    Ok(Json(json!({ "received": true })))
}
