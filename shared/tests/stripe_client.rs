//! `HttpStripe` against the fake Stripe server over TCP: reads, writes with nested parameters,
//! idempotency keys, retries and their limits, Stripe's error JSON, Connect accounts, and the webhook
//! endpoint calls that the setup of a publication makes.

mod support;

use std::time::Duration;

use serde_json::json;
use shared::domain::secret::Secret;
use shared::stripe::client::{HttpStripe, MAX_RETRIES, Params, StripeApi, StripeAuth, StripeError};
use support::fake_stripe::{Failure, FakeStripe, fixture};

const KEY: &str = "sk_test_51FakeKeyForTheFakeServer00001234";

fn auth() -> StripeAuth {
    StripeAuth::new(Secret::new(KEY))
}

#[tokio::test]
async fn get_answers_a_stored_object() {
    let stripe = FakeStripe::start().await;
    let mut customer = fixture("customer");
    customer["id"] = json!("cus_A1");
    customer["email"] = json!("reader@example.com");
    stripe.put_object(customer.clone());

    let got = stripe.client().get(&auth(), "/v1/customers/cus_A1", &Params::new()).await.unwrap();
    assert_eq!(got, customer);

    let requests = stripe.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/v1/customers/cus_A1"));
    assert_eq!(request.authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(request.stripe_version.as_deref(), Some(shared::stripe::client::API_VERSION));
    assert_eq!(request.idempotency_key, None);
    assert_eq!(request.stripe_account, None);
}

#[tokio::test]
async fn get_sends_its_query() {
    let stripe = FakeStripe::start().await;
    let query = Params::new().set("limit", "2");
    let list = stripe.client().get(&auth(), "/v1/webhook_endpoints", &query).await.unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(stripe.requests()[0].param("limit"), Some("2"));
}

#[tokio::test]
async fn a_missing_object_is_not_found_and_not_retried() {
    let stripe = FakeStripe::start().await;
    let error = stripe.client().get(&auth(), "/v1/customers/cus_x", &Params::new()).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert!(!error.is_transient());
    let StripeError::Api { status, kind, code, message, param, .. } = &error else { panic!("{error:?}") };
    assert_eq!(*status, 404);
    assert_eq!(kind, "invalid_request_error");
    assert_eq!(code.as_deref(), Some("resource_missing"));
    assert_eq!(message, "No such customer: 'cus_x'");
    assert_eq!(param.as_deref(), Some("id"));
    assert_eq!(stripe.requests().len(), 1);
}

#[tokio::test]
async fn nested_post_parameters_arrive_decoded() {
    let stripe = FakeStripe::start().await;
    let body = json!({
        "url": "https://crm.example.com/webhooks/stripe/demo/acct_1",
        "enabled_events": ["customer.subscription.updated", "invoice.paid"],
        "metadata": {"crm_publication": "demo", "crm_customer_id": "c-1"},
        "description": "CRM",
    });
    let created = stripe
        .client()
        .post(&auth(), "/v1/webhook_endpoints", &Params::from_json(&body), "setup-demo-1")
        .await
        .unwrap();
    assert_eq!(created["metadata"], body["metadata"]);
    assert_eq!(created["enabled_events"], body["enabled_events"]);

    let request = &stripe.requests()[0];
    assert_eq!(request.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(request.param("metadata[crm_customer_id]"), Some("c-1"));
    assert_eq!(request.param("enabled_events[1]"), Some("invoice.paid"));
    assert_eq!(request.params_json(), body);

    // Deeper nesting, as subscription schedules use it; the fake does not serve this route, but it
    // decodes what it received.
    let schedule = json!({
        "phases": [
            {"items": [{"price": "price_a", "quantity": "1"}], "iterations": "1"},
            {"items": [{"price": "price_b", "quantity": "2"}]},
        ],
        "end_behavior": "release",
    });
    let error = stripe
        .client()
        .post(&auth(), "/v1/subscription_schedules/sub_sched_1", &Params::from_json(&schedule), "schedule-1")
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404));
    let request = &stripe.requests()[1];
    assert_eq!(request.param("phases[1][items][0][price]"), Some("price_b"));
    assert_eq!(request.params_json(), schedule);
}

