//! `HttpStripe` against the fake Stripe server over TCP: reads, writes with nested parameters,
//! idempotency keys, retries and their limits, Stripe's error JSON, Connect accounts, the webhook
//! endpoint calls that the setup of a publication makes, and the subscription and subscription schedule
//! calls of the public subscription routes (list, cancel at period end, winback, release), with
//! failures injected per path.

mod support;

use std::time::Duration;

use serde_json::json;
use shared::domain::secret::Secret;
use shared::stripe::client::{HttpStripe, MAX_RETRIES, Params, StripeApi, StripeAuth, StripeError};
use support::fake_stripe::{Failure, FakeStripe, fixture};
use support::stripe_world;

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

    // Deeper nesting, as subscription schedules use it; there is no such schedule, but the fake decodes
    // what it received.
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

// ---- Subscriptions and subscription schedules ----

/// The current period of the subscriptions below: 2023-11-14 to 2023-12-14.
const PERIOD: (i64, i64) = (1_699_920_000, 1_702_512_000);

/// A monthly price, stored.
fn put_price(stripe: &FakeStripe, id: &str, amount: i64) -> serde_json::Value {
    let price = stripe_world::price(id, "prod_daily", amount, "month");
    stripe.put_object(price.clone());
    price
}

/// An active subscription of `customer` on `price_monthly`, stored.
fn put_subscription(stripe: &FakeStripe, id: &str, customer: &str, status: &str, created: i64) -> serde_json::Value {
    let price = put_price(stripe, "price_monthly", 900);
    let mut subscription = stripe_world::subscription(id, customer, status, price, created, PERIOD);
    subscription["items"]["data"][0]["id"] = json!(format!("si_{id}"));
    stripe.put_object(subscription.clone());
    subscription
}

fn ids(list: &serde_json::Value) -> Vec<&str> {
    list["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect()
}

fn api_error(error: &StripeError) -> (u16, &str, Option<&str>, &str) {
    let StripeError::Api { status, kind, code, message, .. } = error else { panic!("{error:?}") };
    (*status, kind.as_str(), code.as_deref(), message.as_str())
}

/// A schedule from `subscription`, under a fresh idempotency key (a reused one replays the first answer).
async fn create_schedule(stripe: &FakeStripe, subscription: &str) -> serde_json::Value {
    let form = Params::new().set("from_subscription", subscription);
    stripe.client().post(&auth(), "/v1/subscription_schedules", &form, &support::unique("schedule")).await.unwrap()
}

#[tokio::test]
async fn subscriptions_are_listed_by_customer_newest_first_leaving_out_ended_ones() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_old", "cus_A", "active", 100);
    put_subscription(&stripe, "sub_canceled", "cus_A", "canceled", 200);
    put_subscription(&stripe, "sub_expired", "cus_A", "incomplete_expired", 300);
    put_subscription(&stripe, "sub_new", "cus_A", "trialing", 400);
    put_subscription(&stripe, "sub_other", "cus_B", "active", 500);
    let client = stripe.client();
    let list = |query: Params| {
        let client = client.clone();
        async move { client.get(&auth(), "/v1/subscriptions", &query).await }
    };

    let default = list(Params::new().set("customer", "cus_A")).await.unwrap();
    assert_eq!(default["object"], "list");
    assert_eq!(default["url"], "/v1/subscriptions");
    assert_eq!(default["has_more"], false);
    assert_eq!(ids(&default), ["sub_new", "sub_old"]);

    let all = list(Params::new().set("customer", "cus_A").set("status", "all")).await.unwrap();
    assert_eq!(ids(&all), ["sub_new", "sub_expired", "sub_canceled", "sub_old"]);
    let canceled = list(Params::new().set("customer", "cus_A").set("status", "canceled")).await.unwrap();
    assert_eq!(ids(&canceled), ["sub_canceled"]);
    let ended = list(Params::new().set("customer", "cus_A").set("status", "ended")).await.unwrap();
    assert_eq!(ids(&ended), ["sub_expired", "sub_canceled"]);

    // Pages.
    let first = list(Params::new().set("customer", "cus_A").set("status", "all").set("limit", "2")).await.unwrap();
    assert_eq!((ids(&first), &first["has_more"]), (vec!["sub_new", "sub_expired"], &json!(true)));
    let query = Params::new()
        .set("customer", "cus_A")
        .set("status", "all")
        .set("limit", "2")
        .set("starting_after", "sub_expired");
    let second = list(query).await.unwrap();
    assert_eq!((ids(&second), &second["has_more"]), (vec!["sub_canceled", "sub_old"], &json!(false)));
    let query =
        Params::new().set("customer", "cus_A").set("status", "all").set("limit", "1").set("ending_before", "sub_old");
    let before = list(query).await.unwrap();
    assert_eq!((ids(&before), &before["has_more"]), (vec!["sub_canceled"], &json!(true)));

    // The stored objects, unchanged.
    assert_eq!(all["data"][3], stripe.object("sub_old").unwrap());

    // What Stripe refuses.
    let error = list(Params::new().set("customer", "cus_A").set("colour", "red")).await.unwrap_err();
    assert!(
        matches!(&error, StripeError::Api { status: 400, code: Some(c), param: Some(p), .. } if c == "parameter_unknown" && p == "colour"),
        "{error:?}"
    );
    let error = list(Params::new().set("status", "gone")).await.unwrap_err();
    assert_eq!(api_error(&error).0, 400);
    let error = list(Params::new().set("limit", "101")).await.unwrap_err();
    assert_eq!(api_error(&error).0, 400);
}

