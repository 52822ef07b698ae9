//! A real browser against the public subscription routes: the cancellation page of
//! `examples/cancellation-page/` is served on one loopback origin, the CRM's routes (what `crm serve`
//! mounts) on another port, and Debian's headless Chromium, driven by playwright-core
//! (`examples/cancellation-page/test/drive.mjs`), clicks through list → accept offer → cancel.
//! The fake Stripe then holds the new price and `cancel_at_period_end`, so CORS really passed in the
//! browser; the same page on an origin no publication allows shows the browser's network error.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`), `node` and the npm packages of the driver: `.ci/test`
//! installs them. Without them this test fails, it never passes silently.

mod support;

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use support::public_site::Site;
use tokio::net::TcpListener;

fn page_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cancellation-page")
}

/// What the driver needs, or a failure that says how to get it.
fn driver() -> (PathBuf, PathBuf) {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let test_dir = page_dir().join("test");
    let mut missing = Vec::new();
    if !chromium.exists() {
        missing.push(format!("Chromium at {}", chromium.display()));
    }
    if std::process::Command::new("node").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        missing.push("node on PATH".into());
    }
    if !test_dir.join("node_modules/playwright-core/package.json").exists() {
        missing.push(format!("playwright-core in {}/node_modules", test_dir.display()));
    }
    assert!(
        missing.is_empty(),
        "the browser test needs {}: run .ci/test, which installs them (apt-get install chromium; npm install in {})",
        missing.join(", "),
        test_dir.display()
    );
    (chromium, test_dir)
}

/// The static page, read from disk on each request (index.html and app.js only).
async fn serve_page(listener: TcpListener) {
    async fn file(name: &'static str, kind: &'static str) -> axum::response::Response {
        match tokio::fs::read(page_dir().join(name)).await {
            Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
            Err(e) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
        }
    }
    let app = Router::new()
        .route("/", get(|| file("index.html", "text/html; charset=utf-8")))
        .route("/index.html", get(|| file("index.html", "text/html; charset=utf-8")))
        .route("/app.js", get(|| file("app.js", "text/javascript; charset=utf-8")));
    axum::serve(listener, app).await.unwrap();
}

/// Runs drive.mjs with `args`; its one JSON line, or a failure with everything it printed.
async fn drive(chromium: &Path, test_dir: &Path, args: Vec<String>) -> Value {
    let mut command = std::process::Command::new("node");
    command.arg(test_dir.join("drive.mjs")).args(&args).current_dir(test_dir).env("CHROMIUM", chromium);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "drive.mjs {args:?} failed ({}):\n{stdout}\n{stderr}", output.status);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON line:\n{stdout}"));
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_clicks_through_list_winback_and_cancel_across_origins() {
    let started = std::time::Instant::now();
    let (chromium, test_dir) = driver();

    // The page's origin goes into the settings, so its port is taken first.
    let page_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = page_listener.local_addr().unwrap().port();
    let origin = format!("http://127.0.0.1:{page_port}");

    let site = Site::serving(&origin).await;
    let (token, state, stripe) = (site.token.clone(), site.state.clone(), &site.stripe);

    // The CRM on its own port, exactly the routes `crm serve` mounts; the page on the other.
    let crm_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://127.0.0.1:{}", crm_listener.local_addr().unwrap().port());
    let crm = tokio::spawn(async move { axum::serve(crm_listener, shared::api::all_routes(state)).await.unwrap() });
    let page = tokio::spawn(serve_page(page_listener));

    let query = format!("?api={api}&token={token}&offer=price_half");
    let shown = drive(&chromium, &test_dir, vec![format!("{origin}/index.html{query}")]).await;
    eprintln!("the page showed: {shown}");

    assert_eq!(shown["target"], "sub_R1");
    let listed = shown["list"]["list"].as_array().unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"sub_R1") && ids.contains(&"sub_R0"), "{ids:?}");
    let r1 = |step: &str| shown[step]["list"].as_array().unwrap().iter().find(|s| s["id"] == "sub_R1").unwrap().clone();
    assert_eq!(r1("list")["price"], "price_monthly");
    assert_eq!(r1("list")["status"], "active");

    assert_eq!(shown["winback"]["result"], "Plan changed. No schedule for this price.");
    assert_eq!(shown["winback"]["error"], "");
    assert_eq!(r1("winback")["price"], "price_half", "the refreshed list shows the offer's price");
    assert_eq!(r1("winback")["cancelAtPeriodEnd"], false);

    assert_eq!(shown["cancel"]["result"], "Subscription sub_R1 cancelled: cancel_at_period_end = true");
    assert_eq!(shown["cancel"]["error"], "");
    assert_eq!(r1("cancel")["cancelAtPeriodEnd"], true);
    assert_eq!(r1("cancel")["buttons"], json!([]), "nothing left to click on a cancelled subscription");
    assert_eq!(shown["consoleErrors"], json!([]), "no CORS or script error in the browser console");

    // What the browser's calls did, seen from Stripe's side.
    let sub = stripe.object("sub_R1").unwrap();
    assert_eq!(sub["items"]["data"][0]["price"]["id"], "price_half");
    assert_eq!(sub["cancel_at_period_end"], true);
    let other = stripe.object("sub_O1").unwrap();
    assert_eq!(other["cancel_at_period_end"], false);
    assert_eq!(other["items"]["data"][0]["price"]["id"], "price_monthly");

    // The same page on an origin nobody configured (localhost is not 127.0.0.1 to a browser): the
    // CRM's answer carries no Access-Control-Allow-Origin and Chromium refuses it to the page.
    let other_origin = format!("http://localhost:{page_port}");
    let blocked = drive(&chromium, &test_dir, vec!["--expect-blocked".into(), format!("{other_origin}/{query}")]).await;
    eprintln!("on {other_origin} the page showed: {blocked}");
    assert_eq!(blocked["blocked"]["error"], "Network error: Failed to fetch", "{blocked}");
    let console = blocked["consoleErrors"].to_string();
    assert!(console.contains("CORS policy") && console.contains("Access-Control-Allow-Origin"), "{console}");

    crm.abort();
    page.abort();
    eprintln!("browser test took {:.1}s", started.elapsed().as_secs_f64());
}
