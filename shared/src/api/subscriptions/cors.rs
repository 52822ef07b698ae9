//! CORS for the public routes: a response (errors included, so pages can show them) and a preflight
//! carry `Access-Control-Allow-Origin` for the requesting origin only when a publication serves
//! pages from it; `Vary: Origin` always, so caches never hand one origin's answer to another.

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE,
    ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::domain::settings::Origin;
use crate::http::ApiError;
use crate::store::repo::publications;

/// The request's origin, normalised, when a publication serves pages from it.
async fn allowed_origin(state: &AppState, headers: &HeaderMap) -> Result<Option<HeaderValue>, ApiError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()).and_then(|v| Origin::parse(v).ok()) else {
        return Ok(None);
    };
    if !publications::origin_is_configured(state.store.as_ref(), origin.as_str()).await? {
        return Ok(None);
    }
    Ok(HeaderValue::from_str(origin.as_str()).ok())
}

/// Adds the CORS headers to every answer of the public routes.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let allowed = allowed_origin(&state, request.headers()).await;
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.append(VARY, HeaderValue::from_static("Origin"));
    if let Ok(Some(origin)) = allowed {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// `OPTIONS` on each public path: 204 with what the browser may send, for a configured origin only.
pub async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if allowed_origin(&state, &headers).await?.is_none() {
        return Err(ApiError::Forbidden("Origin not allowed.".into()));
    }
    let allow = [
        (ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE, OPTIONS")),
        (ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type")),
        (ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600")),
    ];
    Ok((StatusCode::NO_CONTENT, allow).into_response())
}
