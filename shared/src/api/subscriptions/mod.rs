//! The public subscription routes publisher sites call from their cancellation pages, exactly as
//! seed 002 specifies them (paths, `token` query, `Origin` header, success shapes, error strings):
//! `subscriptions-list`, `subscriptions-cancel` and `subscriptions-winback`, one Lambda each.

mod cors;
mod errors;
mod handlers;
mod resolve;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post};

use super::AppState;
use crate::http::context::finish;

pub const LIST_PATH: &str = "/api/subscriptions";
pub const CANCEL_PATH: &str = "/api/subscriptions/{subscription_id}";
pub const WINBACK_PATH: &str = "/api/subscriptions/winback";

fn public(router: Router<AppState>, state: AppState) -> Router {
    router.layer(middleware::from_fn_with_state(state.clone(), cors::layer)).with_state(state)
}

pub fn list_routes(state: AppState) -> Router {
    public(Router::new().route(LIST_PATH, get(handlers::list).options(cors::preflight)), state)
}

pub fn cancel_routes(state: AppState) -> Router {
    public(Router::new().route(CANCEL_PATH, delete(handlers::cancel).options(cors::preflight)), state)
}

pub fn winback_routes(state: AppState) -> Router {
    let body_limit = axum::extract::DefaultBodyLimit::max(crate::http::body::MAX_ADMIN_BODY);
    public(Router::new().route(WINBACK_PATH, post(handlers::winback).options(cors::preflight)).layer(body_limit), state)
}

pub fn list_router(state: AppState) -> Router {
    finish(list_routes(state))
}

pub fn cancel_router(state: AppState) -> Router {
    finish(cancel_routes(state))
}

pub fn winback_router(state: AppState) -> Router {
    finish(winback_routes(state))
}
