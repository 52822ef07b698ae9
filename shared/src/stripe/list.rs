//! Reading Stripe's list endpoints: one page at a time with cursor pagination (`limit`,
//! `starting_after`), and `Paced`, a `StripeApi` that keeps every call under a request rate, for jobs
//! (backfill, catch-up, reconciliation) that read a whole account.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;

use super::client::{Params, StripeApi, StripeAuth, StripeError};
use crate::domain::secret::Secret;

/// Stripe's largest page.
pub const PAGE_LIMIT: u32 = 100;
/// Requests per second a job makes by default: under Stripe's limits of 25/s in test mode and 100/s
/// in live mode, leaving room for the webhook worker and the public routes on the same key.
pub const DEFAULT_TEST_RATE: u32 = 25;
pub const DEFAULT_LIVE_RATE: u32 = 90;

/// The default rate for a key: live keys (`sk_live_`, `rk_live_`) get the live rate.
pub fn default_rate(key: &Secret) -> u32 {
    let key = key.expose();
    if key.starts_with("sk_live_") || key.starts_with("rk_live_") { DEFAULT_LIVE_RATE } else { DEFAULT_TEST_RATE }
}

/// One page of a list.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub data: Vec<Value>,
    pub has_more: bool,
}

impl Page {
    /// The cursor for the next page: the last object's id, when there is a next page.
    pub fn next_cursor(&self) -> Option<String> {
        if !self.has_more {
            return None;
        }
        self.data.last().and_then(|o| o["id"].as_str()).map(str::to_owned)
    }
}

/// Reads the page of `path` after `starting_after` (the first page when `None`), with `filters`
/// (`status=all`, `created[gte]=…`) and Stripe's largest page size.
pub async fn page(
    api: &dyn StripeApi,
    auth: &StripeAuth,
    path: &str,
    filters: &Params,
    starting_after: Option<&str>,
) -> Result<Page, StripeError> {
    let mut query = filters.clone().set("limit", PAGE_LIMIT.to_string());
    if let Some(cursor) = starting_after {
        query = query.set("starting_after", cursor);
    }
    let answer = api.get(auth, path, &query).await?;
    let Value::Array(data) = answer.get("data").cloned().unwrap_or(Value::Null) else {
        return Err(StripeError::Decode(format!("{path}: a list answer without a data array")));
    };
    if data.iter().any(|o| o.get("id").and_then(Value::as_str).is_none_or(str::is_empty)) {
        return Err(StripeError::Decode(format!("{path}: a listed object without an id")));
    }
    Ok(Page { data, has_more: answer.get("has_more").and_then(Value::as_bool).unwrap_or(false) })
}

/// A `StripeApi` that waits before each call so that calls stay under `per_second`, evenly spaced
/// (a GCRA limiter without bursts: Stripe counts requests per second, not per minute), shared by
/// every task of a job.
pub struct Paced {
    inner: Arc<dyn StripeApi>,
    limiter: DefaultDirectRateLimiter,
    calls: AtomicU64,
}

impl Paced {
    pub fn new(inner: Arc<dyn StripeApi>, per_second: NonZeroU32) -> Self {
        let limiter = RateLimiter::direct(Quota::per_second(per_second).allow_burst(NonZeroU32::MIN));
        Self { inner, limiter, calls: AtomicU64::new(0) }
    }

    /// Paced at the default rate of `key` (`default_rate`).
    pub fn for_key(inner: Arc<dyn StripeApi>, key: &Secret) -> Self {
        Self::new(inner, NonZeroU32::new(default_rate(key)).unwrap_or(NonZeroU32::MIN))
    }

    /// Calls made through it.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn ready(&self) {
        self.limiter.until_ready().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl StripeApi for Paced {
    async fn get(&self, auth: &StripeAuth, path: &str, query: &Params) -> Result<Value, StripeError> {
        self.ready().await;
        self.inner.get(auth, path, query).await
    }

    async fn post(
        &self,
        auth: &StripeAuth,
        path: &str,
        form: &Params,
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        self.ready().await;
        self.inner.post(auth, path, form, idempotency_key).await
    }

    async fn delete(&self, auth: &StripeAuth, path: &str) -> Result<Value, StripeError> {
        self.ready().await;
        self.inner.delete(auth, path).await
    }
}
