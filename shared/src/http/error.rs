//! The one place where errors become HTTP statuses and `{"error": "..."}` bodies.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::domain::ids::ParseError;
use crate::domain::settings::SettingsError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid API key")]
    Unauthorized,
    /// A caller's token was refused (public routes); the message is the caller's to see.
    #[error("{0}")]
    TokenRejected(String),
    /// A failure whose message (with a correlation id) the caller may see.
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("service temporarily unavailable, retry")]
    Unavailable(String),
    /// A provider (Stripe, Piano) refused or failed the call; the message is safe to show.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::TokenRejected(_) => StatusCode::UNAUTHORIZED,
            ApiError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            // The detail stays in the logs; the caller learns only that it failed.
            ApiError::Internal(detail) => tracing::error!(%detail, "request failed"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "dependency unavailable"),
            _ => tracing::info!(status = status.as_u16(), error = %self, "request rejected"),
        }
        let message = match &self {
            // The request id lets the caller point at the logged detail.
            ApiError::Internal(_) => {
                format!("internal error. Correlation id: {}", super::context::current_request_id())
            }
            _ => self.to_string(),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Transient(d) => ApiError::Unavailable(d),
            // DynamoDB's validation text (or ours) names tables, keys and limits: logged, not answered.
            StoreError::Invalid(d) => {
                let correlation = super::context::current_request_id();
                tracing::warn!(detail = %d, correlation_id = %correlation, "store refused the write");
                ApiError::BadRequest(format!("the request could not be stored. Correlation id: {correlation}"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::stripe::client::StripeError> for ApiError {
    fn from(e: crate::stripe::client::StripeError) -> Self {
        use crate::stripe::client::StripeError;
        match &e {
            _ if e.is_transient() => ApiError::Unavailable(format!("Stripe: {e}")),
            StripeError::Api { status: 401 | 403, .. } => {
                ApiError::Upstream("Stripe refused the account's secret key (check its permissions)".into())
            }
            // Stripe's messages name the parameter at fault and never a full key (the client masks them).
            StripeError::Api { message, .. } => ApiError::Upstream(format!("Stripe: {message}")),
            _ => ApiError::Upstream(format!("Stripe: {e}")),
        }
    }
}

impl From<crate::store::repo::publications::AccountError> for ApiError {
    fn from(e: crate::store::repo::publications::AccountError) -> Self {
        use crate::store::repo::publications::AccountError as A;
        match e {
            A::Store(e) => e.into(),
            A::UnknownPublication(_) | A::UnknownAccount(_) => ApiError::NotFound(e.to_string()),
        }
    }
}

impl From<crate::catch_up::CatchUpError> for ApiError {
    fn from(e: crate::catch_up::CatchUpError) -> Self {
        use crate::catch_up::CatchUpError as C;
        match e {
            C::Store(e) => e.into(),
            C::Account(e) => e.into(),
            C::Stripe(e) => e.into(),
            C::NoStart(_) => ApiError::BadRequest(e.to_string()),
            C::Queue(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<crate::backfill::BackfillError> for ApiError {
    fn from(e: crate::backfill::BackfillError) -> Self {
        use crate::backfill::BackfillError as B;
        match e {
            B::Store(e) => e.into(),
            B::Stripe(e) => e.into(),
            B::Account(e) => e.into(),
            B::NotStarted(_) => ApiError::NotFound(e.to_string()),
            B::BadRate => ApiError::BadRequest(e.to_string()),
            B::Busy { .. } | B::LeaseLost => ApiError::Conflict(e.to_string()),
            B::Queue(_) => ApiError::Unavailable(e.to_string()),
            B::Sync(_) | B::WrongKind(_) => ApiError::Internal(e.to_string()),
            B::Piano(ref p) if p.is_transient() => ApiError::Unavailable(e.to_string()),
            B::Piano(_) => ApiError::Upstream(e.to_string()),
            B::NoPiano(_) => ApiError::BadRequest(format!("{e}: set piano in the settings first")),
        }
    }
}

impl From<crate::store::repo::publications::PutError> for ApiError {
    fn from(e: crate::store::repo::publications::PutError) -> Self {
        use crate::store::repo::publications::PutError as P;
        match e {
            P::Store(e) => e.into(),
            P::Stale | P::Claimed { .. } => ApiError::Conflict(e.to_string()),
        }
    }
}

impl From<crate::sync::link::LinkError> for ApiError {
    fn from(e: crate::sync::link::LinkError) -> Self {
        use crate::sync::SyncError;
        use crate::sync::link::LinkError as L;
        match e {
            L::CustomerNotFound => ApiError::NotFound(e.to_string()),
            L::OtherPianoUser | L::HeldElsewhere(_) => ApiError::Conflict(e.to_string()),
            L::Sync(SyncError::Store(e)) => e.into(),
            L::Sync(e) if e.is_transient() => ApiError::Unavailable(e.to_string()),
            L::Sync(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<super::public_url::PublicUrlError> for ApiError {
    fn from(e: super::public_url::PublicUrlError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<SettingsError> for ApiError {
    fn from(e: SettingsError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        ApiError::BadRequest(e.0)
    }
}

/// An extractor's refusal: the caller's mistake (its text says which parameter) unless axum calls it
/// a server error (a route whose parameters do not fit its handler).
fn rejection(status: StatusCode, text: String) -> ApiError {
    if status.is_client_error() { ApiError::BadRequest(text) } else { ApiError::Internal(text) }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        rejection(r.status(), r.body_text())
    }
}
