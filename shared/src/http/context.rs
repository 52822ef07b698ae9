//! Every request runs in a span carrying its request id (Lambda's, the caller's `x-request-id`,
//! or a new one) and, once known, the publication id and a webhook's event, so each log line names
//! them. Also the layers every router gets: body limit, panic → 500 JSON, JSON 404/405.

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use super::ApiError;
use crate::domain::ids::PublicationId;

const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being handled (the one in its logs and its `x-request-id` answer header),
/// for messages that ask the caller to quote it.
pub fn current_request_id() -> String {
    CURRENT_REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| ulid::Ulid::new().to_string())
}

fn request_id(req: &Request) -> String {
    if let Some(ctx) = req.extensions().get::<lambda_http::Context>() {
        return ctx.request_id.clone();
    }
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned)
}

async fn in_request_span(req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        publication_id = tracing::field::Empty,
        event_id = tracing::field::Empty,
        event_type = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = CURRENT_REQUEST_ID.scope(id.clone(), next.run(req).instrument(span.clone())).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request done"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Names the publication on the request's span (and so on every later log line of it).
pub fn record_publication(id: &PublicationId) {
    tracing::Span::current().record("publication_id", id.as_str());
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::Internal("panic".into()).into_response()
}

/// Names the provider event a webhook request delivered on its span: its "request done" line says
/// what was queued, without a line of its own per event.
pub fn record_event(id: &str, event_type: &str) {
    // At once: the JSON log layer writes the span's fields anew on each record.
    tracing::record_all!(tracing::Span::current(), event_id = id, event_type = event_type);
}

/// Wraps a function's routes with the layers every route shares.
/// Routes set their own body limit (`DefaultBodyLimit`); this is the default for the rest.
pub fn finish(router: Router) -> Router {
    router
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, axum::Json(serde_json::json!({"error": "method not allowed"})))
        })
        .layer(DefaultBodyLimit::max(super::body::MAX_ADMIN_BODY))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(in_request_span))
}