#[tokio::test]
async fn listing_subscriptions_expands_their_schedules() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_plain", "cus_A", "active", 100);
    put_subscription(&stripe, "sub_scheduled", "cus_A", "active", 200);
    let schedule = create_schedule(&stripe, "sub_scheduled").await;

    let plain =
        stripe.client().get(&auth(), "/v1/subscriptions", &Params::new().set("customer", "cus_A")).await.unwrap();
    assert_eq!(plain["data"][0]["schedule"], schedule["id"]);

    let query = Params::new().set("customer", "cus_A").set("status", "all").list("expand", ["data.schedule"]);
    let expanded = stripe.client().get(&auth(), "/v1/subscriptions", &query).await.unwrap();
    assert_eq!(ids(&expanded), ["sub_scheduled", "sub_plain"]);
    assert_eq!(expanded["data"][0]["schedule"], schedule);
    assert_eq!(expanded["data"][1]["schedule"], serde_json::Value::Null);
    assert_eq!(stripe.requests().last().unwrap().param("expand[0]"), Some("data.schedule"));

    // In a list, expansions are of `data.`; one subscription's are not.
    let query = Params::new().list("expand", ["schedule"]);
    let error = stripe.client().get(&auth(), "/v1/subscriptions", &query).await.unwrap_err();
    let (status, _, _, message) = api_error(&error);
    assert_eq!(status, 400);
    assert!(message.starts_with("This property cannot be expanded (schedule)."), "{message}");
    let query = Params::new().list("expand", ["schedule"]);
    let one = stripe.client().get(&auth(), "/v1/subscriptions/sub_scheduled", &query).await.unwrap();
    assert_eq!(one["schedule"], schedule);
}

