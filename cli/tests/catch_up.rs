//! `crm catch-up` with the real binary on an embedded store: the events the fake Stripe holds since
//! `--since` (and one it never delivered) are applied in the process; a dry run and a second run
//! queue nothing new.

mod common;
#[path = "../../shared/tests/support/mod.rs"]
mod support;

use std::process::Output;
use std::sync::Arc;

use serde_json::json;
use shared::domain::customer::Identity;
use shared::domain::ids::{Email, PublicationId};
use shared::store::embedded::EmbeddedStore;
use shared::store::repo::customers;
use support::stripe_world::{World, customer, event};

async fn catch_up(data_dir: &str, base: &str, extra: &[&str]) -> Output {
    common::on_account("catch-up", data_dir, base, extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_catch_up_applies_missed_events_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("crm.redb")).unwrap();
    let World { stripe, .. } = World::new(Arc::new(store)).await;
    let now = shared::store::now_epoch();
    let mut missed =
        event("evt_cli_new", "customer.created", now - 3_600, customer("cus_cli1", "one@example.com", "One"), None);
    missed["pending_webhooks"] = json!(0);
    let mut old = event(
        "evt_cli_old",
        "customer.created",
        now - 20 * 86_400,
        customer("cus_cli2", "two@example.com", "Two"),
        None,
    );
    old["pending_webhooks"] = json!(1);
    stripe.put_objects([missed, old]);
    let data_dir = dir.path().to_str().unwrap();
    let since = time::OffsetDateTime::from_unix_timestamp(now - 86_400).unwrap();
    let since = since.format(&time::format_description::well_known::Rfc3339).unwrap();

    let dry = catch_up(data_dir, stripe.base_url(), &["--since", &since, "--dry-run"]).await;
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{text}{}", String::from_utf8_lossy(&dry.stderr));
    assert!(text.contains("2 events listed") && text.contains("would queue 2"), "{text}");

    let run = catch_up(data_dir, stripe.base_url(), &["--since", &since]).await;
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        text.contains("1 undelivered") && text.contains("queued 2") && text.contains("applied in this process"),
        "{text}"
    );

    // From the last event applied now: nothing new to queue.
    let again = catch_up(data_dir, stripe.base_url(), &[]).await;
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success() && text.contains("2 already applied; queued 0"), "{text}");

    let never = catch_up(data_dir, stripe.base_url(), &["--since", "yesterday"]).await;
    assert!(!never.status.success());

    let store = EmbeddedStore::open(&dir.path().join("crm.redb")).unwrap();
    let publication = PublicationId::parse("daily").unwrap();
    for email in ["one@example.com", "two@example.com"] {
        let identity = Identity::Email(Email::parse(email).unwrap());
        assert!(customers::find(&store, &publication, &identity).await.unwrap().is_some(), "{email}");
    }
}
