//! `POST /admin/publications/{id}/backfill` starts (or resumes) a Stripe account's backfill, or with
//! `"provider": "piano"` the Piano application's history import, and queues its first slice on the
//! jobs queue (function `backfill-start`); `GET` reports every job with its progress
//! (`backfill-status`). The `backfill` Lambda (or `crm serve`'s jobs worker) runs the slices.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::settings::authorize;
use crate::backfill::{PianoRunner, Runner};
use crate::domain::ids::AccountKey;
use crate::domain::record::rfc3339;
use crate::http::ApiError;
use crate::http::body::{JsonBytes, parse_json};
use crate::http::extract::Path;
use crate::jobs::{self, JobMessage};
use crate::store::repo::backfill::{self as stored, BackfillJob};

#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Provider {
    #[default]
    Stripe,
    Piano,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    #[serde(default)]
    provider: Provider,
    /// The Stripe account (required for Stripe).
    #[serde(default)]
    account: Option<String>,
    /// Requests per second; by default the key's (25 in test mode, 90 live), 10 for Piano.
    #[serde(default)]
    rate: Option<u32>,
}

pub async fn start(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let wanted: Start = parse_json(&bytes)?;
    let (job, created, message) = match (&wanted.provider, wanted.account.as_deref()) {
        (Provider::Stripe, Some(account)) => {
            let account = AccountKey::parse(account)?;
            let runner = Runner::new(state.store.clone(), state.stripe.clone());
            let (job, created) = runner.start(&publication, &account, wanted.rate).await?;
            (job, created, JobMessage::Backfill { publication: publication.clone(), account })
        }
        (Provider::Stripe, None) => {
            return Err(ApiError::BadRequest("account is required for a Stripe backfill".into()));
        }
        (Provider::Piano, Some(_)) => {
            return Err(ApiError::BadRequest("account names a Stripe account; a Piano import takes none".into()));
        }
        (Provider::Piano, None) => {
            let runner =
                PianoRunner::new(state.store.clone(), state.piano.clone(), state.config.piano_api_base.clone());
            let (job, created) = runner.start(&publication, wanted.rate).await?;
            (job, created, JobMessage::PianoBackfill { publication: publication.clone() })
        }
    };
    // Queued for a running job too: if its runner stopped for good, this resumes it; if not, the
    // slice finds the job held and looks again when the lease is out.
    jobs::enqueue(state.queue.as_ref(), &message, 0)
        .await
        .map_err(|e| ApiError::Unavailable(format!("jobs queue: {e}")))?;
    tracing::info!(job = %job.id, created, "backfill queued");
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(view(&job))))
}

pub async fn report(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let jobs = stored::list(state.store.as_ref(), &publication).await?;
    Ok(Json(json!({ "data": jobs.iter().map(view).collect::<Vec<_>>() })))
}

/// A job as the API shows it: times in RFC 3339, each stage's progress, and the pace so far.
pub fn view(job: &BackfillJob) -> Value {
    let elapsed = job.finished_at.unwrap_or(job.updated_at) - job.started_at;
    let stages: Vec<Value> = job
        .stages
        .iter()
        .map(|s| {
            json!({
                "objectType": s.kind.name(),
                "done": s.done,
                "objects": s.objects,
                "skipped": s.skipped,
                "reachedCreated": s.reached.and_then(rfc3339),
                "progress": progress(job, s),
            })
        })
        .collect();
    json!({
        "id": job.id,
        "provider": job.provider,
        "account": job.account,
        "state": job.state,
        "rate": job.rate,
        "startedAt": rfc3339(job.started_at),
        "updatedAt": rfc3339(job.updated_at),
        "finishedAt": job.finished_at.and_then(rfc3339),
        "objects": job.objects(),
        "objectsPerSecond": if elapsed > 0 { job.objects() as f64 / elapsed as f64 } else { 0.0 },
        "requests": job.requests,
        "rateLimited": job.rate_limited,
        "stages": stages,
        "skippedIds": job.skipped_ids,
        "error": job.error,
    })
}

/// How far a stage has come, from 0 to 1: done is 1; otherwise the share of the list Piano said it
/// holds, or of the Stripe account's history (from its creation to the job's start) already listed,
/// newest first. `None` without either.
pub fn progress(job: &BackfillJob, stage: &stored::Stage) -> Option<f64> {
    if stage.done {
        return Some(1.0);
    }
    if let Some(total) = stage.total.filter(|t| *t > 0) {
        return Some((stage.objects as f64 / total as f64).clamp(0.0, 0.99));
    }
    let (from, reached) = (job.history_from?, stage.reached?);
    let span = (job.started_at - from).max(1) as f64;
    Some(((job.started_at - reached) as f64 / span).clamp(0.0, 0.99))
}
