//! Exports on both stores, through the HTTP route: parsed back with a real CSV parser (and as JSON
//! Lines), they match the customer records, names with commas, quotes and newlines included, across
//! several pages of customers; the columns are exactly those docs/exports.md lists.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::domain::customer::Customer;
use shared::domain::ids::{Email, PublicationId};
use shared::export::Kind;
use shared::store::Store;
use shared::store::repo::customers;
use support::stripe_world::{self as sw, PUBLICATION, World};
use tower::ServiceExt;

async fn download(world: &World, path: &str) -> (StatusCode, Option<String>, String) {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {}", support::OPERATOR))
        .body(Body::empty())
        .unwrap();
    let response = shared::api::all_routes(world.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Rows of a CSV export as column → value maps, checking the header first.
fn parse_csv(kind: Kind, text: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, kind.columns(), "the documented column order");
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect()
}

const NAMES: [&str; 4] = ["Plain Name", "Doe, Jane", "The \"Quoted\" One", "Two\nLines, \"and\" more"];

async fn exports_match_the_records(store: Arc<dyn Store>) {
    let world = World::new(store.clone()).await;
    let publication = PublicationId::parse(PUBLICATION).unwrap();
    // More customers than one page of the export (200).
    for n in 0..230 {
        let mut c = Customer::new(publication.clone(), 1_790_000_000 + n);
        c.email = Some(Email::parse(&format!("reader{n:03}@example.com")).unwrap());
        c.name = Some(NAMES[n as usize % NAMES.len()].to_owned());
        customers::create(store.as_ref(), &c).await.unwrap();
    }
    // One with a subscription and invoices, through Stripe events.
    let period = (1_790_000_000, 1_792_592_000);
    let price = sw::price("price_monthly", "prod_digital", 1500, "month");
    for event in [
        sw::event(
            "evt_c",
            "customer.created",
            1_790_000_000,
            sw::customer("cus_x", "x@example.com", "Xavier, \"X\""),
            None,
        ),
        sw::event(
            "evt_s",
            "customer.subscription.created",
            1_790_000_001,
            sw::subscription("sub_x", "cus_x", "active", price, 1_790_000_000, period),
            None,
        ),
        sw::event(
            "evt_i",
            "invoice.paid",
            1_790_000_002,
            sw::invoice("in_x", "cus_x", "sub_x", "paid", 1500, 1_790_000_002),
            None,
        ),
    ] {
        world.deliver(&event).await;
    }

    let base = format!("/admin/publications/{PUBLICATION}/exports");
    let (status, content_type, text) = download(&world, &format!("{base}/customers?format=csv")).await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some("text/csv; charset=utf-8")));
    let rows = parse_csv(Kind::Customers, &text);
    assert_eq!(rows.len(), 231, "one row per customer (no currency) or per currency");
    let listed = world.customers().await;
    assert_eq!(listed.len(), 200, "the listing's first page (the export goes on past it)");
    for row in &rows {
        let record = world.get(&format!("/admin/publications/{PUBLICATION}/customers/{}", row["customer_id"])).await.1;
        assert_eq!(row["email"], record["email"].as_str().unwrap());
        assert_eq!(row["name"], record["name"].as_str().unwrap(), "quoting round-trips");
        assert_eq!(row["payment_status"], record["paymentStatus"].as_str().unwrap());
        let ltv = record["lifetimeValue"].as_array().unwrap();
        match ltv.first() {
            Some(money) => {
                assert_eq!(row["currency"], money["currency"].as_str().unwrap());
                assert_eq!(row["lifetime_value"], money["amount"].to_string());
                assert_eq!(row["mrr"], record["mrr"][0]["amount"].to_string());
            }
            None => assert_eq!((row["currency"].as_str(), row["lifetime_value"].as_str()), ("", "")),
        }
        assert_eq!(row["created_at"], record["createdAt"].as_str().unwrap());
    }
    let xavier = rows.iter().find(|r| r["email"] == "x@example.com").unwrap();
    assert_eq!(xavier["stripe_customer_ids"], "main:cus_x");
    assert_eq!((xavier["currency"].as_str(), xavier["mrr"].as_str()), ("usd", "1500"));

    let (_, _, text) = download(&world, &format!("{base}/subscriptions")).await;
    let subs = parse_csv(Kind::Subscriptions, &text);
    assert_eq!(subs.len(), 1);
    assert_eq!(
        (subs[0]["subscription_id"].as_str(), subs[0]["status"].as_str(), subs[0]["unit_amount"].as_str()),
        ("sub_x", "active", "1500")
    );
    assert_eq!(subs[0]["current_period_start"], "2026-09-21T14:13:20Z");

    let (_, _, text) = download(&world, &format!("{base}/invoices")).await;
    let invoices = parse_csv(Kind::Invoices, &text);
    assert_eq!(invoices.len(), 1);
    assert_eq!(
        (invoices[0]["invoice_id"].as_str(), invoices[0]["status"].as_str(), invoices[0]["amount_paid"].as_str()),
        ("in_x", "paid", "1500")
    );

    // JSON Lines: the same rows, typed.
    let (status, content_type, text) = download(&world, &format!("{base}/customers?format=jsonl")).await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some("application/x-ndjson")));
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 231);
    let x = lines.iter().find(|l| l["email"] == "x@example.com").unwrap();
    assert_eq!(x["mrr"], json!(1500));
    let keys: Vec<&String> = x.as_object().unwrap().keys().collect();
    let mut documented: Vec<&str> = Kind::Customers.columns().to_vec();
    documented.sort_unstable();
    assert_eq!(keys, documented);
    let two_lines = lines.iter().find(|l| l["name"] == NAMES[3]).unwrap();
    assert_eq!(two_lines["name"], "Two\nLines, \"and\" more");

    assert_eq!(download(&world, &format!("{base}/payments")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(download(&world, &format!("{base}/customers?format=xml")).await.0, StatusCode::BAD_REQUEST);
}

for_each_store!(exports_match_the_records);

/// docs/exports.md lists every export's columns in order; the code's columns are those.
#[test]
fn the_documented_columns_are_the_exported_ones() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/exports.md")).unwrap();
    for (kind, title) in
        [(Kind::Customers, "customers"), (Kind::Subscriptions, "subscriptions"), (Kind::Invoices, "invoices")]
    {
        let section = doc.split(&format!("## {title}\n")).nth(1).unwrap_or_else(|| panic!("a `## {title}` section"));
        let columns: Vec<&str> = section
            .lines()
            .take_while(|l| !l.starts_with("## "))
            .filter_map(|l| l.strip_prefix("| `").and_then(|rest| rest.split('`').next()))
            .collect();
        assert_eq!(columns, kind.columns(), "{title}");
    }
}
