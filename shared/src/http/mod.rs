//! HTTP plumbing shared by every route: errors to responses, request context and logging,
//! bearer-key authentication, JSON bodies, path and query parameters.

pub mod auth;
pub mod body;
pub mod context;
pub mod error;
pub mod extract;
pub mod form;
pub mod outbound;
pub mod public_url;

pub use error::ApiError;
