//! Publication settings (create/replace, read masked) and publication keys: issued (optionally
//! expiring), listed, revoked (functions `settings-get`, `settings-put`, `keys-issue`, `keys-list`,
//! `keys-revoke`); the group router also merges Stripe webhook endpoints, Piano's
//! webhook URL, backfills and catch-ups (`admin_routes`).
//!
//! The settings carry an `ETag` (their version); a PUT with `If-Match` replaces only that
//! version, and every PUT is a conditional write, so concurrent edits never silently overwrite.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::domain::ids::PublicationId;
use crate::domain::record::rfc3339;
use crate::domain::settings::PublicationSettings;
use crate::http::ApiError;
use crate::http::auth::{Principal, issue_publication_key};
use crate::http::body::{JsonBytes, RawBody, parse_json};
use crate::http::context::{finish, record_publication};
use crate::http::extract::Path;
use crate::store::repo::keys;
use crate::store::repo::publications::{self, StoredSettings};

/// The settings group's routes (`admin_routes`, one function each), for `crm serve` to merge.
pub fn routes(state: AppState) -> Router {
    super::admin_routes::routes(super::admin_routes::group(super::admin_routes::Group::Settings), state)
}

/// The settings group's routes with the layers of a function's router (tests).
pub fn router(state: AppState) -> Router {
    finish(routes(state))
}

/// Authenticates the caller and checks they may see the publication named in the path.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    raw_id: &str,
) -> Result<(Principal, PublicationId), ApiError> {
    let principal = state.admin.authenticate(headers, state.store.as_ref()).await?;
    let id = PublicationId::parse(raw_id)?;
    record_publication(&id);
    principal.can_see(&id)?;
    Ok((principal, id))
}

fn etag(version: u64) -> HeaderValue {
    // Digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().trim_matches('"').parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest("If-Match must be an ETag from a previous answer".into()))
}

pub(super) async fn get_settings(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, id) = authorize(&state, &headers, &raw_id).await?;
    let stored = publications::get(state.store.as_ref(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("publication {id} not found")))?;
    Ok(([(ETAG, etag(stored.version))], Json(stored.value.settings.masked())).into_response())
}

pub(super) async fn put_settings(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let (_, id) = authorize(&state, &headers, &raw_id).await?;
    let expected = if_match(&headers)?;
    let current = publications::get(state.store.as_ref(), &id).await?;
    if let Some(wanted) = expected
        && current.as_ref().map(|c| c.version) != Some(wanted)
    {
        return Err(ApiError::PreconditionFailed("settings changed since that ETag; read them again".into()));
    }
    let settings = PublicationSettings::parse(&body, current.as_ref().map(|c| &c.value.settings))?;
    let stored = StoredSettings { publication_id: id.clone(), settings, updated_at: crate::store::now_epoch() };
    let version = match publications::put(state.store.as_ref(), &stored, current.as_ref().map(|c| c.version)).await {
        Ok(v) => v,
        Err(publications::PutError::Stale) => {
            return Err(ApiError::Conflict("settings were changed by another request; read them and retry".into()));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(version, "publication settings saved");
    let status = if current.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, [(ETAG, etag(version))], Json(stored.settings.masked())).into_response())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewKey {
    /// The key stops working this many days from now (1 to 3650); without it, it does not expire.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// `POST …/keys`: a new publication key, shown once (operator only), optionally expiring.
pub(super) async fn issue_key(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (principal, id) = authorize(&state, &headers, &raw_id).await?;
    operator_only(&principal, "issue publication keys")?;
    // The body is optional: `curl -X POST` with none issues a key that does not expire.
    let wanted: NewKey = if body.iter().all(u8::is_ascii_whitespace) {
        NewKey { expires_in_days: None }
    } else {
        let json =
            headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&body)?
    };
    let now = crate::store::now_epoch();
    let expires_at = match wanted.expires_in_days {
        Some(days @ 1..=3650) => Some(now + i64::from(days) * 86_400),
        Some(_) => return Err(ApiError::BadRequest("expiresInDays must be 1 to 3650".into())),
        None => None,
    };
    if publications::get(state.store.as_ref(), &id).await?.is_none() {
        return Err(ApiError::NotFound(format!("publication {id} not found")));
    }
    let (key, record) = issue_publication_key(state.store.as_ref(), &id, expires_at).await?;
    tracing::info!(key_id = %record.key_id, "publication key issued");
    let body = json!({"publicationId": id, "keyId": record.key_id, "key": key,
                      "expiresAt": record.expires_at.and_then(rfc3339)});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A leaked publication key must not mint itself successors, nor revoke the keys that replace it.
fn operator_only(principal: &Principal, what: &str) -> Result<(), ApiError> {
    match principal {
        Principal::Operator => Ok(()),
        Principal::Publication(_) => Err(ApiError::Forbidden(format!("only the operator key can {what}"))),
    }
}

/// `GET …/keys`: the publication's keys with a masked prefix, creation, expiry and last use; never a key.
pub(super) async fn list_keys(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (_, id) = authorize(&state, &headers, &raw_id).await?;
    let listed = keys::list(state.store.as_ref(), &id).await?;
    let data: Vec<_> = listed
        .iter()
        .map(|k| {
            json!({"keyId": k.key_id, "prefix": k.prefix, "createdAt": rfc3339(k.created_at),
                   "expiresAt": k.expires_at.and_then(rfc3339), "lastUsedAt": k.last_used_at.and_then(rfc3339)})
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `DELETE …/keys/{keyId}`: the key stops working at once (operator only).
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    Path((raw_id, key_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (principal, id) = authorize(&state, &headers, &raw_id).await?;
    operator_only(&principal, "revoke publication keys")?;
    let not_found = || ApiError::NotFound(format!("publication {id} has no key {key_id}"));
    if key_id.len() != 12 || !key_id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
        return Err(not_found());
    }
    if !keys::revoke(state.store.as_ref(), &id, &key_id).await? {
        return Err(not_found());
    }
    tracing::info!(%key_id, "publication key revoked");
    Ok(StatusCode::NO_CONTENT)
}
