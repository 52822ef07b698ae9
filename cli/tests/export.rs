//! `crm export` with the real binary on an embedded store: CSV (parsed with a CSV parser) and JSON
//! Lines to a file, every customer once, names with commas and quotes intact.

use std::process::Command;

use shared::domain::customer::Customer;
use shared::domain::ids::{Email, PublicationId};
use shared::store::embedded::EmbeddedStore;
use shared::store::repo::customers;

#[tokio::test]
async fn crm_export_writes_every_customer() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The store is closed again before the binary opens it (one process at a time).
        let store = EmbeddedStore::open(&dir.path().join("crm.redb")).unwrap();
        let publication = PublicationId::parse("daily").unwrap();
        for n in 0..5 {
            let mut c = Customer::new(publication.clone(), 1_790_000_000 + n);
            c.email = Some(Email::parse(&format!("r{n}@example.com")).unwrap());
            c.name = Some(format!("Reader, \"{n}\""));
            customers::create(&store, &c).await.unwrap();
        }
    }
    let data_dir = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_crm")).args(args).output().expect("run crm export");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let csv_text = run(&["export", "customers", "--publication", "daily", "--data-dir", data_dir]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(reader.headers().unwrap().get(1), Some("email"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // Customers come in id order; ids made within one millisecond need not follow creation order.
    let mut emails: Vec<&str> = rows.iter().map(|r| r.get(1).unwrap()).collect();
    emails.sort_unstable();
    assert_eq!(emails, ["r0@example.com", "r1@example.com", "r2@example.com", "r3@example.com", "r4@example.com"]);
    let two = rows.iter().find(|r| r.get(1) == Some("r2@example.com")).unwrap();
    assert_eq!(two.get(2), Some("Reader, \"2\""));

    let file = dir.path().join("customers.jsonl");
    let path = file.to_str().unwrap();
    let printed = run(&[
        "export",
        "customers",
        "--publication",
        "daily",
        "--data-dir",
        data_dir,
        "--format",
        "jsonl",
        "--output",
        path,
    ]);
    assert!(printed.is_empty());
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().any(|l| l["email"] == "r4@example.com" && l["name"] == "Reader, \"4\""));

    let refused = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["export", "payments", "--publication", "daily", "--data-dir", data_dir])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("customers, subscriptions or invoices"));
}
