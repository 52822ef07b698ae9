//! `GET /admin/publications/{id}/exports/{customers|subscriptions|invoices}?format=csv|jsonl`
//! (function `exports`): the export streamed page by page (`crate::export`), with a file name to save.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::settings::authorize;
use crate::export::{Export, Format, Kind};
use crate::http::ApiError;
use crate::http::extract::{Path, Query};

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
}

pub async fn export(
    State(state): State<AppState>,
    Path((raw_id, raw_kind)): Path<(String, String)>,
    Query(query): Query<ExportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let kind = Kind::parse(&raw_kind)
        .ok_or_else(|| ApiError::NotFound("exports are customers, subscriptions or invoices".into()))?;
    let format = Format::parse(query.format.as_deref().unwrap_or("csv"))
        .ok_or_else(|| ApiError::BadRequest("format must be csv or jsonl".into()))?;
    let store = state.store.clone();
    let mut export = Export::new(publication.clone(), kind, format);
    // The first page is read before answering, so a store failure is a clean error, not a cut stream.
    let first = export.next_chunk(store.as_ref()).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let rest = futures::stream::unfold((export, store), |(mut export, store)| async move {
        match export.next_chunk(store.as_ref()).await {
            Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), (export, store))),
            Ok(None) => None,
            // Mid-stream, the only way left to say it failed is to cut the body short.
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), (export, store))),
        }
    });
    let body =
        Body::from_stream(futures::StreamExt::chain(futures::stream::iter(first.map(Ok::<_, std::io::Error>)), rest));
    let extension = if format == Format::Csv { "csv" } else { "jsonl" };
    let disposition = format!("attachment; filename=\"{publication}-{raw_kind}.{extension}\"");
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
