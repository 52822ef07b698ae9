//! `POST /admin/publications/{id}/piano/webhook` (the `piano-webhook-register` function), Piano's "base webhook
//! generation": points the publication's Piano application at this deployment's proxy URL (under
//! `CRM_PUBLIC_BASE_URL`, else the host this request came in on; see `http::public_url`) through
//! Piano's webhook settings API, reads the settings back, and answers what Piano now holds.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::AppState;
use super::settings::authorize;
use crate::http::ApiError;
use crate::http::extract::Path;
use crate::http::public_url::PublicBaseUrl;
use crate::piano::client::{PianoError, base_for};
use crate::store::repo::publications;

pub async fn register_webhook(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, id) = authorize(&state, &headers, &raw_id).await?;
    let public = PublicBaseUrl::from_request(&headers, state.config.public_base_url.as_ref())?;
    let url = public.join(&format!("/webhooks/piano/{id}"));
    let stored = publications::get(state.store.as_ref(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("publication {id} not found")))?;
    let piano = stored.value.settings.piano.as_ref().ok_or_else(|| {
        ApiError::Conflict(format!("publication {id} has no Piano settings (aid, apiToken, privateKey)"))
    })?;
    let base = base_for(piano.region, state.config.piano_api_base.as_deref());
    state.piano.set_webhook_url(&base, &piano.aid, &piano.api_token, &url).await.map_err(piano_error)?;
    let held = state.piano.webhook_settings(&base, &piano.aid, &piano.api_token).await.map_err(piano_error)?;
    if held.url.as_deref() != Some(url.as_str()) {
        return Err(ApiError::Upstream(format!(
            "Piano kept {} as the webhook URL after the update to {url}",
            held.url.as_deref().unwrap_or("no URL")
        )));
    }
    tracing::info!(aid = %piano.aid, "Piano webhook URL registered");
    Ok(Json(json!({
        "aid": piano.aid,
        "url": url,
        "enabled": held.enabled,
        "legacyWebhookUrls": piano.legacy_webhook_urls,
    })))
}

fn piano_error(e: PianoError) -> ApiError {
    match e {
        PianoError::Unavailable(detail) => ApiError::Unavailable(format!("Piano: {detail}")),
        PianoError::Rejected(detail) => ApiError::Upstream(format!("Piano refused the call: {detail}")),
        PianoError::InvalidToken => ApiError::Upstream("Piano refused the application's API token".into()),
    }
}