#[tokio::test]
async fn cancel_at_period_end_sets_the_cancel_date_and_can_be_undone() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_1", "cus_A", "active", 100);
    let client = stripe.client();

    let form = Params::new().set("cancel_at_period_end", "true").set("metadata[crm_reason]", "too_expensive");
    let canceled = client.post(&auth(), "/v1/subscriptions/sub_1", &form, "cancel-sub_1").await.unwrap();
    assert_eq!(canceled["cancel_at_period_end"], true);
    assert_eq!(canceled["cancel_at"], PERIOD.1);
    assert!(canceled["canceled_at"].as_i64().unwrap() > PERIOD.1, "set to the time of the request");
    assert_eq!(canceled["cancellation_details"]["reason"], "cancellation_requested");
    assert_eq!(canceled["status"], "active", "it runs until the period ends");
    assert_eq!(canceled["metadata"], json!({"crm_reason": "too_expensive"}));
    assert_eq!(stripe.object("sub_1").unwrap(), canceled);
    // Still the fields of Stripe's own subscription.
    let mut fields: Vec<&String> = canceled.as_object().unwrap().keys().collect();
    let fixture = fixture("subscription");
    let mut expected: Vec<&String> = fixture.as_object().unwrap().keys().collect();
    fields.sort();
    expected.sort();
    assert_eq!(fields, expected);

    let form = Params::new().set("cancel_at_period_end", "false").set("metadata[crm_reason]", "");
    let resumed = client.post(&auth(), "/v1/subscriptions/sub_1", &form, "resume-sub_1").await.unwrap();
    assert_eq!(resumed["cancel_at_period_end"], false);
    assert_eq!(resumed["cancel_at"], serde_json::Value::Null);
    assert_eq!(resumed["canceled_at"], serde_json::Value::Null);
    assert_eq!(resumed["metadata"], json!({}));

    let error = client.post(&auth(), "/v1/subscriptions/sub_missing", &form, "resume-missing").await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert_eq!(
        api_error(&error),
        (404, "invalid_request_error", Some("resource_missing"), "No such subscription: 'sub_missing'")
    );
    let error = client
        .post(&auth(), "/v1/subscriptions/sub_1", &Params::new().set("cancel_at_period_end", "soon"), "bad-bool")
        .await
        .unwrap_err();
    assert_eq!(api_error(&error).0, 400);

    // A canceled subscription takes only metadata and cancellation details.
    put_subscription(&stripe, "sub_gone", "cus_A", "canceled", 100);
    let error = client
        .post(&auth(), "/v1/subscriptions/sub_gone", &Params::new().set("cancel_at_period_end", "true"), "cancel-gone")
        .await
        .unwrap_err();
    assert_eq!(api_error(&error).0, 400);
    let form = Params::new().set("metadata[crm_note]", "x").set("cancellation_details[comment]", "moved away");
    let noted = client.post(&auth(), "/v1/subscriptions/sub_gone", &form, "note-gone").await.unwrap();
    assert_eq!(noted["cancellation_details"]["comment"], "moved away");
}

