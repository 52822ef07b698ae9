//! The samples under `events/` are real API Gateway v2 requests: each parses as lambda_http does
//! and, replayed in order through its function's router, does what its name says.

mod support;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn invoke(function: &str, file: &str, state: shared::api::AppState) -> (StatusCode, serde_json::Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/").to_owned() + function + "/" + file;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let request =
        lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{path} is not an API Gateway event: {e}"));
    let response = support::router_of(function, state).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn settings_api_samples_put_get_and_issue_a_key() {
    let store = support::embedded_store();
    let state = support::app_state(store.store.clone());
    let (status, body) = invoke("settings-api", "put-settings.json", state.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = invoke("settings-api", "get-settings.json", state.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["stripeAccounts"][0]["secretKey"], "sk_test_…a1b2");
    let (status, body) = invoke("settings-api", "issue-key.json", state).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["key"].as_str().unwrap().starts_with("crm_pk_"));
}

#[test]
fn every_sample_belongs_to_a_function() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let function = entry.file_name().to_string_lossy().into_owned();
        let crate_dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../functions")).join(&function);
        assert!(crate_dir.join("Cargo.toml").exists(), "events/{function} names no function crate");
    }
}

#[test]
fn the_readme_example_is_valid_settings() {
    let text = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/publication.json")).unwrap();
    let settings = shared::domain::settings::PublicationSettings::parse(&text, None).unwrap();
    assert_eq!(settings.name, "Daily Example");
}
