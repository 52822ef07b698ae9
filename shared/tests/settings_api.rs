//! The settings API over HTTP (the same router the Lambda and `crm serve` run), on both stores.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::api::{AppState, settings};
use shared::domain::ids::PublicationId;
use shared::store::Store;
use shared::store::repo::publications;
use tower::ServiceExt;

use support::OPERATOR;

fn example() -> Value {
    json!({
      "name": "Daily Example",
      "origins": ["https://www.example.com"],
      "stripeAccounts": [
        {"key": "main", "name": "Example Media Ltd", "secretKey": "sk_test_51HxYzAbCdEfGhIjKlMnOpa1b2",
         "webhookSecrets": ["whsec_0123456789abcdefghijWXYZ"]}
      ],
      "piano": {"aid": "AbCdEf1234", "apiToken": "piano-api-token-0123456789", "privateKey": "thestringliteralisexactlyfortych",
                "jwtSecret": null, "region": "us", "legacyWebhookUrls": ["https://old.example.com/piano-hook"]},
      "winbackOffers": [
        {"priceId": "price_winback", "label": "Half price for 3 months", "appliesToPriceIds": ["price_monthly"], "changeAt": "now"}
      ],
      "automations": [
        {"on": "payment_failed", "do": [{"createTask": {"title": "Payment failed: call {customer.email}", "assignee": "am@example.com"}},
                                        {"notify": {"url": "https://hooks.example.com/crm"}}]}
      ],
      "catalogue": [
        {"sku": "EBOOK-42", "name": "Election guide (ebook)", "stripeProductIds": ["prod_123"], "pianoResourceIds": ["RXYZ"]}
      ]
    })
}

struct Api {
    state: AppState,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    fn new(store: Arc<dyn Store>) -> Self {
        Self { state: support::app_state(store) }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some((content_type, bytes)) => request.header("content-type", content_type).body(Body::from(bytes)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = settings::router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("every answer is JSON, got {bytes:?}"));
        Answer { status, headers, body }
    }

    async fn put(&self, id: &str, key: &str, body: &Value) -> Answer {
        self.call(
            "PUT",
            &format!("/admin/publications/{id}"),
            Some(key),
            Some(("application/json", body.to_string().into_bytes())),
            &[],
        )
        .await
    }

    async fn get(&self, id: &str, key: Option<&str>) -> Answer {
        self.call("GET", &format!("/admin/publications/{id}"), key, None, &[]).await
    }
}

fn secrets_in(body: &Value) -> Vec<String> {
    vec![
        body["stripeAccounts"][0]["secretKey"].as_str().unwrap_or_default().to_owned(),
        body["stripeAccounts"][0]["webhookSecrets"][0].as_str().unwrap_or_default().to_owned(),
        body["piano"]["apiToken"].as_str().unwrap_or_default().to_owned(),
        body["piano"]["privateKey"].as_str().unwrap_or_default().to_owned(),
    ]
}

async fn settings_round_trip_with_secrets_masked(store: Arc<dyn Store>) {
    let api = Api::new(store.clone());
    let id = support::unique("demo");
    let created = api.put(&id, OPERATOR, &example()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.headers["etag"], "\"1\"");
    let read = api.get(&id, Some(OPERATOR)).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created.body);
    assert_eq!(secrets_in(&read.body), ["sk_test_…a1b2", "whsec_…WXYZ", "…6789", "…tych"]);
    // Everything but the secrets comes back exactly as sent.
    let mut expected = example();
    for (pointer, masked) in [
        ("/stripeAccounts/0/secretKey", "sk_test_…a1b2"),
        ("/stripeAccounts/0/webhookSecrets/0", "whsec_…WXYZ"),
        ("/piano/apiToken", "…6789"),
        ("/piano/privateKey", "…tych"),
    ] {
        *expected.pointer_mut(pointer).unwrap() = json!(masked);
    }
    assert_eq!(read.body, expected);
    let text = read.body.to_string();
    assert!(!text.contains("AbCdEfGhIjKl") && !text.contains("thestringliteral"), "no secret leaks: {text}");

    // Sending the masked document back keeps the stored secrets; a changed field is saved.
    let mut edited = read.body.clone();
    edited["name"] = json!("Daily Example (edited)");
    let saved = api.put(&id, OPERATOR, &edited).await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    assert_eq!(saved.headers["etag"], "\"2\"");
    let stored = publications::get(store.as_ref(), &PublicationId::parse(&id).unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.value.settings.name, "Daily Example (edited)");
    assert_eq!(stored.value.settings.stripe_accounts[0].secret_key.expose(), "sk_test_51HxYzAbCdEfGhIjKlMnOpa1b2");
    assert_eq!(stored.value.settings.piano.as_ref().unwrap().private_key.expose(), "thestringliteralisexactlyfortych");
}

