//! `crm backfill` as an operator runs it: the real binary against the test suite's fake Stripe (over
//! HTTP, `CRM_STRIPE_API_BASE`), on an embedded store; interrupted with Ctrl-C (SIGINT) and resumed.

#[path = "../../shared/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use shared::domain::ids::{AccountKey, PublicationId};
use shared::domain::settings::PublicationSettings;
use shared::store::embedded::EmbeddedStore;
use shared::store::repo::backfill::{self as jobs, JobState};
use shared::store::repo::publications::{self, StoredSettings};
use support::stripe_world::PUBLICATION;

fn crm(base: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm"));
    command.env("CRM_STRIPE_API_BASE", base).env("RUST_LOG", "warn");
    command
}

fn args<'a>(data_dir: &'a str, rate: &'a str) -> [&'a str; 9] {
    ["backfill", "--publication", PUBLICATION, "--account", "main", "--rate", rate, "--data-dir", data_dir]
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The job as the store holds it (the store is opened only while the binary is not running).
async fn job(dir: &std::path::Path) -> jobs::BackfillJob {
    let store = EmbeddedStore::open(&dir.join("crm.redb")).unwrap();
    let publication = PublicationId::parse(PUBLICATION).unwrap();
    jobs::get(&store, &publication, &AccountKey::parse("main").unwrap()).await.unwrap().unwrap().value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_backfill_imports_an_account_and_resumes_after_ctrl_c() {
    let stripe = support::fake_stripe::FakeStripe::start().await;
    stripe.put_objects(support::stripe_account::objects(400));
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(&dir.path().join("crm.redb")).unwrap();
        let settings = support::stripe_world::settings().to_string();
        let settings = PublicationSettings::parse(settings.as_bytes(), None).unwrap();
        let publication = PublicationId::parse(PUBLICATION).unwrap();
        let stored = StoredSettings { publication_id: publication, settings, updated_at: 0 };
        publications::put(&store, &stored, None).await.unwrap();
    }
    let data_dir = dir.path().to_str().unwrap();

    // 14 pages at 2 requests a second: Ctrl-C comes in the middle.
    let child = crm(stripe.base_url()).args(args(data_dir, "2")).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while stripe.requests().iter().filter(|r| r.path == "/v1/customers").count() < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let stopped = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let text = stderr(&stopped);
    assert!(stopped.status.success(), "{text}");
    assert!(text.contains("Starting backfill") && text.contains("run the same command to resume"), "{text}");
    let paused = job(dir.path()).await;
    assert_eq!(paused.state, JobState::Running);
    assert!(paused.objects() > 0 && paused.lease_until == 0, "checkpointed and released: {paused:?}");

    let resumed = tokio::task::spawn_blocking({
        let base = stripe.base_url().to_owned();
        let data_dir = data_dir.to_owned();
        move || crm(&base).args(args(&data_dir, "100")).output().unwrap()
    })
    .await
    .unwrap();
    let text = stderr(&resumed);
    assert!(resumed.status.success(), "{text}");
    assert!(text.contains(&format!("Resuming backfill {}", paused.id)), "{text}");
    assert!(text.contains("at 2 requests/s"), "a running job keeps its rate: {text}");
    let done = job(dir.path()).await;
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.id, paused.id);
    let customers = done.stages.iter().find(|s| s.kind == jobs::ObjectKind::Customers).unwrap();
    assert!(customers.done && customers.objects >= 400, "{customers:?}");
}
