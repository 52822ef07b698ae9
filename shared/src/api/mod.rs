//! The product's routes, one router per Lambda function. `crm serve` merges them all; each
//! function's `main.rs` runs its own under lambda_http. Handlers only see the ports in `AppState`.

pub mod admin_routes;
pub mod backfill;
pub mod catch_up;
pub mod customer_edits;
pub mod customers;
pub mod exports;
pub mod piano_registration;
pub mod piano_webhook;
pub mod receipts;
pub mod revenue;
pub mod settings;
pub mod stripe_accounts;
pub mod stripe_webhook;
pub mod subscriptions;
pub mod sync_health;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, ConfigError};
use crate::http::auth::AdminAuth;
use crate::piano::client::PianoApi;
use crate::piano::verified::VerifiedTokens;
use crate::queue::Queue;
use crate::store::Store;
use crate::store::repo::publications::SettingsCache;
use crate::stripe::client::StripeApi;
use crate::stripe::signature::DEFAULT_TOLERANCE_SECS;

/// Every function's routes on one router, for `crm serve` (the same handlers each Lambda runs).
pub fn all_routes(state: AppState) -> axum::Router {
    crate::http::context::finish(
        settings::routes(state.clone())
            .merge(customers::routes(state.clone()))
            .merge(revenue::routes(state.clone()))
            .merge(stripe_webhook::routes(state.clone()))
            .merge(piano_webhook::routes(state.clone()))
            .merge(subscriptions::list_routes(state.clone()))
            .merge(subscriptions::cancel_routes(state.clone()))
            .merge(subscriptions::winback_routes(state)),
    )
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub admin: Arc<AdminAuth>,
    pub stripe: Arc<dyn StripeApi>,
    pub piano: Arc<dyn PianoApi>,
    /// Settings as webhooks read them (short-lived cache; the admin API reads the store).
    pub settings: Arc<SettingsCache>,
    pub config: Arc<ApiConfig>,
    /// The webhooks' last-received markers (throttled per source).
    pub receipts: Arc<receipts::Receipts>,
    /// Readers' tokens Piano accepted lately (public routes of publications without a JWT secret).
    pub piano_tokens: Arc<VerifiedTokens>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        admin: AdminAuth,
        stripe: Arc<dyn StripeApi>,
        piano: Arc<dyn PianoApi>,
    ) -> Self {
        Self {
            store,
            queue,
            admin: Arc::new(admin),
            stripe,
            piano,
            settings: Arc::new(SettingsCache::new(Duration::from_secs(10))),
            config: Arc::new(ApiConfig::default()),
            receipts: Arc::new(receipts::Receipts::default()),
            piano_tokens: Arc::new(VerifiedTokens::default()),
        }
    }

    pub fn with_config(mut self, config: ApiConfig) -> Self {
        self.config = Arc::new(config);
        self
    }
}

/// Settings of the deployment (not of a publication).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted age of a `Stripe-Signature` timestamp (`CRM_STRIPE_TOLERANCE_SECS`).
    pub stripe_tolerance_secs: i64,
    /// Where Stripe and Piano reach this deployment (`CRM_PUBLIC_BASE_URL`), for webhook registration;
    /// unset: the host the registration request came in on (`http::public_url`).
    pub public_base_url: Option<url::Url>,
    /// Piano's API for every region (`CRM_PIANO_API_BASE`); unset: each publication's region host.
    pub piano_api_base: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { stripe_tolerance_secs: DEFAULT_TOLERANCE_SECS, public_base_url: None, piano_api_base: None }
    }
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let stripe_tolerance_secs = match config::optional("CRM_STRIPE_TOLERANCE_SECS")? {
            None => DEFAULT_TOLERANCE_SECS,
            Some(v) => v.parse().ok().filter(|s| *s > 0).ok_or_else(|| ConfigError::Invalid {
                name: "CRM_STRIPE_TOLERANCE_SECS",
                why: "must be a positive number of seconds".into(),
            })?,
        };
        let public_base_url = match config::optional("CRM_PUBLIC_BASE_URL")? {
            None => None,
            Some(v) => {
                let url = url::Url::parse(v.trim())
                    .map_err(|e| ConfigError::Invalid { name: "CRM_PUBLIC_BASE_URL", why: e.to_string() })?;
                // Providers are given URLs under it: it must be one they can call.
                if !matches!(url.scheme(), "http" | "https") || !url.has_host() || url.query().is_some() {
                    return Err(ConfigError::Invalid {
                        name: "CRM_PUBLIC_BASE_URL",
                        why: "must be an http(s) URL with a host and no query".into(),
                    });
                }
                Some(url)
            }
        };
        let piano_api_base = match config::optional(crate::piano::client::API_BASE_ENV)? {
            Some(base) => Some(base),
            None => config::optional(crate::piano::client::API_BASE_ENV_ALIAS)?,
        };
        Ok(Self { stripe_tolerance_secs, public_base_url, piano_api_base })
    }
}
