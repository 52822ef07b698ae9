//! `POST /admin/publications/{id}/piano/webhook`: the proxy's URL, built from the deployment's public
//! base URL (`CRM_PUBLIC_BASE_URL`, else the host the request came in on), is registered with Piano's
//! webhook settings API (the fake, over HTTP), read back and answered; missing configuration and
//! Piano's refusals are clear errors, and a URL Piano did not keep is never reported as registered.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::api::{ApiConfig, AppState};
use shared::domain::ids::PublicationId;
use shared::domain::settings::PublicationSettings;
use shared::store::repo::publications::{self, StoredSettings};
use support::fake_piano::FakePiano;
use tower::ServiceExt;

const AID: &str = "AidDaily01";
const API_TOKEN: &str = "piano-api-token-0123456789";
const REGISTER: &str = "/admin/publications/daily/piano/webhook";
/// The host API Gateway's HTTP API passes on (every request here comes in on it, unless said otherwise).
const API_HOST: &str = "abc123xyz.execute-api.eu-west-1.amazonaws.com";

async fn setup(piano: &FakePiano, with_piano: bool) -> (support::TestStore, AppState) {
    let store = support::embedded_store();
    let mut settings = json!({"name": "The Daily"});
    if with_piano {
        settings["piano"] = json!({"aid": AID, "apiToken": API_TOKEN, "privateKey": "k", "region": "eu",
                                   "legacyWebhookUrls": ["https://old.example.com/piano-hook"]});
    }
    let parsed = PublicationSettings::parse(settings.to_string().as_bytes(), None).unwrap();
    let stored =
        StoredSettings { publication_id: PublicationId::parse("daily").unwrap(), settings: parsed, updated_at: 0 };
    publications::put(store.store.as_ref(), &stored, None).await.unwrap();
    let config = ApiConfig {
        public_base_url: Some("https://crm.example.com/prod/".parse().unwrap()),
        piano_api_base: Some(piano.base_url().to_owned()),
        ..ApiConfig::default()
    };
    let state = support::app_state(store.store.clone());
    let state = AppState { piano: std::sync::Arc::new(piano.client()), ..state }.with_config(config);
    (store, state)
}

async fn register(state: &AppState, key: &str) -> (StatusCode, Value) {
    register_on(state, key, &[("host", API_HOST), ("x-forwarded-proto", "https")]).await
}

/// `register` with these headers besides the key (no `Host` unless given).
async fn register_on(state: &AppState, key: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = Request::post(REGISTER).header("authorization", format!("Bearer {key}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::empty()).unwrap();
    let response = shared::api::settings::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_proxy_url_is_registered_and_read_back() {
    let piano = FakePiano::start().await;
    piano.add_app(AID, API_TOKEN);
    let (_store, state) = setup(&piano, true).await;

    let (status, answer) = register(&state, support::OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // CRM_PUBLIC_BASE_URL (with its base path) wins over the request's host.
    let url = "https://crm.example.com/prod/webhooks/piano/daily";
    assert_eq!(
        answer,
        json!({"aid": AID, "url": url, "enabled": true, "legacyWebhookUrls": ["https://old.example.com/piano-hook"]})
    );
    assert_eq!(piano.webhook_settings(AID), Some(json!({"url": url, "enabled": true})));
    let paths: Vec<(String, String)> = piano.requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(
        paths,
        [
            ("POST".to_owned(), "/api/v3/publisher/webhook/settings/update".to_owned()),
            ("GET".to_owned(), "/api/v3/publisher/webhook/settings".to_owned())
        ]
    );
    // Registering again is the same answer.
    assert_eq!(register(&state, support::OPERATOR).await, (StatusCode::OK, answer));
}

#[tokio::test]
async fn without_a_configured_url_the_requests_host_is_registered() {
    let piano = FakePiano::start().await;
    piano.add_app(AID, API_TOKEN);
    let (_store, state) = setup(&piano, true).await;
    let state = state.with_config(ApiConfig { piano_api_base: Some(piano.base_url().into()), ..ApiConfig::default() });

    let (status, answer) = register(&state, support::OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let url = format!("https://{API_HOST}/webhooks/piano/daily");
    assert_eq!(answer["url"], url.as_str());
    assert_eq!(piano.webhook_settings(AID), Some(json!({"url": url, "enabled": true})));

    // `crm serve` on a laptop, called as localhost: plain http, with the port.
    let (status, answer) = register_on(&state, support::OPERATOR, &[("host", "localhost:8787")]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let url = "http://localhost:8787/webhooks/piano/daily";
    assert_eq!(answer["url"], url);
    assert_eq!(piano.webhook_settings(AID), Some(json!({"url": url, "enabled": true})));
}

#[tokio::test]
async fn missing_configuration_and_refusals_are_clear_errors() {
    let piano = FakePiano::start().await;
    piano.add_app(AID, API_TOKEN);

    let (_store, state) = setup(&piano, false).await;
    let (status, answer) = register(&state, support::OPERATOR).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(answer["error"].as_str().unwrap().contains("no Piano settings"), "{answer}");

    let (_store, state) = setup(&piano, true).await;
    let no_public_url =
        state.clone().with_config(ApiConfig { piano_api_base: Some(piano.base_url().into()), ..ApiConfig::default() });
    // Neither CRM_PUBLIC_BASE_URL nor a usable Host: 400, naming the variable.
    for headers in [&[][..], &[("host", "crm.example.com/prod")], &[("host", "crm example.com")]] {
        let (status, answer) = register_on(&no_public_url, support::OPERATOR, headers).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains("no public URL") && error.contains("CRM_PUBLIC_BASE_URL"), "{error}");
    }

    assert_eq!(register(&state, "wrong-key").await.0, StatusCode::UNAUTHORIZED);
    assert!(piano.requests().is_empty(), "no call without configuration or authorisation");

    // Piano refuses the application's API token: 502 with Piano's message, never the token.
    piano.add_app(AID, "another-token");
    let (status, answer) = register(&state, support::OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert!(!answer.to_string().contains(API_TOKEN));

    // Piano down: 503, retry later.
    piano.add_app(AID, API_TOKEN);
    piano.fail_next(10, 503);
    assert_eq!(register(&state, support::OPERATOR).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_url_piano_did_not_keep_is_not_reported_as_registered() {
    let piano = FakePiano::start().await;
    piano.add_app(AID, API_TOKEN);
    piano.ignore_webhook_updates();
    let (_store, state) = setup(&piano, true).await;
    let (status, answer) = register(&state, support::OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(answer["error"].as_str().unwrap().contains("Piano kept no URL"), "{answer}");
}
