//! What the functions under measurement talk to, and the events they are fed: a fresh table and
//! queues on the DynamoDB/SQS emulator, the test suite's fake Stripe and Piano servers, a loopback
//! endpoint for Piano forwards, the sample publication's settings (put by the settings-put binary
//! itself) and a reader; then, per function, a request that needs no store and the sample that does.

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::{Value, json};
use shared::domain::ids::{AccountKey, PublicationId};
use shared::store::Store;

use crate::endpoints::Endpoints;
use crate::runtime_api::{Launch, RuntimeApi};
use crate::support;
use crate::support::stripe_world as w;

pub use crate::support::event_sample as sample;

/// The sample publication's Stripe webhook signing secret (events/settings-put/put-settings.json).
pub const WEBHOOK_SECRET: &str = "whsec_0123456789abcdefghijWXYZ";
const PUBLICATION: &str = "demo";

/// How a function's answer must look for its run to count.
#[derive(Clone, Copy)]
pub enum Expect {
    /// An API Gateway response with this status.
    Status(u16),
    /// An SQS partial batch response without failures.
    NoFailures,
    /// An API Gateway response that is no server error: the repeat of a write (a second winback on
    /// a subscription already moved to the offer) may be refused.
    Handled,
}

impl Expect {
    pub fn check(self, answer: &[u8]) -> Result<(), String> {
        let value: Value = serde_json::from_slice(answer).map_err(|e| format!("answer is not JSON: {e}"))?;
        let ok = match self {
            Expect::Status(status) => value["statusCode"] == status,
            Expect::NoFailures => value["batchItemFailures"].as_array().is_some_and(Vec::is_empty),
            Expect::Handled => value["statusCode"].as_u64().is_some_and(|status| status < 500),
        };
        if ok { Ok(()) } else { Err(format!("unexpected answer: {value}")) }
    }
}

pub struct World {
    pub bin_dir: std::path::PathBuf,
    pub log_dir: std::path::PathBuf,
    /// The environment every Rust function gets (what template.yaml sets, pointed at the emulator).
    pub env: Vec<(String, String)>,
    pub events_queue_url: String,
    pub endpoints: Endpoints,
    store: Arc<dyn Store>,
    stripe: support::fake_stripe::FakeStripe,
    piano: support::fake_piano::FakePiano,
    legacy_url: String,
}

