//! Request bodies: JSON only, size-limited, read as raw bytes so parsers see exactly what was sent.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;

use super::ApiError;

/// Largest admin request body accepted.
pub const MAX_ADMIN_BODY: usize = 256 * 1024;

/// A JSON request body as bytes: 415 unless the content type is JSON, 413 past the route's limit.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(JsonBytes(RawBody::from_request(req, state).await?.0))
    }
}

/// An admin route's JSON body as `T`; 400 naming what is wrong with it.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
}

/// The request body exactly as sent (a signature covers these bytes), 413 past the route's limit.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("could not read the request body".into())
            }
        })?;
        Ok(RawBody(bytes))
    }
}
