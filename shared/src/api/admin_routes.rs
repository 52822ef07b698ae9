//! Every admin route (but revenue's), declared once: the Lambda function serving it alone, its method
//! and path, and its handler. Each function's `main.rs` runs its route's `router`; `settings::routes`
//! and `customers::routes` (what `crm serve` merges) are folded from the same declarations, so both
//! serve the same routes with the same layers.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::api::AppState;
use crate::http::body::MAX_ADMIN_BODY;
use crate::http::context::finish;

/// Which group router (`settings::routes`, `customers::routes`) merges a route for `crm serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Publication settings, keys, webhook registration, backfills, catch-ups.
    Settings,
    /// Customers, exports, follow-up tasks, sync health.
    Customers,
}

/// One admin route and the Lambda function that serves it.
#[derive(Debug, Clone, Copy)]
pub struct AdminRoute {
    /// The function's crate (`functions/<function>`), its binary and `template.yaml`'s `Binary`.
    pub function: &'static str,
    /// `GET`, `PUT`, `POST`, `PATCH` or `DELETE`: what `handler` routes.
    pub method: &'static str,
    /// The axum path, `{publication_id}` style.
    pub path: &'static str,
    /// The route's method router (a non-capturing closure: `|| get(handler)`).
    pub handler: fn() -> MethodRouter<AppState>,
    pub group: Group,
}

impl AdminRoute {
    /// The Lambda function's whole router: this route alone, with the admin body limit and the
    /// layers every function has (JSON 404/405 for anything else).
    pub fn router(&self, state: AppState) -> Router {
        finish(routes([self], state))
    }
}

/// `declared` on one router with the admin body limit, for merging (`crm serve`) or `finish`ing.
pub fn routes<'a>(declared: impl IntoIterator<Item = &'a AdminRoute>, state: AppState) -> Router {
    // Two declarations of one path (GET and PUT of the settings) merge into one method router.
    declared
        .into_iter()
        .fold(Router::new(), |router, route| router.route(route.path, (route.handler)()))
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY))
        .with_state(state)
}

/// The routes `group`'s router merges.
pub fn group(group: Group) -> impl Iterator<Item = &'static AdminRoute> {
    ALL.iter().filter(move |r| r.group == group)
}

/// The route of the function named `function`, if it is an admin route's.
pub fn by_function(function: &str) -> Option<&'static AdminRoute> {
    ALL.iter().find(|r| r.function == function)
}

const PUBLICATION: &str = "/admin/publications/{publication_id}";

pub const SETTINGS_GET: AdminRoute = AdminRoute {
    function: "settings-get",
    method: "GET",
    path: PUBLICATION,
    handler: || get(crate::api::settings::get_settings),
    group: Group::Settings,
};

pub const SETTINGS_PUT: AdminRoute = AdminRoute {
    function: "settings-put",
    method: "PUT",
    path: PUBLICATION,
    handler: || put(crate::api::settings::put_settings),
    group: Group::Settings,
};

pub const KEYS_ISSUE: AdminRoute = AdminRoute {
    function: "keys-issue",
    method: "POST",
    path: "/admin/publications/{publication_id}/keys",
    handler: || post(crate::api::settings::issue_key),
    group: Group::Settings,
};

pub const KEYS_LIST: AdminRoute = AdminRoute {
    function: "keys-list",
    method: "GET",
    path: "/admin/publications/{publication_id}/keys",
    handler: || get(crate::api::settings::list_keys),
    group: Group::Settings,
};

pub const KEYS_REVOKE: AdminRoute = AdminRoute {
    function: "keys-revoke",
    method: "DELETE",
    path: "/admin/publications/{publication_id}/keys/{key_id}",
    handler: || delete(crate::api::settings::revoke_key),
    group: Group::Settings,
};

pub const STRIPE_WEBHOOK_ENDPOINT: AdminRoute = AdminRoute {
    function: "stripe-webhook-endpoint",
    method: "POST",
    path: "/admin/publications/{publication_id}/stripe-accounts/{account_key}/webhook-endpoint",
    handler: || post(crate::api::stripe_accounts::connect_webhook),
    group: Group::Settings,
};

