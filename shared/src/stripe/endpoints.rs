//! Connecting a Stripe account: the account's webhook endpoint pointing at this deployment, created
//! through Stripe's API with the events the sync applies. Idempotent: an endpoint with the same URL
//! is reused and updated, never duplicated.

use serde::Deserialize;
use serde_json::Value;

use super::client::{API_VERSION, Params, StripeApi, StripeAuth, StripeError};
use super::event::Event;
use crate::domain::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
struct Endpoint {
    id: String,
    url: String,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub endpoint_id: String,
    pub url: String,
    /// The signing secret, when Stripe revealed one (it does only when creating an endpoint).
    pub new_secret: Option<Secret>,
    pub created: bool,
}

async fn find(api: &dyn StripeApi, auth: &StripeAuth, url: &str) -> Result<Option<Endpoint>, StripeError> {
    let mut query = Params::new().set("limit", "100");
    loop {
        let page = api.get(auth, "/v1/webhook_endpoints", &query).await?;
        let endpoints: Vec<Endpoint> = serde_json::from_value(page["data"].clone())
            .map_err(|e| StripeError::Decode(format!("webhook endpoint list: {e}")))?;
        if let Some(found) = endpoints.iter().find(|e| e.url == url) {
            return Ok(Some(found.clone()));
        }
        match endpoints.last() {
            Some(last) if page["has_more"] == Value::Bool(true) => {
                query = Params::new().set("limit", "100").set("starting_after", last.id.clone());
            }
            _ => return Ok(None),
        }
    }
}

fn settings(url: &str, description: &str) -> Params {
    Params::new()
        .set("url", url)
        .list("enabled_events", Event::ENABLED_EVENTS.iter().copied())
        .set("description", description)
}

/// Creates or updates the endpoint for `url`. `have_secret`: whether the CRM already holds a signing
/// secret for this account; Stripe never shows an endpoint's secret again, so an existing endpoint
/// whose secret the CRM lacks is replaced (deleted, then created) to learn a new one.
pub async fn connect(
    api: &dyn StripeApi,
    auth: &StripeAuth,
    url: &str,
    description: &str,
    have_secret: bool,
) -> Result<Connected, StripeError> {
    if let Some(existing) = find(api, auth, url).await? {
        if have_secret {
            let form = settings(url, description).set("disabled", "false");
            let key = format!("crm-endpoint-update-{}-{}", existing.id, Event::ENABLED_EVENTS.len());
            api.post(auth, &format!("/v1/webhook_endpoints/{}", existing.id), &form, &key).await?;
            return Ok(Connected { endpoint_id: existing.id, url: existing.url, new_secret: None, created: false });
        }
        api.delete(auth, &format!("/v1/webhook_endpoints/{}", existing.id)).await?;
    }
    let form = settings(url, description).set("api_version", API_VERSION);
    // The client's own retries reuse this key; a later call finds the endpoint by URL instead.
    let key = format!("crm-endpoint-create-{}", ulid::Ulid::new());
    let created: Endpoint = serde_json::from_value(api.post(auth, "/v1/webhook_endpoints", &form, &key).await?)
        .map_err(|e| StripeError::Decode(format!("webhook endpoint: {e}")))?;
    Ok(Connected {
        new_secret: created.secret.filter(|s| !s.is_empty()).map(Secret::new),
        endpoint_id: created.id,
        url: created.url,
        created: true,
    })
}
