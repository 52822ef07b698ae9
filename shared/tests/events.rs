//! The samples under `events/` are real API Gateway v2 requests: each parses as lambda_http does
//! and, replayed in order through its function's router, does what its name says.

mod support;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use tower::ServiceExt;

use support::event_sample as sample;

async fn invoke(function: &str, file: &str, state: shared::api::AppState) -> (StatusCode, serde_json::Value) {
    invoke_text(function, &sample(function, file), state).await
}

async fn invoke_text(function: &str, text: &str, state: shared::api::AppState) -> (StatusCode, serde_json::Value) {
    let path = function;
    let request = lambda_http::request::from_str(text)
        .unwrap_or_else(|e| panic!("a sample of {path} is not an API Gateway event: {e}"));
    let response = support::router_of(function, state).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn settings_samples_put_get_and_issue_a_key() {
    let store = support::embedded_store();
    let state = support::app_state(store.store.clone());
    let (status, body) = invoke("settings-put", "put-settings.json", state.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = invoke("settings-get", "get-settings.json", state.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["stripeAccounts"][0]["secretKey"], "sk_test_…a1b2");
    let (status, body) = invoke("keys-issue", "issue-key.json", state).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["key"].as_str().unwrap().starts_with("crm_pk_"));
}

/// The Stripe webhook sample, re-signed as `crm stripe sign` does, is queued; the worker's SQS sample
/// applies; the customers-list sample then finds the reader and sync health shows both events.
#[tokio::test]
async fn stripe_samples_flow_from_webhook_to_worker_to_the_admin_routes() {
    let store = support::embedded_store();
    let stripe = support::fake_stripe::FakeStripe::start().await;
    let state = support::app_state_with(store.store.clone(), stripe.base_url());
    let (status, _) = invoke("settings-put", "put-settings.json", state.clone()).await;
    assert_eq!(status, StatusCode::CREATED);

    let stale = sample("stripe-webhook", "customer-created.json");
    let (status, _) = invoke_text("stripe-webhook", &stale, state.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "its recorded signature is long expired");
    let mut fresh: serde_json::Value = serde_json::from_str(&stale).unwrap();
    let body = fresh["body"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    fresh["headers"]["stripe-signature"] =
        shared::stripe::signature::sign(body.as_bytes(), "whsec_0123456789abcdefghijWXYZ", now).into();
    let (status, answer) = invoke_text("stripe-webhook", &fresh.to_string(), state.clone()).await;
    assert_eq!((status, answer), (StatusCode::OK, serde_json::json!({"received": true})));

    // The worker's batch: the reader and their first payment, in one SQS event.
    let story = sample("stripe-webhook", "story/03-customer-created.json");
    stripe.put_object(serde_json::from_str::<serde_json::Value>(&story).unwrap()["data"]["object"].clone());
    let batch: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&sample("webhook-worker", "sqs-batch.json")).unwrap();
    assert_eq!(batch.records.len(), 2);
    let worker = shared::sync::worker::EventWorker::new(store.store.clone(), std::sync::Arc::new(stripe.client()));
    let response = shared::queue::worker::lambda_batch(&worker, batch).await;
    assert!(response.batch_item_failures.is_empty());

    let (status, found) = invoke("customers-list", "find-customer-by-email.json", state.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["data"][0]["email"], "ada.reader@example.com");
    assert_eq!(found["data"][0]["lifetimeValue"], serde_json::json!([{"currency": "usd", "amount": 1500}]));

    // The worker's batch shows in sync health: both events applied, the webhook's one received.
    let (status, health) = invoke("sync-health", "get-sync-health.json", state).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    let sources = health["sources"].as_array().unwrap();
    let main = sources.iter().find(|s| s["provider"] == "stripe" && s["account"] == "main").unwrap();
    assert_eq!(main["last24h"]["applied"], 2, "{health}");
    assert!(main["lastReceived"]["type"].is_string(), "{health}");
}

/// The public routes' samples (sample token for the sample publication, which has no JWT secret, so
/// Piano's verification decides): list, then winback, then cancel, through fake Stripe and Piano.
#[tokio::test]
async fn public_route_samples_list_winback_and_cancel() {
    use support::stripe_world as w;
    let store = support::embedded_store();
    let stripe = support::fake_stripe::FakeStripe::start().await;
    let piano = support::fake_piano::FakePiano::start().await;
    let config = shared::api::ApiConfig {
        piano_api_base: Some(piano.base_url().to_owned()),
        ..shared::api::ApiConfig::default()
    };
    let mut state = support::app_state_with(store.store.clone(), stripe.base_url()).with_config(config);
    state.piano = std::sync::Arc::new(piano.client());
    let (status, _) = invoke("settings-put", "put-settings.json", state.clone()).await;
    assert_eq!(status, StatusCode::CREATED);

    let list = sample("subscriptions-list", "list-subscriptions.json");
    let token = serde_json::from_str::<serde_json::Value>(&list).unwrap()["queryStringParameters"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    piano.accept_token("AbCdEf1234", "piano-api-token-0123456789", &token, "PNIdemo0001");
    let publication = shared::domain::ids::PublicationId::parse("demo").unwrap();
    let mut reader = shared::domain::customer::Customer::new(publication, 0);
    reader.piano_uid = Some("PNIdemo0001".into());
    reader
        .stripe_customer_ids
        .insert(shared::domain::ids::AccountKey::parse("main").unwrap(), "cus_demo_reader".into());
    shared::store::repo::customers::create(store.store.as_ref(), &reader).await.unwrap();
    for (price, amount) in [("price_monthly", 1500), ("price_winback", 750)] {
        stripe.put_object(w::price(price, "prod_demo_digital", amount, "month"));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let monthly = stripe.object("price_monthly").unwrap();
    stripe.put_object(w::subscription(
        "sub_demo_reader",
        "cus_demo_reader",
        "active",
        monthly,
        now,
        (now, now + 2_592_000),
    ));

    let (status, body) = invoke_text("subscriptions-list", &list, state.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subscriptions"][0]["id"], "sub_demo_reader");
    let (status, body) = invoke("subscriptions-winback", "accept-offer.json", state.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["message"], "Plan changed. No schedule for this price.");
    let (status, body) = invoke("subscriptions-cancel", "cancel-at-period-end.json", state).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["cancel_at_period_end"], true);
}

/// The Piano webhook sample (encrypted with the sample settings' private key by openssl, not by this
/// project) queues the CRM's copy, which the worker applies, and the very forward job the forwarder
/// sample carries; that job, pointed at a loopback endpoint, is replayed there.
#[tokio::test]
async fn piano_samples_flow_from_proxy_to_worker_and_forwarder() {
    use std::sync::Arc;
    use std::time::Duration;

    use shared::piano::forward::{ForwardWorker, Forwarder};
    use shared::queue::{EVENTS, FORWARD};

    let store = support::embedded_store();
    let state = support::app_state(store.store.clone());
    assert_eq!(invoke("settings-put", "put-settings.json", state.clone()).await.0, StatusCode::CREATED);
    let (status, body) = invoke("piano-webhook", "access-granted.json", state.clone()).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({"received": true})));

    let crm = state.queue.receive(EVENTS.name, 10, Duration::from_millis(10)).await.unwrap();
    let stripe = shared::stripe::client::HttpStripe::new("http://127.0.0.1:9").unwrap();
    let worker = shared::sync::worker::EventWorker::new(store.store.clone(), Arc::new(stripe));
    assert_eq!(worker.process(&crm[0].body).await.unwrap(), shared::sync::Outcome::Applied);
    let publication = shared::domain::ids::PublicationId::parse("demo").unwrap();
    let reader = shared::domain::customer::Identity::Piano("PNIdemo0001".into());
    let customer = shared::store::repo::customers::find(store.store.as_ref(), &publication, &reader).await.unwrap();
    assert!(customer.unwrap().value.piano.entitlements.contains_key("RXYZ"));

    let queued = state.queue.receive(FORWARD.name, 10, Duration::from_millis(10)).await.unwrap();
    let mut batch: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&sample("piano-forwarder", "sqs-batch.json")).expect("an SQS event");
    let mut job: serde_json::Value = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(job, serde_json::from_str::<serde_json::Value>(&queued[0].body).unwrap(), "the job the proxy queues");

    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let legacy = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(uri.query().unwrap_or_default().to_owned());
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    job["url"] = format!("http://{}/piano-hook", listener.local_addr().unwrap()).into();
    tokio::spawn(async move { axum::serve(listener, legacy).await.unwrap() });
    batch.records[0].body = Some(job.to_string());
    let forwarder = ForwardWorker::new(Arc::new(Forwarder::new(true)));
    let response = shared::queue::worker::lambda_batch(&forwarder, batch).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(*seen.lock().unwrap(), [job["query"].as_str().unwrap().to_owned()]);
}