pub const STRIPE_CATCH_UP: AdminRoute = AdminRoute {
    function: "stripe-catch-up",
    method: "POST",
    path: "/admin/publications/{publication_id}/stripe-accounts/{account_key}/catch-up",
    handler: || post(crate::api::catch_up::start),
    group: Group::Settings,
};

pub const PIANO_WEBHOOK_REGISTER: AdminRoute = AdminRoute {
    function: "piano-webhook-register",
    method: "POST",
    path: "/admin/publications/{publication_id}/piano/webhook",
    handler: || post(crate::api::piano_registration::register_webhook),
    group: Group::Settings,
};

pub const BACKFILL_START: AdminRoute = AdminRoute {
    function: "backfill-start",
    method: "POST",
    path: "/admin/publications/{publication_id}/backfill",
    handler: || post(crate::api::backfill::start),
    group: Group::Settings,
};

pub const BACKFILL_STATUS: AdminRoute = AdminRoute {
    function: "backfill-status",
    method: "GET",
    path: "/admin/publications/{publication_id}/backfill",
    handler: || get(crate::api::backfill::report),
    group: Group::Settings,
};

pub const CUSTOMERS_LIST: AdminRoute = AdminRoute {
    function: "customers-list",
    method: "GET",
    path: "/admin/publications/{publication_id}/customers",
    handler: || get(crate::api::customers::list),
    group: Group::Customers,
};

pub const CUSTOMERS_CREATE: AdminRoute = AdminRoute {
    function: "customers-create",
    method: "POST",
    path: "/admin/publications/{publication_id}/customers",
    handler: || post(crate::api::customer_edits::create),
    group: Group::Customers,
};

pub const CUSTOMERS_GET: AdminRoute = AdminRoute {
    function: "customers-get",
    method: "GET",
    path: "/admin/publications/{publication_id}/customers/{customer_id}",
    handler: || get(crate::api::customers::record),
    group: Group::Customers,
};

pub const CUSTOMERS_UPDATE: AdminRoute = AdminRoute {
    function: "customers-update",
    method: "PATCH",
    path: "/admin/publications/{publication_id}/customers/{customer_id}",
    handler: || patch(crate::api::customer_edits::update),
    group: Group::Customers,
};

pub const CUSTOMERS_LINK: AdminRoute = AdminRoute {
    function: "customers-link",
    method: "POST",
    path: "/admin/publications/{publication_id}/customers/{customer_id}/piano-link",
    handler: || post(crate::api::customer_edits::link_piano),
    group: Group::Customers,
};

pub const EXPORTS: AdminRoute = AdminRoute {
    function: "exports",
    method: "GET",
    path: "/admin/publications/{publication_id}/exports/{kind}",
    handler: || get(crate::api::exports::export),
    group: Group::Customers,
};

pub const TASKS_LIST: AdminRoute = AdminRoute {
    function: "tasks-list",
    method: "GET",
    path: "/admin/publications/{publication_id}/tasks",
    handler: || get(crate::api::tasks::list),
    group: Group::Customers,
};

pub const TASKS_UPDATE: AdminRoute = AdminRoute {
    function: "tasks-update",
    method: "PATCH",
    path: "/admin/publications/{publication_id}/tasks/{task_id}",
    handler: || patch(crate::api::tasks::update),
    group: Group::Customers,
};

pub const SYNC_HEALTH: AdminRoute = AdminRoute {
    function: "sync-health",
    method: "GET",
    path: "/admin/publications/{publication_id}/sync",
    handler: || get(crate::api::sync_health::health),
    group: Group::Customers,
};

/// Every declaration, one function each.
pub const ALL: &[AdminRoute] = &[
    SETTINGS_GET,
    SETTINGS_PUT,
    KEYS_ISSUE,
    KEYS_LIST,
    KEYS_REVOKE,
    STRIPE_WEBHOOK_ENDPOINT,
    STRIPE_CATCH_UP,
    PIANO_WEBHOOK_REGISTER,
    BACKFILL_START,
    BACKFILL_STATUS,
    CUSTOMERS_LIST,
    CUSTOMERS_CREATE,
    CUSTOMERS_GET,
    CUSTOMERS_UPDATE,
    CUSTOMERS_LINK,
    EXPORTS,
    TASKS_LIST,
    TASKS_UPDATE,
    SYNC_HEALTH,
];