#[tokio::test]
async fn every_post_carries_its_idempotency_key_and_retries_reuse_it() {
    let stripe = FakeStripe::start().await;
    stripe.fail_next(2, 500);
    let form = Params::new().set("url", "https://crm.example.com/hook").list("enabled_events", ["invoice.paid"]);
    let created = stripe.client().post(&auth(), "/v1/webhook_endpoints", &form, "create-hook-7").await.unwrap();
    assert!(created["id"].as_str().unwrap().starts_with("we_"));

    let requests = stripe.requests();
    assert_eq!(requests.len(), 3, "two failures, then success");
    assert!(requests.iter().all(|r| r.idempotency_key.as_deref() == Some("create-hook-7")), "{requests:?}");
    assert!(requests.iter().all(|r| r.params == requests[0].params));
    assert_eq!(stripe.objects("webhook_endpoint").len(), 1);

    // A second delivery of the same write answers the first result, creating nothing.
    let again = stripe.client().post(&auth(), "/v1/webhook_endpoints", &form, "create-hook-7").await.unwrap();
    assert_eq!(again, created);
    assert_eq!(stripe.objects("webhook_endpoint").len(), 1);

    // The same key with other parameters is Stripe's idempotency_error.
    let other = form.clone().set("description", "changed");
    let error = stripe.client().post(&auth(), "/v1/webhook_endpoints", &other, "create-hook-7").await.unwrap_err();
    let StripeError::Api { status: 400, kind, .. } = &error else { panic!("{error:?}") };
    assert_eq!(kind, "idempotency_error");

    // An empty key is refused before anything is sent.
    let before = stripe.requests().len();
    let error = stripe.client().post(&auth(), "/v1/webhook_endpoints", &form, "").await.unwrap_err();
    assert!(matches!(error, StripeError::InvalidRequest(_)), "{error:?}");
    assert_eq!(stripe.requests().len(), before);
}

