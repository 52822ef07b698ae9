//! The bad-input suite (docs/RELIABILITY.md, "Bad input"): the real `crm serve` binary, spoken to
//! over raw HTTP/1.1, gets oversized bodies, deep JSON, invalid UTF-8, wrong content types, header
//! injection, path traversal in every id, and every kind of key and token of one publication used
//! against another. Each request must get a clear 4xx (a JSON `{"error": …}` body, except where the
//! HTTP parser itself refuses the bytes), no answer may carry a secret or the other publication's data,
//! and the server must keep answering after each group and never log a panic.
//!
//! "Nothing changed" is checked on the store itself, not through the API: the suite sets up three
//! publications (bad_input/fixtures.rs), stops the server (the redb file is locked while it runs),
//! reads every item and index entry of the file, restarts the server over the same data directory,
//! sends the barrage, stops it again and reads the file again. The two readings must be equal byte for
//! byte, which covers every partition (settings, keys, customers, tasks, backfill jobs, receipts,
//! revenue) without the suite having to know them; a new table in the file makes the reading fail
//! rather than go unchecked.

/// The suite's Piano: a fake that accepts no token of C (its forgeries are refused on Piano's word)
/// and only A's first visits (`bad_input::public::FirstVisits`).
#[allow(dead_code)] // the suite uses part of it
#[path = "../../shared/tests/support/fake_piano.rs"]
mod fake_piano;

/// The groups of requests, one file each under `bad_input/`.
mod bad_input {
    pub mod admin;
    pub mod bodies;
    pub mod check;
    pub mod client;
    pub mod fixtures;
    pub mod hardening;
    pub mod headers;
    pub mod paths;
    pub mod public;
    pub mod server;
    pub mod webhooks;
}

use std::collections::BTreeMap;

use bad_input::check::Suite;
use bad_input::server::{Server, snapshot};
use bad_input::{admin, bodies, fixtures, hardening, headers, paths, public, webhooks};

// Multi-threaded: the fake Piano keeps answering while the test blocks on starting and stopping the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let (mut a, mut b, mut c) = (fixtures::alpha(), fixtures::bravo(), fixtures::charlie());
    let piano = fake_piano::FakePiano::start().await;

    let setup = Server::start(&data, &log, piano.base_url());
    a.create(&setup.addr).await;
    b.create(&setup.addr).await;
    c.create(&setup.addr).await;
    let prepared = hardening::prepare(&setup.addr, &a).await;
    setup.stop();
    let expired_key = expired_key(&data, &a).await;
    let before = snapshot(&data);
    for id in [&a.customer, &b.customer, &c.customer] {
        assert!(before.keys().any(|k| k.contains(id.as_str())), "the store holds customer {id}: {:?}", before.keys());
    }

    let server = Server::start(&data, &log, piano.base_url());
    let mut secrets = a.secrets();
    secrets.extend(b.secrets());
    secrets.extend(c.secrets());
    let mut suite = Suite::new(server.addr.clone(), secrets);
    admin::cross_publication(&mut suite, &a, &b).await;
    suite.alive("cross-publication access").await;
    admin::parameters(&mut suite, &a, &b).await;
    suite.alive("bad parameters").await;
    bodies::oversized(&mut suite, &b).await;
    suite.alive("oversized bodies").await;
    bodies::deep_json(&mut suite, &b).await;
    suite.alive("deep JSON").await;
    bodies::invalid_utf8(&mut suite, &b).await;
    suite.alive("invalid UTF-8").await;
    bodies::content_types(&mut suite, &b).await;
    suite.alive("wrong content types").await;
    headers::injection(&mut suite, &a, &b).await;
    suite.alive("header injection").await;
    paths::traversal(&mut suite, &b).await;
    suite.alive("path traversal").await;
    webhooks::stripe(&mut suite, &a, &b).await;
    webhooks::piano(&mut suite, &a, &b).await;
    suite.alive("webhooks").await;
    let visits = public::FirstVisits::register(&a, &piano);
    public::routes(&mut suite, &a, &b, &visits).await;
    public::piano_verified(&mut suite, &c, &a, &piano).await;
    suite.alive("public routes").await;
    hardening::cases(&mut suite, &a, &b, &prepared, &expired_key).await;
    suite.alive("issue 26's cases").await;
    let logged = server.log();
    server.stop();

    let (failures, tally) = suite.finish();
    eprintln!("bad-input requests per category: {tally:#?}");
    let changed = changes(&before, &snapshot(&data));
    assert!(!logged.contains("panicked"), "crm serve panicked:\n{logged}");
    assert!(failures.is_empty(), "{} bad answers:\n{}", failures.len(), failures.join("\n"));
    assert!(tally.values().all(|n| *n > 0) && tally.len() == 11, "every category ran: {tally:?}");
    assert_eq!(changed, Vec::<String>::new(), "the barrage changed the store");
}

/// A key of A that expired a second ago, put straight into the store while the server is stopped (the
/// API issues keys that expire a day from now at the soonest).
async fn expired_key(data: &std::path::Path, a: &fixtures::Publication) -> String {
    use shared::store::repo::keys;
    let store = shared::store::embedded::EmbeddedStore::open(&data.join("crm.redb")).unwrap();
    let (key, hash) = shared::http::auth::new_publication_key();
    let now = shared::store::now_epoch();
    let record = keys::ApiKeyRecord {
        publication_id: shared::domain::ids::PublicationId::parse(a.id).unwrap(),
        key_id: hash[..12].to_owned(),
        created_at: now - 86_400,
        expires_at: Some(now - 1),
    };
    keys::put(&store, &key, &hash, &record).await.unwrap();
    key
}

/// The keys added, removed or changed between two readings of the store.
fn changes(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut changed = Vec::new();
    for (key, value) in after {
        match before.get(key) {
            None => changed.push(format!("added {key}: {}", String::from_utf8_lossy(value))),
            Some(old) if old != value => changed.push(format!("changed {key}: {}", String::from_utf8_lossy(value))),
            Some(_) => {}
        }
    }
    changed.extend(before.keys().filter(|k| !after.contains_key(*k)).map(|k| format!("removed {k}")));
    changed
}