/// The environment Lambda gives every function, whatever its runtime.
pub fn lambda_env(function: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ];
    for name in ["PATH", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        if let Ok(value) = std::env::var(name) {
            env.push((name, value));
        }
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl World {
    pub async fn new(api: &RuntimeApi, bin_dir: std::path::PathBuf, log_dir: std::path::PathBuf) -> World {
        let sdk = support::sdk().await;
        let table = support::unique("coldstart");
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        shared::store::schema::create_table(&dynamo, &table).await.expect("create the table on the emulator");
        let store: Arc<dyn Store> = Arc::new(shared::store::dynamo::DynamoStore::new(dynamo, table.clone()));
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let prefix = support::unique("coldstart");
        let mut env = vec![
            ("CRM_TABLE_NAME".to_owned(), table),
            ("CRM_FORWARD_ALLOW_PRIVATE".to_owned(), "1".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        // As deployed, the admin functions read the operator token from Secrets Manager at init;
        // CRM_BENCH_TOKEN=env hands it over in the environment instead, for the comparison.
        if std::env::var("CRM_BENCH_TOKEN").is_ok_and(|v| v == "env") {
            env.push((shared::config::ADMIN_TOKEN.to_owned(), support::OPERATOR.to_owned()));
        } else {
            let secret = aws_sdk_secretsmanager::Client::new(&sdk)
                .create_secret()
                .name(support::unique("coldstart-operator-token"))
                .secret_string(support::OPERATOR)
                .send()
                .await
                .expect("create the operator token's secret on the emulator");
            let arn = secret.arn().expect("the secret's ARN").to_owned();
            env.push((shared::config::ADMIN_TOKEN_SECRET_ARN.to_owned(), arn));
        }
        let emulator = support::emulator_endpoint();
        let endpoints = Endpoints::start(&emulator).await;
        env.extend(endpoints.env.iter().cloned());
        let mut events_queue_url = String::new();
        for def in shared::queue::ALL {
            for (name, url) in shared::queue::sqs::create_queues(&sqs, &prefix, def).await.expect("create queues") {
                // The processes reach the queue through their SQS endpoint (the JavaScript SDK sends
                // to the queue URL's host).
                let url = url.replacen(emulator.trim_end_matches('/'), &endpoints.sqs, 1);
                if name == shared::queue::EVENTS.name {
                    events_queue_url = url.clone();
                }
                let var = if name == def.name { def.url_env } else { def.dlq_url_env };
                env.push((var.to_owned(), url));
            }
        }

        let stripe = support::fake_stripe::FakeStripe::start().await;
        let piano = support::fake_piano::FakePiano::start().await;
        env.push((shared::stripe::client::API_BASE_ENV.to_owned(), stripe.base_url().to_owned()));
        env.push((shared::piano::client::API_BASE_ENV.to_owned(), piano.base_url().to_owned()));
        let legacy = axum::Router::new().fallback(|| async { "ok" });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the legacy endpoint");
        let legacy_url = format!("http://{}/piano-hook", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, legacy).await });

        let world = World { bin_dir, log_dir, env, events_queue_url, endpoints, store, stripe, piano, legacy_url };
        world.seed(api).await;
        world.seed_reader().await;
        world
    }

    pub fn launch(&self, function: &str) -> Launch {
        let mut env = lambda_env(function);
        env.extend(self.env.iter().cloned());
        Launch {
            name: function.to_owned(),
            program: self.bin_dir.join(function),
            args: Vec::new(),
            env,
            log: self.log_dir.join(format!("{function}.log")),
        }
    }

    /// The sample settings, put through the settings-put binary as an operator would.
    async fn seed(&self, api: &RuntimeApi) {
        let run = api
            .run(&self.launch("settings-put"), vec![Bytes::from(sample("settings-put", "put-settings.json"))])
            .await
            .expect("settings-put puts the sample settings");
        Expect::Status(201).check(&run.answers[0]).expect("the sample settings are created");
    }

    /// The reader of the public-route samples: a Piano user with a Stripe customer and a monthly
    /// subscription, as shared/tests/events.rs sets them up.
    async fn seed_reader(&self) {
        let list = sample("subscriptions-list", "list-subscriptions.json");
        let token = serde_json::from_str::<Value>(&list).expect("JSON")["queryStringParameters"]["token"]
            .as_str()
            .expect("the sample has a token")
            .to_owned();
        self.piano.accept_token("AbCdEf1234", "piano-api-token-0123456789", &token, "PNIdemo0001");
        // piano-webhook-register's calls to Piano's webhook settings.
        self.piano.add_app("AbCdEf1234", "piano-api-token-0123456789");
        let publication = PublicationId::parse(PUBLICATION).expect("publication id");
        let mut reader = shared::domain::customer::Customer::new(publication, 0);
        reader.piano_uid = Some("PNIdemo0001".into());
        reader.email = Some(shared::domain::ids::Email::parse("ada.reader@example.com").expect("email"));
        reader.stripe_customer_ids.insert(AccountKey::parse("main").expect("key"), "cus_demo_reader".into());
        shared::store::repo::customers::create(self.store.as_ref(), &reader).await.expect("create the reader");
        for (price, amount) in [("price_monthly", 1500), ("price_winback", 750)] {
            self.stripe.put_object(w::price(price, "prod_demo_digital", amount, "month"));
        }
        let story = sample("stripe-webhook", "story/03-customer-created.json");
        self.stripe.put_object(serde_json::from_str::<Value>(&story).expect("JSON")["data"]["object"].clone());
        self.stripe.put_objects(support::stripe_account::objects(3));
        self.reset_subscription();
    }

    /// The reader's subscription back on the monthly price, not cancelling.
    fn reset_subscription(&self) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let monthly = self.stripe.object("price_monthly").expect("the monthly price");
        let subscription =
            w::subscription("sub_demo_reader", "cus_demo_reader", "active", monthly, now, (now, now + 2_592_000));
        self.stripe.put_object(subscription);
    }

    /// A request the function answers without the store: an unrouted path for HTTP functions, an
    /// empty batch for queue consumers.
    pub fn quiet_event(function: &str) -> (Bytes, Expect) {
        if is_worker(function) {
            return (Bytes::from(json!({"Records": []}).to_string()), Expect::NoFailures);
        }
        let (dir, file) = first_sample(function);
        let mut event: Value = serde_json::from_str(&sample(dir, file)).expect("JSON");
        event["rawPath"] = "/coldstart/unrouted".into();
        event["requestContext"]["http"]["path"] = "/coldstart/unrouted".into();
        event["requestContext"]["http"]["method"] = "GET".into();
        event["routeKey"] = "$default".into();
        (Bytes::from(event.to_string()), Expect::Status(404))
    }

    /// The function's sample, made current for `run` (fresh signature, fresh event ids, the state a
    /// write expects): its first store request. `repeat` numbers the requests within one process.
    pub async fn busy_event(&self, function: &str, run: usize, repeat: usize) -> (Bytes, Expect) {
        let (dir, file) = first_sample(function);
        let text = sample(dir, file);
        let event = match function {
            "stripe-webhook" => stripe_webhook_event(&text),
            // New event ids, so the worker applies them instead of skipping duplicates.
            "webhook-worker" => text.replace("evt_demo_", &format!("evt_cs{run}x{repeat}_")),
            "piano-forwarder" => text.replace("https://old.example.com/piano-hook", &self.legacy_url),
            "backfill" => {
                if repeat == 0 {
                    self.start_backfill().await;
                }
                text
            }
            "subscriptions-winback" | "subscriptions-cancel" => {
                if repeat == 0 {
                    self.reset_subscription();
                }
                text
            }
            _ => text,
        };
        let first = run == 0 && repeat == 0;
        let expect = match first_sample(function).0 {
            _ if is_worker(function) => Expect::NoFailures,
            "subscriptions-winback" if repeat > 0 => Expect::Handled,
            // A new key each time.
            "keys-issue" => Expect::Status(201),
            // Created at Stripe the first time, updated since.
            "stripe-webhook-endpoint" => Expect::Status(if first { 201 } else { 200 }),
            // The sample's email is taken once the first one created it.
            "customers-create" => Expect::Status(if first { 201 } else { 409 }),
            // A job is created (202) unless one is running (200), as the backfill sample leaves it.
            "backfill-start" => Expect::Handled,
            // The samples name a customer and a task no fresh table has (their ids are random).
            "customers-get" | "customers-update" | "tasks-update" => Expect::Status(404),
            _ => Expect::Status(200),
        };
        (Bytes::from(event), expect)
    }

    /// A running backfill job for the sample account, for the backfill sample's slice to advance.
    async fn start_backfill(&self) {
        let api = Arc::new(shared::stripe::client::HttpStripe::new(self.stripe.base_url()).expect("client"));
        let runner = shared::backfill::Runner::new(self.store.clone(), api);
        let publication = PublicationId::parse(PUBLICATION).expect("publication id");
        let account = AccountKey::parse("main").expect("key");
        runner.start(&publication, &account, Some(100)).await.expect("start a backfill job");
    }
}

