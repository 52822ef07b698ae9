//! The seed's error strings, byte for byte, each with its status; answered as `{"error": "..."}`.

use crate::http::ApiError;

pub const ORIGIN_NOT_FOUND: &str = "Origin not found.";
pub const TOKEN_NOT_FOUND: &str = "Token not found.";
pub const NO_AUD: &str = "Invalid token - no aud.";
pub const PUBLICATION_NOT_FOUND: &str = "Publication not found.";
pub const PIANO_USER_NOT_FOUND: &str = "Piano user not found.";
pub const STRIPE_ACCOUNTS_NOT_FOUND: &str = "CRM Stripe accounts not found.";
pub const SUBSCRIPTION_NOT_FOUND: &str = "Subscription not found.";
pub const FAILED_TO_CANCEL: &str = "Failed to cancel subscription.";
pub const FAILED_TO_RELEASE: &str = "Failed to release subscription.";
pub const NO_STRIPE_CLIENT: &str = "Failed to get Stripe client for this publication.";
pub const INVALID_TOKEN: &str = "Invalid token.";

/// 400 with one of the seed's messages.
pub fn bad(message: &str) -> ApiError {
    ApiError::BadRequest(message.to_owned())
}

pub fn invalid_token() -> ApiError {
    ApiError::TokenRejected(INVALID_TOKEN.to_owned())
}

/// A Stripe failure of a plan change: 500, logged with the request id the caller can quote.
pub fn plan_change_failed(detail: impl std::fmt::Display) -> ApiError {
    let correlation = crate::http::context::current_request_id();
    tracing::error!(%detail, correlation_id = %correlation, "winback plan change failed");
    ApiError::Failed(format!("Failed to change the subscription plan. Correlation id: {correlation}"))
}

/// Any other Stripe failure: 502 with the request id the caller can quote; Stripe's answer is logged.
pub fn stripe_failed(detail: impl std::fmt::Display) -> ApiError {
    let correlation = crate::http::context::current_request_id();
    tracing::error!(%detail, correlation_id = %correlation, "Stripe call of a public route failed");
    ApiError::Upstream(format!("Stripe could not complete the request. Correlation id: {correlation}"))
}
