//! `revenue-api`: `GET /admin/publications/{id}/revenue?from=YYYY-MM&to=YYYY-MM`, the revenue report
//! of docs/metrics.md for a range of months (default: the twelve months ending with the current one).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;

use super::AppState;
use super::settings::authorize;
use crate::domain::revenue::{Report, month_of, months_between};
use crate::http::ApiError;
use crate::http::context::finish;
use crate::http::extract::{Path, Query};
use crate::store::repo::revenue;

/// The longest range a report covers.
const MAX_MONTHS: usize = 120;

pub fn routes(state: AppState) -> Router {
    Router::new().route("/admin/publications/{publication_id}/revenue", get(report)).with_state(state)
}

pub fn router(state: AppState) -> Router {
    finish(routes(state))
}

#[derive(Deserialize)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `YYYY-MM` (or the month of a `YYYY-MM-DD`), checked.
fn month(text: &str, field: &str) -> Result<String, ApiError> {
    let bad = || ApiError::BadRequest(format!("{field} must be a month like 2026-01"));
    let month = text.get(..7).filter(|_| text.len() == 7 || text.len() == 10).ok_or_else(bad)?;
    let (year, mo) = month.split_once('-').ok_or_else(bad)?;
    match (year.parse::<u16>(), mo.parse::<u8>()) {
        (Ok(y), Ok(m)) if (1970..=9999).contains(&y) && (1..=12).contains(&m) && year.len() == 4 && mo.len() == 2 => {
            Ok(month.to_owned())
        }
        _ => Err(bad()),
    }
}

async fn report(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(range): Query<RangeQuery>,
    headers: HeaderMap,
) -> Result<Json<Report>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let now = time::OffsetDateTime::now_utc();
    let to = match &range.to {
        Some(text) => month(text, "to")?,
        None => month_of(now.unix_timestamp()),
    };
    let from = match &range.from {
        Some(text) => month(text, "from")?,
        None => {
            let (y, m) = to
                .split_once('-')
                .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<i32>().ok()?)))
                .unwrap_or((1970, 1));
            let index = y * 12 + (m - 1) - 11;
            format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
        }
    };
    let span = months_between(&from, &to).len();
    if span == 0 {
        return Err(ApiError::BadRequest("from must not be after to".into()));
    }
    if span > MAX_MONTHS {
        return Err(ApiError::BadRequest(format!("a report covers at most {MAX_MONTHS} months")));
    }
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let summary = revenue::summary(state.store.as_ref(), &publication, now_ms).await?;
    Ok(Json(summary.report(&from, &to)))
}
