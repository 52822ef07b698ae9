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

/// `crm backfill --provider piano`: the Piano application's history through the real binary, against
/// the fake Piano (`CRM_PIANO_API_BASE`); a second run of a finished import starts a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_backfill_imports_the_piano_application() {
    let piano = support::fake_piano::FakePiano::start().await;
    let (aid, api_token) = ("AidDaily01", "piano-api-token-0123456789");
    piano.add_app(aid, api_token);
    for n in 0..150 {
        let uid = format!("PNIcli{n:03}");
        piano.add_user(aid, &uid, &format!("cli{n}@example.com"), "Cli", "Reader");
        piano.add_access(
            aid,
            &uid,
            serde_json::json!({"access_id": format!("a{n}"), "granted": true, "resource": {"rid": "R1"}}),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(&dir.path().join("crm.redb")).unwrap();
        let mut settings = support::stripe_world::settings();
        settings["piano"] =
            serde_json::json!({"aid": aid, "apiToken": api_token, "privateKey": "thestringliteralisexactlyfortych"});
        let settings = PublicationSettings::parse(settings.to_string().as_bytes(), None).unwrap();
        let stored =
            StoredSettings { publication_id: PublicationId::parse(PUBLICATION).unwrap(), settings, updated_at: 0 };
        publications::put(&store, &stored, None).await.unwrap();
    }
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let base = piano.base_url().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_crm"))
            .env("CRM_PIANO_API_BASE", &base)
            .env("RUST_LOG", "warn")
            .args([
                "backfill",
                "--publication",
                PUBLICATION,
                "--provider",
                "piano",
                "--rate",
                "100",
                "--data-dir",
                &data_dir,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("Starting backfill") && text.contains("of the Piano application at 100 requests/s"),
        "{text}"
    );
    let store = EmbeddedStore::open(&dir.path().join("crm.redb")).unwrap();
    let publication = PublicationId::parse(PUBLICATION).unwrap();
    let job = jobs::get_piano(&store, &publication).await.unwrap().unwrap().value;
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.stages[0].objects, 300, "150 users and their accesses");
    let customers = shared::store::repo::customers::list(&store, &publication, 500, None).await.unwrap().0;
    assert_eq!(customers.len(), 150);

    // `--account` with Piano is refused before anything runs.
    let refused = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args([
            "backfill",
            "--publication",
            PUBLICATION,
            "--provider",
            "piano",
            "--account",
            "main",
            "--data-dir",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
