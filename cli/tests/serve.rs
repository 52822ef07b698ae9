//! `crm serve` as a user runs it: the real binary on a free port, spoken to over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
    token: Option<String>,
    /// What it printed before listening.
    banner: Vec<String>,
}

impl Server {
    /// Starts `crm serve` with `args` on 127.0.0.1:0 and reads the address (and generated token) it prints.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crm"));
        command.arg("serve").arg("--addr").arg("127.0.0.1:0").args(args);
        command.env_remove("CRM_ADMIN_TOKEN").env("RUST_LOG", "warn");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("start crm serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut token = None;
        let mut base = None;
        let mut banner = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("read stderr");
            banner.push(line.clone());
            if let Some((_, t)) = line.split_once("admin token (from ") {
                token = t.split_once("): ").map(|(_, t)| t.to_owned());
            }
            if let Some(addr) = line.strip_prefix("listening on ") {
                base = Some(addr.to_owned());
                break;
            }
        }
        Server { child, base: base.expect("crm serve printed its address"), token, banner }
    }

    /// The value printed after `label` in the banner.
    fn printed(&self, label: &str) -> String {
        let line = self.banner.iter().find_map(|l| l.split_once(label).map(|(_, v)| v.trim().to_owned()));
        let value = line.unwrap_or_else(|| panic!("{label} not printed: {:?}", self.banner));
        value.split_whitespace().next().unwrap_or_default().to_owned()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("crm serve did not stop on SIGTERM");
    }
}

fn settings() -> Value {
    json!({
        "name": "Daily Example",
        "origins": ["https://www.example.com"],
        "stripeAccounts": [{"key": "main", "name": "Example Media Ltd", "secretKey": "sk_test_51HxYzAbCdEfGhIjKlMnOpa1b2",
                            "webhookSecrets": ["whsec_0123456789abcdefghijWXYZ"]}]
    })
}

async fn round_trip(base: &str, token: &str, publication: &str) {
    let http = http_client();
    let url = format!("{base}/admin/publications/{publication}");
    let put = http.put(&url).bearer_auth(token).json(&settings()).send().await.unwrap();
    assert_eq!(put.status(), 201);
    let got: Value = get_json(&http, &url, token).await;
    assert_eq!(got["name"], "Daily Example");
    assert_eq!(got["stripeAccounts"][0]["secretKey"], "sk_test_…a1b2");
    let wrong = http.get(&url).bearer_auth("not-the-key").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let bad = http.put(&url).bearer_auth(token).json(&json!({"origins": []})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("`name`"), "{body}");
}

#[tokio::test]
async fn serve_embedded_round_trips_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Server::start(&["--data-dir", data], &[]);
    let token = server.token.clone().expect("a generated admin token is printed");
    round_trip(&server.base, &token, "demo").await;
    assert!(server.stop().success(), "graceful shutdown exits 0");

    // The embedded store is a file: a restart finds the settings and the same admin token.
    let again = Server::start(&["--data-dir", data], &[]);
    assert_eq!(again.token.as_deref(), Some(token.as_str()));
    let got: Value = get_json(&http_client(), format!("{}/admin/publications/demo", again.base), &token).await;
    assert_eq!(got["name"], "Daily Example");
    assert!(again.stop().success());
}

/// A normal stop syncs what the interval had not yet: nothing of a minute's writes is lost.
#[tokio::test]
async fn a_graceful_stop_syncs_the_writes_the_interval_had_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Server::start(&["--data-dir", data, "--sync-every-ms", "60000"], &[]);
    let token = server.token.clone().expect("a generated admin token is printed");
    round_trip(&server.base, &token, "stopped").await;
    assert!(server.stop().success(), "graceful shutdown exits 0");
    assert_kept_after_restart(data, &token, "stopped").await;
}

/// With `--sync-every-ms`, writes are answered before their fsync; the writer still makes them durable
/// within that interval on its own, so a process killed without warning a little later keeps them.
#[tokio::test]
async fn writes_answered_before_their_fsync_survive_a_kill_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut server = Server::start(&["--data-dir", data, "--sync-every-ms", "200"], &[]);
    let token = server.token.clone().expect("a generated admin token is printed");
    round_trip(&server.base, &token, "kept").await;
    // No write follows: only the writer's own timer can sync this one.
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.child.kill().expect("SIGKILL crm serve");
    server.child.wait().expect("reap crm serve");
    assert_kept_after_restart(data, &token, "kept").await;
}

/// A new `crm serve` on `data` finds the publication `round_trip` wrote.
async fn assert_kept_after_restart(data: &str, token: &str, publication: &str) {
    let again = Server::start(&["--data-dir", data], &[]);
    let url = format!("{}/admin/publications/{publication}", again.base);
    let got: Value = get_json(&http_client(), url, token).await;
    assert_eq!(got["name"], "Daily Example", "{got}");
    assert!(again.stop().success());
}