/// The revenue sample answers the report of its range (empty for a new publication).
#[tokio::test]
async fn revenue_sample_answers_its_range() {
    let store = support::embedded_store();
    let state = support::app_state(store.store.clone());
    assert_eq!(invoke("settings-put", "put-settings.json", state.clone()).await.0, StatusCode::CREATED);
    let (status, body) = invoke("revenue-api", "get-revenue.json", state).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!({"from": "2026-01", "to": "2026-03", "currencies": []}));
}

#[test]
fn every_sample_belongs_to_a_function() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_dir() {
            continue; // expectations.json
        }
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

/// The backfill samples: the backfill-start POST queues a slice whose message is the `backfill`
/// function's SQS sample; that sample, run as the function runs it, imports the account; the GET
/// sample reports the job done; the catch-up sample lists the account's events.
#[tokio::test]
async fn backfill_samples_start_run_and_report_a_job() {
    let store = support::embedded_store();
    let stripe = support::fake_stripe::FakeStripe::start().await;
    stripe.put_objects(support::stripe_account::objects(3));
    let state = support::app_state_with(store.store.clone(), stripe.base_url());
    assert_eq!(invoke("settings-put", "put-settings.json", state.clone()).await.0, StatusCode::CREATED);
    let (status, job) = invoke("backfill-start", "start-backfill.json", state.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!((job["state"].as_str(), job["rate"].as_u64()), (Some("running"), Some(25)), "a test key's rate");

    let queued = state.queue.receive(shared::queue::JOBS.name, 10, std::time::Duration::ZERO).await.unwrap();
    let sqs: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&sample("backfill", "sqs-slice.json")).expect("an SQS event");
    let batch = shared::queue::worker::received(sqs);
    let body = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(body(&queued[0].body), body(&batch[0].body), "the sample is the message the route queues");

    let worker = shared::jobs::JobWorker::new(
        state.store.clone(),
        state.stripe.clone(),
        state.queue.clone(),
        std::time::Duration::ZERO,
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    assert!(worker.handle_until(&batch, deadline).await.is_empty(), "the slice succeeded");
    let (status, report) = invoke("backfill-status", "get-backfill.json", state.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let job = &report["data"][0];
    assert_eq!(job["state"], "done", "{report}");
    let customers = job["stages"].as_array().unwrap().iter().find(|s| s["objectType"] == "customers").unwrap();
    assert_eq!((customers["objects"].as_u64(), customers["progress"].as_f64()), (Some(3), Some(1.0)));
    let next = state.queue.receive(shared::queue::JOBS.name, 10, std::time::Duration::ZERO).await.unwrap();
    assert!(next.is_empty(), "a finished job queues no further slice");

    // The catch-up webhook-worker queues on a gap: the job lists the account's events.
    let sqs: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&sample("backfill", "sqs-catch-up.json")).expect("an SQS event");
    stripe.clear_requests();
    assert!(worker.handle_until(&shared::queue::worker::received(sqs), deadline).await.is_empty(), "the catch-up ran");
    let listed = stripe.requests().into_iter().filter(|r| r.path == "/v1/events").count();
    assert!(listed >= 2, "recent and undelivered events were listed: {listed}");
}
