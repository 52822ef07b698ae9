//! `POST /admin/publications/{id}/stripe-accounts/{accountKey}/catch-up?since=&dryRun=`
//! (function `stripe-catch-up`): lists the Stripe events the account's sync missed and puts them on the events queue
//! for `webhook-worker` (`shared::catch_up`); answers the counts and any warning.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::Value;

use super::AppState;
use super::settings::authorize;
use crate::catch_up::{self, Request};
use crate::domain::ids::AccountKey;
use crate::http::ApiError;
use crate::http::form;

pub async fn start(
    State(state): State<AppState>,
    Path((raw_id, raw_account)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let account = AccountKey::parse(&raw_account)?;
    let query = query.unwrap_or_default();
    let since = form::value(&query, "since")
        .map(|s| {
            time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| ApiError::BadRequest("since: an RFC 3339 time, e.g. 2026-01-31T12:00:00Z".into()))
        })
        .transpose()?;
    let dry_run = match form::value(&query, "dryRun").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::BadRequest("dryRun: true or false".into())),
    };
    let request = Request { publication, account, since, dry_run };
    let now = crate::store::now_epoch();
    let report = catch_up::run(state.store.as_ref(), state.stripe.clone(), state.queue.as_ref(), &request, now).await?;
    tracing::info!(listed = report.listed, queued = report.queued, dry_run, "catch-up queued");
    Ok(Json(serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?))
}