async fn keys_reach_their_publication_only(store: Arc<dyn Store>) {
    let api = Api::new(store);
    let (a, b) = (support::unique("a"), support::unique("b"));
    assert_eq!(api.put(&a, OPERATOR, &example()).await.status, StatusCode::CREATED);
    // Same Piano application, other pages: a publication never answers for another's origin.
    let mut other = example();
    other["origins"] = json!(["https://www.other.example"]);
    assert_eq!(api.put(&b, OPERATOR, &other).await.status, StatusCode::CREATED);
    let issued = api.call("POST", &format!("/admin/publications/{a}/keys"), Some(OPERATOR), None, &[]).await;
    assert_eq!(issued.status, StatusCode::CREATED);
    let key = issued.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("crm_pk_") && key.len() > 40);

    assert_eq!(api.get(&a, Some(&key)).await.status, StatusCode::OK);
    let other = api.get(&b, Some(&key)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "another publication looks absent");
    assert_eq!(api.put(&b, &key, &example()).await.status, StatusCode::NOT_FOUND);
    let mint = api.call("POST", &format!("/admin/publications/{a}/keys"), Some(&key), None, &[]).await;
    assert_eq!(mint.status, StatusCode::FORBIDDEN);
    for wrong in [None, Some("wrong"), Some("crm_pk_forged"), Some(&key[..key.len() - 1])] {
        let answer = api.get(&a, wrong).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(answer.body, json!({"error": "missing or invalid API key"}));
    }
    let missing = api.call("POST", "/admin/publications/absent/keys", Some(OPERATOR), None, &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn invalid_settings_name_the_field(store: Arc<dyn Store>) {
    let api = Api::new(store.clone());
    let id = support::unique("bad");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"origins": []}), "missing field `name`"),
        (
            json!({"name": "x", "stripeAccounts": [{"key": "main", "name": "n"}]}),
            "stripeAccounts[0]: missing field `secretKey`",
        ),
        (
            json!({"name": "x", "stripeAccounts": [{"key": "main", "name": "n", "secretKey": "pk_live_123456789"}]}),
            "stripeAccounts[0].secretKey:",
        ),
        (
            json!({"name": "x", "stripeAccounts": [{"key": "Main!", "name": "n", "secretKey": "sk_test_123456789"}]}),
            "stripeAccounts[0].key:",
        ),
        (json!({"name": "x", "origins": ["https://a.example.com/path"]}), "origins[0]:"),
        (
            json!({"name": "x", "piano": {"aid": "A1", "apiToken": "t", "privateKey": "k", "region": "mars"}}),
            "piano.region:",
        ),
        (
            json!({"name": "x", "winbackOffers": [{"priceId": "price_1", "label": "l", "appliesToPriceIds": [], "changeAt": "now"}]}),
            "winbackOffers[0].appliesToPriceIds:",
        ),
        (
            json!({"name": "x", "automations": [{"on": "payment_failed", "do": [{"notify": {"url": "ftp://x"}}]}]}),
            "automations[0].do[0].notify.url:",
        ),
        (json!({"name": "x", "automations": [{"on": "moon_rise", "do": []}]}), "automations[0].on:"),
        (
            json!({"name": "x", "catalogue": [{"sku": "A", "name": "a"}, {"sku": "A", "name": "b"}]}),
            "catalogue[1].sku:",
        ),
        (json!({"name": "x", "nmae": "typo"}), "unknown field `nmae`"),
        (json!({"name": "  "}), "name: must not be empty"),
        (
            json!({"name": "x", "stripeAccounts": [{"key": "main", "name": "n", "secretKey": "sk_test_…abcd"}]}),
            "stripeAccounts[0].secretKey: masked value",
        ),
    ];
    for (body, expected) in cases {
        let answer = api.put(&id, OPERATOR, &body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        let message = answer.body["error"].as_str().unwrap();
        assert!(message.contains(expected), "{body} → {message:?}, expected {expected:?}");
    }
    let bad_json = api
        .call(
            "PUT",
            &format!("/admin/publications/{id}"),
            Some(OPERATOR),
            Some(("application/json", b"{\"name\":".to_vec())),
            &[],
        )
        .await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert!(bad_json.body["error"].as_str().unwrap().starts_with("body: invalid JSON"));
    let trailing = api
        .call(
            "PUT",
            &format!("/admin/publications/{id}"),
            Some(OPERATOR),
            Some(("application/json", b"{\"name\":\"x\"} {}".to_vec())),
            &[],
        )
        .await;
    assert_eq!(trailing.status, StatusCode::BAD_REQUEST);
    let not_utf8 = api
        .call(
            "PUT",
            &format!("/admin/publications/{id}"),
            Some(OPERATOR),
            Some(("application/json", vec![0xff, 0xfe, b'{'])),
            &[],
        )
        .await;
    assert_eq!(not_utf8.status, StatusCode::BAD_REQUEST);
    let text = api
        .call("PUT", &format!("/admin/publications/{id}"), Some(OPERATOR), Some(("text/plain", b"{}".to_vec())), &[])
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = vec![b' '; 300 * 1024];
    let too_large = api
        .call("PUT", &format!("/admin/publications/{id}"), Some(OPERATOR), Some(("application/json", huge)), &[])
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep = api
        .call(
            "PUT",
            &format!("/admin/publications/{id}"),
            Some(OPERATOR),
            Some(("application/json", deep.into_bytes())),
            &[],
        )
        .await;
    assert_eq!(deep.status, StatusCode::BAD_REQUEST);
    for path in ["/admin/publications/..%2Fetc", "/admin/publications/UPPER", "/admin/publications/a%00b"] {
        let answer = api.call("GET", path, Some(OPERATOR), None, &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert!(
        publications::get(store.as_ref(), &PublicationId::parse(&id).unwrap()).await.unwrap().is_none(),
        "nothing stored"
    );
    let route = api.call("GET", "/nowhere", Some(OPERATOR), None, &[]).await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
    let method = api.call("DELETE", &format!("/admin/publications/{id}"), Some(OPERATOR), None, &[]).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn concurrent_edits_are_detected(store: Arc<dyn Store>) {
    let api = Api::new(store);
    let id = support::unique("etag");
    assert_eq!(api.put(&id, OPERATOR, &example()).await.status, StatusCode::CREATED);
    let path = format!("/admin/publications/{id}");
    let body = || Some(("application/json", example().to_string().into_bytes()));
    let stale = api.call("PUT", &path, Some(OPERATOR), body(), &[("if-match", "\"7\"")]).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let fresh = api.call("PUT", &path, Some(OPERATOR), body(), &[("if-match", "\"1\"")]).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.headers["etag"], "\"2\"");
}

for_each_store!(
    settings_round_trip_with_secrets_masked,
    keys_reach_their_publication_only,
    invalid_settings_name_the_field,
    concurrent_edits_are_detected,
);