#[tokio::test]
async fn an_items_price_is_replaced_by_a_stored_price_only() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_1", "cus_A", "active", 100);
    let annual = put_price(&stripe, "price_annual", 9000);
    let client = stripe.client();

    let form = Params::new()
        .set("items[0][id]", "si_sub_1")
        .set("items[0][price]", "price_annual")
        .set("proration_behavior", "none");
    let updated = client.post(&auth(), "/v1/subscriptions/sub_1", &form, "price-sub_1").await.unwrap();
    let items = updated["items"]["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], "si_sub_1");
    assert_eq!(items[0]["price"], annual);
    assert_eq!(items[0]["quantity"], 1);
    assert_eq!(stripe.object("sub_1").unwrap(), updated);

    for (i, (form, code, message)) in [
        (
            Params::new().set("items[0][id]", "si_sub_1").set("items[0][price]", "price_missing"),
            Some("resource_missing"),
            "No such price: 'price_missing'",
        ),
        (
            Params::new()
                .set("items[0][id]", "si_sub_1")
                .set("items[0][price]", "price_annual")
                .set("proration_behavior", "sometimes"),
            Some("parameter_invalid"),
            "Invalid proration_behavior: must be one of create_prorations, none, or always_invoice",
        ),
        (
            Params::new().set("items[0][id]", "si_other").set("items[0][price]", "price_annual"),
            Some("resource_missing"),
            "No such subscription item: 'si_other'",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let error = client.post(&auth(), "/v1/subscriptions/sub_1", &form, &format!("refused-{i}")).await.unwrap_err();
        assert_eq!(api_error(&error), (400, "invalid_request_error", code, message));
    }
    assert_eq!(stripe.object("sub_1").unwrap(), updated, "a refused update changes nothing");

    // Real parameters the fake does not implement say so instead of being ignored.
    let error = client
        .post(&auth(), "/v1/subscriptions/sub_1", &Params::new().set("trial_end", "now"), "trial")
        .await
        .unwrap_err();
    assert_eq!(api_error(&error).2, Some("fake_stripe_unsupported"));
}

#[tokio::test]
async fn a_schedule_is_created_from_a_subscription_once() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_1", "cus_A", "active", 100);
    let schedule = create_schedule(&stripe, "sub_1").await;
    let id = schedule["id"].as_str().unwrap();
    assert!(id.starts_with("sub_sched_"), "{id}");
    assert_eq!(schedule["object"], "subscription_schedule");
    assert_eq!(schedule["subscription"], "sub_1");
    assert_eq!(schedule["customer"], "cus_A");
    assert_eq!(schedule["status"], "active");
    assert_eq!(schedule["end_behavior"], "release");
    assert_eq!(schedule["released_subscription"], serde_json::Value::Null);
    assert_eq!(schedule["current_phase"], json!({"start_date": PERIOD.0, "end_date": PERIOD.1}));
    let phases = schedule["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 1);
    assert_eq!((&phases[0]["start_date"], &phases[0]["end_date"]), (&json!(PERIOD.0), &json!(PERIOD.1)));
    assert_eq!(phases[0]["items"].as_array().unwrap().len(), 1);
    assert_eq!(phases[0]["items"][0]["price"], "price_monthly");
    assert_eq!(phases[0]["items"][0]["quantity"], 1);
    let mut fields: Vec<&String> = schedule.as_object().unwrap().keys().collect();
    let fixture = fixture("subscription_schedule");
    let mut expected: Vec<&String> = fixture.as_object().unwrap().keys().collect();
    fields.sort();
    expected.sort();
    assert_eq!(fields, expected);

    assert_eq!(stripe.object("sub_1").unwrap()["schedule"], id);
    let path = format!("/v1/subscription_schedules/{id}");
    assert_eq!(stripe.client().get(&auth(), &path, &Params::new()).await.unwrap(), schedule);

    let form = Params::new().set("from_subscription", "sub_1");
    let error = stripe.client().post(&auth(), "/v1/subscription_schedules", &form, "schedule-again").await.unwrap_err();
    let message = format!("You cannot migrate a subscription that is already attached to a schedule: `{id}`.");
    assert_eq!(api_error(&error), (400, "invalid_request_error", None, message.as_str()));
    let form = Params::new().set("from_subscription", "sub_missing");
    let error =
        stripe.client().post(&auth(), "/v1/subscription_schedules", &form, "schedule-missing").await.unwrap_err();
    assert_eq!(
        api_error(&error),
        (400, "invalid_request_error", Some("resource_missing"), "No such subscription: 'sub_missing'")
    );
    assert_eq!(stripe.objects("subscription_schedule").len(), 1);
}

#[tokio::test]
async fn a_scheduled_subscription_refuses_cancelation_changes_until_released() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_1", "cus_A", "active", 100);
    let schedule = create_schedule(&stripe, "sub_1").await;
    let id = schedule["id"].as_str().unwrap();
    let client = stripe.client();

    let cancel = Params::new().set("cancel_at_period_end", "true");
    let error = client.post(&auth(), "/v1/subscriptions/sub_1", &cancel, "cancel-1").await.unwrap_err();
    let message = format!(
        "The subscription is managed by the subscription schedule `{id}`, and updating any cancelation behavior \
         directly is not allowed. Please update the schedule instead."
    );
    assert_eq!(api_error(&error), (400, "invalid_request_error", None, message.as_str()));
    assert_eq!(stripe.object("sub_1").unwrap()["cancel_at_period_end"], false);

    client
        .post(&auth(), &format!("/v1/subscription_schedules/{id}/release"), &Params::new(), "release-1")
        .await
        .unwrap();
    let canceled = client.post(&auth(), "/v1/subscriptions/sub_1", &cancel, "cancel-2").await.unwrap();
    assert_eq!(canceled["cancel_at_period_end"], true);
}

