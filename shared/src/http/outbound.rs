//! The HTTP client for calls to providers (Stripe, Piano), built on first use: building one loads the
//! system's root certificates, a cost a function's cold start should not pay for calls it may never make.

use std::sync::{Arc, OnceLock};

/// A reqwest client built the first time it is needed, then shared by clones.
#[derive(Clone)]
pub struct LazyClient {
    cell: Arc<OnceLock<reqwest::Client>>,
    configure: fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
}

impl std::fmt::Debug for LazyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient").field("built", &self.cell.get().is_some()).finish()
    }
}

impl LazyClient {
    /// `configure` sets timeouts, user agent, redirects; TLS is rustls on ring for every client.
    pub fn new(configure: fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder) -> Self {
        Self { cell: Arc::new(OnceLock::new()), configure }
    }

    pub fn get(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.cell.get() {
            return Ok(client);
        }
        crate::stripe::client::install_tls_provider();
        let built = (self.configure)(reqwest::Client::builder()).build().map_err(|e| format!("HTTP client: {e}"))?;
        // Two first calls racing build two clients; one is kept, both work.
        Ok(self.cell.get_or_init(|| built))
    }
}