#[tokio::test]
async fn a_rate_limit_is_retried_once_then_succeeds() {
    let stripe = FakeStripe::start().await;
    stripe.put_object(json!({"id": "prod_1", "object": "product", "name": "Digital"}));
    stripe.fail_next(1, 429);
    let product = stripe.client().get(&auth(), "/v1/products/prod_1", &Params::new()).await.unwrap();
    assert_eq!(product["name"], "Digital");
    assert_eq!(stripe.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_within_its_cap() {
    let stripe = FakeStripe::start().await;
    stripe.put_object(json!({"id": "prod_1", "object": "product"}));
    stripe.fail_next_with(1, Failure::status(429).retry_after(1));
    let started = std::time::Instant::now();
    stripe.client().get(&auth(), "/v1/products/prod_1", &Params::new()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
}

#[tokio::test]
async fn server_errors_stop_after_the_maximum_retries() {
    let stripe = FakeStripe::start().await;
    stripe.put_object(json!({"id": "in_1", "object": "invoice"}));
    stripe.fail_next(MAX_RETRIES as usize + 1, 500);
    let error = stripe.client().get(&auth(), "/v1/invoices/in_1", &Params::new()).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(error.status(), Some(500));
    assert!(matches!(&error, StripeError::Api { kind, .. } if kind == "api_error"), "{error:?}");
    assert_eq!(stripe.requests().len(), MAX_RETRIES as usize + 1);
}

#[tokio::test]
async fn should_retry_false_is_never_retried_and_true_always_is() {
    let stripe = FakeStripe::start().await;
    stripe.put_object(json!({"id": "ch_1", "object": "charge"}));
    stripe.fail_next_with(1, Failure::status(500).should_retry(false));
    let error = stripe.client().get(&auth(), "/v1/charges/ch_1", &Params::new()).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert_eq!(stripe.requests().len(), 1);

    stripe.clear_requests();
    stripe.fail_next_with(1, Failure::status(400).should_retry(true));
    stripe.client().get(&auth(), "/v1/charges/ch_1", &Params::new()).await.unwrap();
    assert_eq!(stripe.requests().len(), 2);
}

#[tokio::test]
async fn connection_failures_are_transient_and_retried() {
    // A port that was free a moment ago: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = HttpStripe::new(&format!("http://{address}")).unwrap().with_backoff(Duration::from_millis(1));
    let error = client.get(&auth(), "/v1/customers/cus_1", &Params::new()).await.unwrap_err();
    assert!(matches!(error, StripeError::Transport(_)), "{error:?}");
    assert!(error.is_transient());
    assert!(!error.to_string().contains(KEY));
}

#[tokio::test]
async fn dropped_connections_are_retried_up_to_the_maximum() {
    // A server that accepts connections and closes them without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    let client = HttpStripe::new(&format!("http://{address}")).unwrap().with_backoff(Duration::from_millis(1));
    let form = Params::new().set("url", "https://x.example");
    let error = client.post(&auth(), "/v1/webhook_endpoints", &form, "dropped-1").await.unwrap_err();
    assert!(matches!(error, StripeError::Transport(_)), "{error:?}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), MAX_RETRIES as usize + 1);
    server.abort();
}

#[tokio::test]
async fn a_wrong_key_is_stripes_401_and_never_shown() {
    let stripe = FakeStripe::start().await;
    stripe.set_valid_key(KEY);
    let wrong = "sk_test_51SomeOtherAccountsKeyAbcdef9876";
    let auth = StripeAuth::new(Secret::new(wrong));
    let error = stripe.client().get(&auth, "/v1/webhook_endpoints", &Params::new()).await.unwrap_err();
    let StripeError::Api { status, kind, message, .. } = &error else { panic!("{error:?}") };
    assert_eq!((*status, kind.as_str()), (401, "invalid_request_error"));
    assert_eq!(message, "Invalid API Key provided: sk_test_****9876");
    assert!(!error.is_transient());
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(wrong) && !text.contains(KEY), "{text}");
    }
    assert_eq!(stripe.requests().len(), 1);

    // The right key goes through.
    stripe.client().get(&self::auth(), "/v1/webhook_endpoints", &Params::new()).await.unwrap();
}

#[tokio::test]
async fn a_connected_account_is_sent_as_stripe_account() {
    let stripe = FakeStripe::start().await;
    stripe.put_object(json!({"id": "sub_1", "object": "subscription", "status": "active"}));
    let auth = auth().with_account("acct_1Connected");
    stripe.client().get(&auth, "/v1/subscriptions/sub_1", &Params::new()).await.unwrap();
    stripe.client().delete(&auth, "/v1/webhook_endpoints/we_missing").await.unwrap_err();
    let requests = stripe.requests();
    assert!(requests.iter().all(|r| r.stripe_account.as_deref() == Some("acct_1Connected")), "{requests:?}");
}

#[tokio::test]
async fn webhook_endpoints_round_trip() {
    let stripe = FakeStripe::start().await;
    let client = stripe.client();
    let form = Params::new()
        .set("url", "https://crm.example.com/webhooks/stripe/demo/acct_1")
        .list("enabled_events", ["customer.subscription.created", "invoice.paid"])
        .set("api_version", "2025-03-31.basil")
        .set("metadata[crm_publication]", "demo");
    let created = client.post(&auth(), "/v1/webhook_endpoints", &form, "we-create-demo").await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("we_"));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["api_version"], "2025-03-31.basil");
    assert_eq!(created["object"], "webhook_endpoint");
    // The same fields as Stripe's own object, plus the secret shown once.
    let mut fields: Vec<&String> = created.as_object().unwrap().keys().filter(|k| *k != "secret").collect();
    let fixture = fixture("webhook_endpoint");
    let mut expected: Vec<&String> = fixture.as_object().unwrap().keys().collect();
    fields.sort();
    expected.sort();
    assert_eq!(fields, expected);

    let list = client.get(&auth(), "/v1/webhook_endpoints", &Params::new()).await.unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["has_more"], false);
    assert_eq!(list["url"], "/v1/webhook_endpoints");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], id.as_str());
    assert!(data[0].get("secret").is_none(), "the secret is shown on creation only");

    let path = format!("/v1/webhook_endpoints/{id}");
    let update = Params::new()
        .set("url", "https://crm.example.com/webhooks/stripe/demo/acct_2")
        .list("enabled_events", ["*"])
        .set("disabled", "true");
    let updated = client.post(&auth(), &path, &update, "we-update-demo").await.unwrap();
    assert_eq!(updated["url"], "https://crm.example.com/webhooks/stripe/demo/acct_2");
    assert_eq!(updated["enabled_events"], json!(["*"]));
    assert_eq!(updated["status"], "disabled");
    assert_eq!(updated["metadata"], json!({"crm_publication": "demo"}));
    assert_eq!(client.get(&auth(), &path, &Params::new()).await.unwrap(), updated);

    let deleted = client.delete(&auth(), &path).await.unwrap();
    assert_eq!(deleted, json!({"id": id, "object": "webhook_endpoint", "deleted": true}));
    let error = client.get(&auth(), &path, &Params::new()).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let list = client.get(&auth(), "/v1/webhook_endpoints", &Params::new()).await.unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn the_fake_refuses_what_stripe_refuses() {
    let stripe = FakeStripe::start().await;
    // Unknown and missing parameters.
    let error = stripe
        .client()
        .post(
            &auth(),
            "/v1/webhook_endpoints",
            &Params::new().set("url", "https://x.example").set("colour", "red"),
            "k1",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StripeError::Api { code: Some(c), param: Some(p), .. } if c == "parameter_unknown" && p == "colour")
    );
    let error = stripe
        .client()
        .post(&auth(), "/v1/webhook_endpoints", &Params::new().set("url", "https://x.example"), "k2")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StripeError::Api { code: Some(c), param: Some(p), .. } if c == "parameter_missing" && p == "enabled_events")
    );

    // A JSON body (which HttpStripe never sends) is a 400, like at Stripe.
    shared::stripe::client::install_tls_provider();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/webhook_endpoints", stripe.base_url()))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(r#"{"url":"https://x.example","enabled_events":["*"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(stripe.objects("webhook_endpoint").is_empty());
}