#[tokio::test]
async fn schedule_phases_are_replaced_and_the_current_one_applies_to_the_subscription() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_1", "cus_A", "active", 100);
    let winback = put_price(&stripe, "price_winback", 450);
    let schedule = create_schedule(&stripe, "sub_1").await;
    let path = format!("/v1/subscription_schedules/{}", schedule["id"].as_str().unwrap());
    let client = stripe.client();

    // The winback: a discounted price for the current period and one more month, then the usual one.
    let phases = json!({
        "phases": [
            {"items": [{"price": "price_winback", "quantity": 1}], "start_date": PERIOD.0, "end_date": PERIOD.1},
            {"items": [{"price": "price_winback", "quantity": 1}], "iterations": 1},
            {"items": [{"price": "price_monthly", "quantity": 1}]},
        ],
        "end_behavior": "release",
        "proration_behavior": "none",
    });
    let updated = client.post(&auth(), &path, &Params::from_json(&phases), "winback-1").await.unwrap();
    let request = stripe.requests().last().unwrap().clone();
    assert_eq!(request.param("phases[1][iterations]"), Some("1"));
    let got = updated["phases"].as_array().unwrap();
    assert_eq!(got.len(), 3);
    let dates: Vec<(i64, i64)> =
        got.iter().map(|p| (p["start_date"].as_i64().unwrap(), p["end_date"].as_i64().unwrap())).collect();
    // 2023-11-14, 2023-12-14, 2024-01-14, 2024-02-14 (00:00 UTC).
    assert_eq!(dates, [(PERIOD.0, PERIOD.1), (PERIOD.1, 1_705_190_400), (1_705_190_400, 1_707_868_800)]);
    assert_eq!(got[0]["items"][0]["price"], "price_winback");
    assert_eq!(got[0]["items"][0]["quantity"], 1);
    assert_eq!(got[2]["items"][0]["price"], "price_monthly");
    assert_eq!(updated["end_behavior"], "release");
    assert_eq!(updated["current_phase"], json!({"start_date": PERIOD.0, "end_date": PERIOD.1}));
    let mut phase_fields: Vec<&String> = got[0].as_object().unwrap().keys().collect();
    let fixture = fixture("subscription_schedule");
    let mut expected: Vec<&String> = fixture["phases"][0].as_object().unwrap().keys().collect();
    phase_fields.sort();
    expected.sort();
    assert_eq!(phase_fields, expected);
    assert_eq!(client.get(&auth(), &path, &Params::new()).await.unwrap(), updated);

    // The current phase's price is the subscription's now.
    let subscription = stripe.object("sub_1").unwrap();
    assert_eq!(subscription["items"]["data"].as_array().unwrap().len(), 1);
    assert_eq!(subscription["items"]["data"][0]["price"], winback);

    // What Stripe refuses: moving the current phase's start, a price that does not exist.
    let mut moved = phases.clone();
    moved["phases"][0]["start_date"] = json!(PERIOD.0 + 1);
    let error = client.post(&auth(), &path, &Params::from_json(&moved), "winback-2").await.unwrap_err();
    assert_eq!(api_error(&error).3, "You can not modify the start date of the current phase.");
    let mut now = phases.clone();
    now["phases"][0]["start_date"] = json!("now");
    let error = client.post(&auth(), &path, &Params::from_json(&now), "winback-3").await.unwrap_err();
    assert_eq!(api_error(&error).3, "You can not modify the start date of the current phase.");
    let mut unknown = phases.clone();
    unknown["phases"][1]["items"][0]["price"] = json!("price_missing");
    let error = client.post(&auth(), &path, &Params::from_json(&unknown), "winback-4").await.unwrap_err();
    assert_eq!(
        api_error(&error),
        (400, "invalid_request_error", Some("resource_missing"), "No such price: 'price_missing'")
    );
    let error = client
        .post(&auth(), &path, &Params::new().set("end_behavior", "renew_forever"), "winback-5")
        .await
        .unwrap_err();
    assert_eq!(api_error(&error).0, 400);
    assert_eq!(client.get(&auth(), &path, &Params::new()).await.unwrap(), updated, "refusals change nothing");
}

