//! Connecting a Stripe account: the webhook endpoint is created through Stripe's API (the fake, over
//! HTTP), its signing secret kept (and then accepted by the webhook), and a second call reuses it. The
//! endpoint's URL is under `CRM_PUBLIC_BASE_URL` when set, else under the host the request came in on.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::api::{ApiConfig, AppState};
use shared::store::Store;
use support::stripe_world::{self as w, World};
use tower::ServiceExt;

const CONNECT: &str = "/admin/publications/daily/stripe-accounts/main/webhook-endpoint";
/// The host API Gateway's HTTP API passes on (every request here comes in on it, unless said otherwise).
const API_HOST: &str = "abc123xyz.execute-api.eu-west-1.amazonaws.com";

fn with_public_url(state: &AppState) -> AppState {
    let config =
        ApiConfig { public_base_url: Some("https://crm.example.com/prod/".parse().unwrap()), ..ApiConfig::default() };
    state.clone().with_config(config)
}

async fn call(state: &AppState, method: &str, path: &str, body: Option<(Vec<u8>, String)>) -> (StatusCode, Value) {
    call_on(state, Some(API_HOST), method, path, body).await
}

/// `call` with the `Host` header given (`None`: none at all).
async fn call_on(
    state: &AppState,
    host: Option<&str>,
    method: &str,
    path: &str,
    body: Option<(Vec<u8>, String)>,
) -> (StatusCode, Value) {
    let mut request =
        Request::builder().method(method).uri(path).header("authorization", format!("Bearer {}", support::OPERATOR));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let body = match body {
        Some((bytes, signature)) => {
            request = request.header("stripe-signature", signature).header("content-type", "application/json");
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    let response = shared::api::all_routes(state.clone()).oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn connecting_creates_once_then_reuses(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let state = with_public_url(&world.state);
    // A warm webhook: its settings cache holds the account as it was before the new secret.
    let warm = with_public_url(&support::app_state_with(world.store.clone(), world.stripe.base_url()));
    let unsigned = (b"{}".to_vec(), "t=1,v1=00".to_owned());
    assert_eq!(call(&warm, "POST", "/webhooks/stripe/daily/main", Some(unsigned)).await.0, StatusCode::BAD_REQUEST);
    let (status, answer) = call(&state, "POST", CONNECT, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // CRM_PUBLIC_BASE_URL (with its base path) wins over the request's host.
    let url = "https://crm.example.com/prod/webhooks/stripe/daily/main";
    assert_eq!(answer["url"], url);
    let endpoints = world.stripe.objects("webhook_endpoint");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["url"], url, "the URL Stripe was given");
    let enabled: Vec<&str> =
        endpoints[0]["enabled_events"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(enabled, shared::stripe::event::Event::ENABLED_EVENTS);
    let created = world.stripe.requests().into_iter().find(|r| r.method == "POST").unwrap();
    assert!(created.idempotency_key.is_some());
    // Stripe shows the secret once, in its answer to the creation; the CRM kept it.
    let publication = shared::domain::ids::PublicationId::parse("daily").unwrap();
    let stored = shared::store::repo::publications::get(world.store.as_ref(), &publication).await.unwrap().unwrap();
    let secret = stored.value.settings.stripe_accounts[0].webhook_secrets[2].expose().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert!(endpoints[0].get("secret").is_none_or(Value::is_null), "Stripe does not show it again");
    // Masked in the answer and in the settings; the webhook now accepts events signed with it.
    assert_eq!(answer["webhookSecrets"].as_array().unwrap().len(), 3);
    assert!(!answer.to_string().contains(&secret));
    // Connecting also learned the account's id, which the public list shows.
    assert_eq!(answer["accountId"], "acct_1PgafTB7WZ01zgkW");
    let mut account = stored.value.settings.stripe_accounts[0].clone();
    let kept = shared::store::repo::stripe_account_ids::get(world.store.as_ref(), &publication, &account).await;
    assert_eq!(kept.unwrap().as_deref(), Some("acct_1PgafTB7WZ01zgkW"));
    // Another secret key may be another Stripe account's: its id is learned again.
    account.secret_key = shared::domain::secret::Secret::new("sk_test_another_account_0123456789");
    let other = shared::store::repo::stripe_account_ids::get(world.store.as_ref(), &publication, &account).await;
    assert_eq!(other.unwrap(), None);
    let (_, settings) = call(&state, "GET", "/admin/publications/daily", None).await;
    assert!(!settings.to_string().contains(&secret));
    assert_eq!(settings["stripeAccounts"][0]["webhookSecrets"].as_array().unwrap().len(), 3);
    let event = w::event("evt_after_connect", "customer.created", 1, w::customer("cus_N", "n@example.com", "N"), None);
    let body = serde_json::to_vec(&event).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // The warm webhook's cache is older than a second but within its 10 s: a delivery signed with
    // the new secret makes it read the settings again, and is accepted at once.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let signature = shared::stripe::signature::sign(&body, &secret, now);
    let (status, received) = call(&warm, "POST", "/webhooks/stripe/daily/main", Some((body, signature))).await;
    assert_eq!(status, StatusCode::OK, "{received}");

    let (status, again) = call(&state, "POST", CONNECT, None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["endpointId"], answer["endpointId"]);
    assert_eq!(world.stripe.objects("webhook_endpoint").len(), 1, "never duplicated");
}

async fn an_endpoint_whose_secret_is_unknown_is_replaced(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    let state = with_public_url(&world.state);
    // Stripe has an endpoint for this URL (made earlier), but the CRM no longer holds its secret.
    let mut settings = w::settings();
    settings["stripeAccounts"][0]["webhookSecrets"] = json!([]);
    let request = Request::put("/admin/publications/daily")
        .header("authorization", format!("Bearer {}", support::OPERATOR))
        .header("content-type", "application/json")
        .body(Body::from(settings.to_string()))
        .unwrap();
    assert_eq!(shared::api::all_routes(state.clone()).oneshot(request).await.unwrap().status(), StatusCode::OK);
    let mut old = support::fake_stripe::fixture("webhook_endpoint");
    old["id"] = json!("we_old");
    old["url"] = json!("https://crm.example.com/prod/webhooks/stripe/daily/main");
    world.stripe.put_object(old);
    let (status, answer) = call(&state, "POST", CONNECT, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let endpoints = world.stripe.objects("webhook_endpoint");
    assert_eq!(endpoints.len(), 1);
    assert_ne!(endpoints[0]["id"], "we_old");
    assert_eq!(answer["webhookSecrets"].as_array().unwrap().len(), 1);
}

async fn without_a_configured_url_the_requests_host_is_used(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    // No CRM_PUBLIC_BASE_URL: the endpoint is on the host API Gateway was called on, over https.
    let (status, answer) = call(&world.state, "POST", CONNECT, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let url = format!("https://{API_HOST}/webhooks/stripe/daily/main");
    assert_eq!(answer["url"], url.as_str());
    let endpoints = world.stripe.objects("webhook_endpoint");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["url"], url.as_str(), "the URL Stripe was given");
    // `crm serve` on a laptop: plain http on the loopback host and port it was called on.
    let local = "http://127.0.0.1:8787/webhooks/stripe/daily/main";
    let (status, answer) = call_on(&world.state, Some("127.0.0.1:8787"), "POST", CONNECT, None).await;
    assert_eq!(status, StatusCode::CREATED, "an endpoint of its own for the other URL: {answer}");
    assert_eq!(answer["url"], local);
    let urls: Vec<Value> = world.stripe.objects("webhook_endpoint").iter().map(|e| e["url"].clone()).collect();
    assert_eq!(urls.len(), 2);
    assert!(urls.contains(&json!(local)) && urls.contains(&json!(url)), "{urls:?}");
}

async fn refusals_are_clear(store: Arc<dyn Store>) {
    let world = World::new(store).await;
    world.stripe.clear_requests();
    // Neither CRM_PUBLIC_BASE_URL nor a usable Host: 400, naming the variable, before Stripe is asked.
    for host in [None, Some("crm.example.com/prod"), Some("crm example.com")] {
        let (status, answer) = call_on(&world.state, host, "POST", CONNECT, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{host:?}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains("no public URL") && error.contains("CRM_PUBLIC_BASE_URL"), "{error}");
    }
    assert!(world.stripe.requests().is_empty(), "Stripe is not asked without a URL to give it");
    let state = with_public_url(&world.state);
    let (status, _) =
        call(&state, "POST", "/admin/publications/daily/stripe-accounts/nosuch/webhook-endpoint", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    world.stripe.set_valid_key("sk_test_some_other_key");
    let (status, answer) = call(&state, "POST", CONNECT, None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert!(!answer.to_string().contains("sk_test_daily_main"), "the key never shows: {answer}");
    assert!(world.stripe.objects("webhook_endpoint").is_empty());
}

for_each_store!(
    connecting_creates_once_then_reuses,
    an_endpoint_whose_secret_is_unknown_is_replaced,
    without_a_configured_url_the_requests_host_is_used,
    refusals_are_clear
);