/// The Stripe sample with a signature of now (the recorded one is long expired).
pub fn stripe_webhook_event(text: &str) -> String {
    let mut event: Value = serde_json::from_str(text).expect("JSON");
    let body = event["body"].as_str().expect("a body").to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    event["headers"]["stripe-signature"] = shared::stripe::signature::sign(body.as_bytes(), WEBHOOK_SECRET, now).into();
    event.to_string()
}

pub fn is_worker(function: &str) -> bool {
    matches!(function, "webhook-worker" | "piano-forwarder" | "backfill")
}

/// The sample each function is measured with: its samples' folder under `events/` and the file.
/// `settings-api` and `customers-api` are the binaries that served the settings and customers routes
/// before each admin route had its own function (built from an older checkout into the same folder):
/// measured with their routes' samples, beside the functions that replaced them.
fn first_sample(function: &str) -> (&str, &'static str) {
    let dir = match function {
        "settings-api" => "settings-get",
        "customers-api" => "customers-list",
        other => other,
    };
    let file = match dir {
        "backfill" => "sqs-slice.json",
        "backfill-start" => "start-backfill.json",
        "backfill-status" => "get-backfill.json",
        "customers-create" => "create-customer.json",
        "customers-get" => "get-customer.json",
        "customers-list" => "find-customer-by-email.json",
        "customers-update" => "update-customer.json",
        "exports" => "export-customers-csv.json",
        "keys-issue" => "issue-key.json",
        "piano-forwarder" | "webhook-worker" => "sqs-batch.json",
        "piano-webhook" => "access-granted.json",
        "piano-webhook-register" => "register-webhook.json",
        "revenue-api" => "get-revenue.json",
        "settings-get" => "get-settings.json",
        "settings-put" => "put-settings.json",
        "stripe-catch-up" => "catch-up.json",
        "stripe-webhook" => "customer-created.json",
        "stripe-webhook-endpoint" => "connect-webhook-endpoint.json",
        "sync-health" => "get-sync-health.json",
        "tasks-list" => "list-open-tasks.json",
        "tasks-update" => "close-task.json",
        "subscriptions-cancel" => "cancel-at-period-end.json",
        "subscriptions-list" => "list-subscriptions.json",
        "subscriptions-winback" => "accept-offer.json",
        other => panic!("no sample chosen for function {other}: add it here"),
    };
    (dir, file)
}