#[tokio::test]
async fn releasing_a_schedule_frees_its_subscription_once() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_1", "cus_A", "active", 100);
    let schedule = create_schedule(&stripe, "sub_1").await;
    let path = format!("/v1/subscription_schedules/{}/release", schedule["id"].as_str().unwrap());
    let client = stripe.client();

    let released = client.post(&auth(), &path, &Params::new(), "release-1").await.unwrap();
    assert_eq!(released["id"], schedule["id"]);
    assert_eq!(released["status"], "released");
    assert_eq!(released["released_subscription"], "sub_1");
    assert_eq!(released["subscription"], serde_json::Value::Null);
    assert!(released["released_at"].as_i64().unwrap() > PERIOD.1);
    assert_eq!(released["phases"], schedule["phases"]);
    let subscription = stripe.object("sub_1").unwrap();
    assert_eq!(subscription["schedule"], serde_json::Value::Null);
    assert_eq!(subscription["status"], "active");

    let error = client.post(&auth(), &path, &Params::new(), "release-2").await.unwrap_err();
    let message = "You cannot release a subscription schedule that is currently in the `released` status. It must \
                   be in one of the following statuses: `not_started`, `active`.";
    assert_eq!(api_error(&error), (400, "invalid_request_error", None, message));
    let error = client
        .post(&auth(), "/v1/subscription_schedules/sub_sched_missing/release", &Params::new(), "release-3")
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error:?}");

    // Released, the subscription can have a schedule again.
    let again = create_schedule(&stripe, "sub_1").await;
    assert_ne!(again["id"], schedule["id"]);
}

#[tokio::test]
async fn failures_can_be_injected_for_one_path() {
    let stripe = FakeStripe::start().await;
    put_subscription(&stripe, "sub_1", "cus_A", "active", 100);
    let schedule = create_schedule(&stripe, "sub_1").await;
    let release = format!("/v1/subscription_schedules/{}/release", schedule["id"].as_str().unwrap());
    let client = stripe.client();
    stripe.clear_requests();

    stripe.fail_path("POST", &release, 500);
    let error = client.post(&auth(), &release, &Params::new(), "release-1").await.unwrap_err();
    assert_eq!(api_error(&error).0, 500);
    assert_eq!(api_error(&error).1, "api_error");
    assert!(error.is_transient());
    assert_eq!(stripe.requests().len(), MAX_RETRIES as usize + 1, "every retry failed too");
    // Other paths and methods answer as usual; nothing was released.
    client.get(&auth(), &release.replace("/release", ""), &Params::new()).await.unwrap();
    client.post(&auth(), "/v1/subscriptions/sub_1", &Params::new().set("metadata[a]", "b"), "meta-1").await.unwrap();
    assert_eq!(stripe.object("sub_1").unwrap()["schedule"], schedule["id"]);

    stripe.clear_path_failures();
    stripe.clear_requests();
    stripe.fail_path_next("POST", "/v1/subscription_schedules/", 1, Failure::status(500));
    let released = client.post(&auth(), &release, &Params::new(), "release-2").await.unwrap();
    assert_eq!(released["status"], "released");
    assert_eq!(stripe.requests().len(), 2, "one failure, retried");
}
