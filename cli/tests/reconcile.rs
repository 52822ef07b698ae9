//! `crm reconcile` with the real binary on an embedded store backfilled from the fake Stripe: exit
//! code 0 and "match" while both sides agree; 1 and the id of a refund only Stripe has once one is
//! added there (table and JSON); 2 for a period it cannot read.

mod common;
#[path = "../../shared/tests/support/mod.rs"]
mod support;

use std::process::Output;
use std::sync::Arc;

use serde_json::{Value, json};
use shared::store::embedded::EmbeddedStore;
use support::stripe_account;
use support::stripe_world::{World, refund};

/// Runs `crm reconcile` with `extra` arguments against the fake Stripe at `base`.
async fn reconcile(data_dir: &str, base: &str, extra: &[&str]) -> Output {
    common::on_account("reconcile", data_dir, base, extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_reconcile_exits_one_and_names_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("crm.redb")).unwrap();
    // Only the fake Stripe is kept: the store closes before the binary opens it.
    let World { stripe, .. } = stripe_account::backfilled_world(Arc::new(store), 40).await;
    let data_dir = dir.path().to_str().unwrap();

    let same = reconcile(data_dir, stripe.base_url(), &[]).await;
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&same.stderr));
    assert!(text.contains("Stripe and the CRM match."), "{text}");

    let mut unseen = refund("re_cli_unseen", "ch_bf00030", 125, stripe_account::START + 30 * 600 + 7_200);
    unseen["currency"] = json!("usd");
    stripe.put_object(unseen);
    let differs = reconcile(data_dir, stripe.base_url(), &[]).await;
    let text = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(differs.status.code(), Some(1), "{text}");
    assert!(text.contains("refunds missing in the CRM: 1") && text.contains("re_cli_unseen"), "{text}");

    let json_run = reconcile(data_dir, stripe.base_url(), &["--json"]).await;
    assert_eq!(json_run.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&json_run.stdout).expect("JSON report");
    assert_eq!(report["matches"], false);
    assert_eq!(report["refunds"]["missingInCrm"]["items"][0]["id"], "re_cli_unseen");
    assert_eq!(report["invoices"]["different"]["count"], 0);

    let bad = reconcile(data_dir, stripe.base_url(), &["--from", "2024-13-01"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM-DD"));
}