#[tokio::test]
async fn serve_dynamodb_uses_tables_created_by_the_cli() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run the suite with .ci/test, which starts the emulator");
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let (table, prefix) = (format!("serve-{suffix}"), format!("serve-{suffix}"));
    let created = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["tables", "create", "--table", &table, "--queue-prefix", &prefix])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let out = String::from_utf8_lossy(&created.stdout);
    assert!(out.contains(&format!("table {table}: created")), "{out}");
    assert!(out.contains("queue events-dlq: "), "{out}");
    eprintln!("crm serve --dynamodb against {endpoint}");

    let token = "operator-token-for-tests-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &["--dynamodb", "--table", &table, "--queue-prefix", &prefix, "--data-dir", dir.path().to_str().unwrap()],
        &[("CRM_ADMIN_TOKEN", token)],
    );
    round_trip(&server.base, token, "demo").await;
    assert!(server.stop().success());
}

#[test]
fn serve_names_a_missing_table() {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is not set: run the suite with .ci/test");
    let output = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["serve", "--dynamodb", "--table", "no-such-table", "--addr", "127.0.0.1:0"])
        .env("CRM_ADMIN_TOKEN", "operator-token-for-tests-0123456789")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("crm tables create"), "{stderr}");
}

#[test]
fn a_short_admin_token_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()])
        .env("CRM_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("CRM_ADMIN_TOKEN"));
}

/// reqwest is built on rustls without a default crypto provider (the workspace picks ring once).
fn http_client() -> reqwest::Client {
    shared::stripe::client::install_tls_provider();
    reqwest::Client::new()
}

/// The README's walk-through: `crm serve --demo`, `crm replay` of the sample story, customers appear.
#[tokio::test]
async fn the_demo_walkthrough_shows_customers() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    // Stripe's API is unreachable here (never the real one in tests): reads the sync would make are retried.
    let offline = [("CRM_STRIPE_API_BASE", "http://127.0.0.1:9")];
    let server = Server::start(&["--data-dir", data_dir, "--demo"], &offline);
    let secret = server.printed("Stripe webhook secret:");
    let key = server.printed("publication key:");
    assert!(secret.starts_with("whsec_") && key.starts_with("crm_pk_"), "{:?}", server.banner);
    let story = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/stripe-webhook/story");
    let replay = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["replay", story, "--publication", "demo", "--secret", &secret, "--url", &server.base])
        .output()
        .expect("run crm replay");
    let printed = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{printed}{}", String::from_utf8_lossy(&replay.stderr));
    assert_eq!(printed.lines().filter(|l| l.starts_with("200 ")).count(), 8, "{printed}");

    let http = http_client();
    let customers = format!("{}/admin/publications/demo/customers", server.base);
    let mut record = Value::Null;
    for _ in 0..300 {
        let found: Value = get_json(&http, format!("{customers}?email=ada.reader@example.com"), &key).await;
        if let Some(id) = found["data"][0]["id"].as_str() {
            record = get_json(&http, format!("{customers}/{id}"), &key).await;
            let story_applied = record["paymentStatus"] == "overdue"
                && record["invoices"].as_array().is_some_and(|i| i.len() == 2)
                && record["plan"]["productName"] == "Digital monthly";
            if story_applied {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(record["paymentStatus"], "overdue", "{record}");
    assert_eq!(record["plan"]["productName"], "Digital monthly");
    assert_eq!(record["lifetimeValue"], json!([{"currency": "usd", "amount": 1500}]));
    // The second reader's events are applied by the worker on their own; wait for them too.
    let mut listed = Value::Null;
    for _ in 0..300 {
        listed = get_json(&http, &customers, &key).await;
        if listed["data"].as_array().is_some_and(|d| d.len() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");
    // The README's revenue line: the story's subscription (past due, still counted) in the movements.
    let revenue = get_json(&http, format!("{}/admin/publications/demo/revenue?from=2026-01", server.base), &key).await;
    assert_eq!(revenue["currencies"][0]["currency"], "usd", "{revenue}");
    assert_eq!(revenue["currencies"][0]["mrr"], 1500, "{revenue}");
    assert!(server.stop().success());

    // A second start reuses the demo publication and its key.
    let again = Server::start(&["--data-dir", data_dir, "--demo"], &offline);
    assert_eq!(again.printed("publication key:"), key);
    let listed: Value = get_json(&http, format!("{}/admin/publications/demo/customers", again.base), &key).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(again.stop().success());
}

async fn get_json(http: &reqwest::Client, url: impl reqwest::IntoUrl, key: &str) -> Value {
    http.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}
