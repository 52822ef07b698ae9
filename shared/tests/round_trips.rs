//! Store round trips per applied Stripe event (docs/PERFORMANCE.md): a realistic stream (signups,
//! out-of-order deliveries, a second account of the same person, renewals) through the worker over a
//! store that counts every call. Each call of the `Store` port is one DynamoDB request, so the counts
//! hold for both adapters; the embedded one runs here.
//!
//! Targets: at most 3 round trips (get + query + write calls) per applied event on average over the
//! stream, and at most 2 write calls for any event of a customer the CRM already knows.
//! Run with `-- --nocapture` to see the figures as Markdown.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::domain::ids::{AccountKey, PublicationId};
use shared::domain::settings::PublicationSettings;
use shared::store::repo::keys_of;
use shared::store::repo::publications::{self, StoredSettings};
use shared::store::{Item, Key, Page, Query, Store, StoreError, WriteOp};
use shared::sync::Outcome;
use shared::sync::envelope::{self, Header, Provider};
use shared::sync::worker::EventWorker;
use support::fake_stripe::FakeStripe;
use support::stripe_world as w;

const DAY: i64 = 86_400;
const T0: i64 = 1_750_000_000;
const CUSTOMERS: usize = 12;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// Reads of the publication settings (the worker caches them for 30 s).
    settings_gets: u32,
    gets: u32,
    queries: u32,
    writes: u32,
    /// Items written, over all write calls (each call is one transaction).
    write_ops: u32,
}

impl Counts {
    fn round_trips(&self) -> u32 {
        self.gets + self.queries + self.writes
    }

    fn since(&self, before: &Counts) -> Counts {
        Counts {
            settings_gets: self.settings_gets - before.settings_gets,
            gets: self.gets - before.gets,
            queries: self.queries - before.queries,
            writes: self.writes - before.writes,
            write_ops: self.write_ops - before.write_ops,
        }
    }
}

/// The embedded store, counting the calls made to it.
struct CountingStore {
    inner: Arc<dyn Store>,
    settings_key: Key,
    counts: Mutex<Counts>,
}

impl CountingStore {
    fn counts(&self) -> Counts {
        *self.counts.lock().unwrap()
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        {
            let mut counts = self.counts.lock().unwrap();
            counts.gets += 1;
            counts.settings_gets += u32::from(*key == self.settings_key);
        }
        self.inner.get(key).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.counts.lock().unwrap().queries += 1;
        self.inner.query(query).await
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        {
            let mut counts = self.counts.lock().unwrap();
            counts.writes += 1;
            counts.write_ops += u32::try_from(ops.len()).unwrap();
        }
        self.inner.write(ops).await
    }
}

/// What the stream delivers: an event to one account, and what it is, for the report.
struct Delivery {
    account: &'static str,
    event: Value,
    /// The first event of a Stripe customer the CRM has not seen: it also links or creates the customer.
    first: Option<&'static str>,
}

/// An event of the `main` account about a customer the CRM knows by then.
fn main(id: String, kind: &str, at: i64, object: Value) -> Delivery {
    Delivery { account: "main", event: w::event(&id, kind, at, object, None), first: None }
}

/// `main`, for an update: with the previous values of the fields that changed.
fn update(id: String, kind: &str, at: i64, object: Value, previous: Value) -> Delivery {
    Delivery { account: "main", event: w::event(&id, kind, at, object, Some(previous)), first: None }
}

fn first(delivery: Delivery, what: &'static str) -> Delivery {
    Delivery { first: Some(what), ..delivery }
}

fn on_account(account: &'static str, delivery: Delivery) -> Delivery {
    Delivery { account, ..delivery }
}

fn monthly() -> Value {
    w::price("price_monthly", "prod_digital", 1500, "month")
}

/// Customer `i`'s ids: Stripe customer, subscription, and invoice and charge of billing period `n`.
fn ids(i: usize, n: u32) -> (String, String, String, String) {
    (format!("cus_{i:02}"), format!("sub_{i:02}"), format!("in_{i:02}_{n}"), format!("ch_{i:02}_{n}"))
}

/// A signup as Stripe delivers it: customer, incomplete subscription, its first invoice created,
/// finalized and paid, the subscription turning active, the customer updated (payment method).
/// Every third customer's subscription arrives before the customer (Stripe does not order events).
fn signup(i: usize, fake: &FakeStripe) -> Vec<Delivery> {
    let t = T0 + i64::try_from(i).unwrap() * 600;
    let (cus, sub, inv, ch) = ids(i, 1);
    let invoice = |status: &str| w::invoice(&inv, &cus, &sub, status, 1500, t + 1);
    let customer = w::customer(&cus, &format!("reader{i}@example.com"), &format!("Reader {i}"));
    fake.put_object(customer.clone());
    let incomplete = w::subscription(&sub, &cus, "incomplete", monthly(), t, (t, t + 30 * DAY));
    let mut active = incomplete.clone();
    active["status"] = json!("active");
    let mut with_card = customer.clone();
    with_card["invoice_settings"]["default_payment_method"] = json!(format!("pm_{i:02}"));
    let created = main(format!("evt_{i}_c"), "customer.created", t, customer);
    let subscribed = main(format!("evt_{i}_s"), "customer.subscription.created", t + 1, incomplete);
    let mut out = if i % 3 == 2 {
        vec![first(subscribed, "new person, via its subscription"), created]
    } else {
        vec![first(created, "new person"), subscribed]
    };
    out.extend([
        main(format!("evt_{i}_ic"), "invoice.created", t + 1, invoice("draft")),
        main(format!("evt_{i}_if"), "invoice.finalized", t + 1, invoice("open")),
        main(format!("evt_{i}_ch"), "charge.succeeded", t + 2, w::charge(&ch, &cus, 1500, 0, t + 2)),
        main(format!("evt_{i}_ip"), "invoice.paid", t + 2, invoice("paid")),
        main(format!("evt_{i}_ips"), "invoice.payment_succeeded", t + 2, invoice("paid")),
        update(format!("evt_{i}_sa"), "customer.subscription.updated", t + 2, active, json!({"status": "incomplete"})),
        update(
            format!("evt_{i}_cu"),
            "customer.updated",
            t + 3,
            with_card,
            json!({"invoice_settings": {"default_payment_method": null}}),
        ),
    ]);
    out
}

/// The same person subscribing in the publication's second Stripe account (same email): the CRM
/// links the new Stripe customer to the record it has.
fn second_account(i: usize) -> Vec<Delivery> {
    let t = T0 + 7 * DAY + i64::try_from(i).unwrap() * 600;
    let (cus, sub, inv) = (format!("cus_b{i:02}"), format!("sub_b{i:02}"), format!("in_b{i:02}_1"));
    let customer = w::customer(&cus, &format!("reader{i}@example.com"), &format!("Reader {i}"));
    let price = w::price("price_books", "prod_books", 900, "month");
    let subscription = w::subscription(&sub, &cus, "active", price, t, (t, t + 30 * DAY));
    let paid = w::invoice(&inv, &cus, &sub, "paid", 900, t + 1);
    [
        first(main(format!("evt_b{i}_c"), "customer.created", t, customer), "known person, new Stripe customer"),
        main(format!("evt_b{i}_s"), "customer.subscription.created", t + 1, subscription),
        main(format!("evt_b{i}_ip"), "invoice.paid", t + 2, paid),
    ]
    .into_iter()
    .map(|delivery| on_account("second", delivery))
    .collect()
}

/// A monthly renewal: invoice drafted an hour ahead, finalized, charged, paid; the period moves on.
fn renewal(i: usize) -> Vec<Delivery> {
    let start = T0 + i64::try_from(i).unwrap() * 600;
    let t = start + 30 * DAY;
    let (cus, sub, inv, ch) = ids(i, 2);
    let invoice = |status: &str| w::invoice(&inv, &cus, &sub, status, 1500, t - 3600);
    let renewed = w::subscription(&sub, &cus, "active", monthly(), start, (t, t + 30 * DAY));
    vec![
        main(format!("evt_{i}_rc"), "invoice.created", t - 3600, invoice("draft")),
        main(format!("evt_{i}_rf"), "invoice.finalized", t, invoice("open")),
        main(format!("evt_{i}_rch"), "charge.succeeded", t + 1, w::charge(&ch, &cus, 1500, 0, t + 1)),
        main(format!("evt_{i}_rp"), "invoice.paid", t + 1, invoice("paid")),
        main(format!("evt_{i}_rps"), "invoice.payment_succeeded", t + 1, invoice("paid")),
        update(
            format!("evt_{i}_rs"),
            "customer.subscription.updated",
            t + 1,
            renewed,
            json!({"current_period_start": start, "current_period_end": t}),
        ),
    ]
}

fn stream(fake: &FakeStripe) -> Vec<Delivery> {
    let mut out = vec![
        main("evt_prod".into(), "product.created", T0 - 10, w::product("prod_digital", "Digital")),
        main("evt_price".into(), "price.created", T0 - 9, monthly()),
    ];
    for i in 0..CUSTOMERS {
        out.extend(signup(i, fake));
    }
    for i in (0..CUSTOMERS).filter(|i| i % 4 == 3) {
        out.extend(second_account(i));
    }
    for i in 0..CUSTOMERS {
        out.extend(renewal(i));
    }
    out
}

/// Totals of one row of the report.
#[derive(Default)]
struct Row {
    events: u32,
    counts: Counts,
    stripe_calls: u32,
    max_round_trips: u32,
    max_writes: u32,
}

impl Row {
    fn add(&mut self, counts: &Counts, stripe_calls: u32) {
        self.events += 1;
        self.counts.settings_gets += counts.settings_gets;
        self.counts.gets += counts.gets;
        self.counts.queries += counts.queries;
        self.counts.writes += counts.writes;
        self.counts.write_ops += counts.write_ops;
        self.stripe_calls += stripe_calls;
        self.max_round_trips = self.max_round_trips.max(counts.round_trips());
        self.max_writes = self.max_writes.max(counts.writes);
    }

    fn markdown(&self, label: &str) -> String {
        let per = |n: u32| format!("{:.2}", f64::from(n) / f64::from(self.events));
        let c = &self.counts;
        format!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.events,
            per(c.gets + c.queries),
            per(c.writes),
            per(c.round_trips()),
            self.max_round_trips,
            self.max_writes,
            per(c.write_ops),
            per(self.stripe_calls),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_round_trips_per_applied_event() {
    let t = support::embedded_store();
    let publication = PublicationId::parse(w::PUBLICATION).unwrap();
    let parsed = PublicationSettings::parse(w::settings().to_string().as_bytes(), None).expect("valid settings");
    let stored = StoredSettings { publication_id: publication.clone(), settings: parsed, updated_at: 0 };
    publications::put(t.store.as_ref(), &stored, None).await.expect("store settings");
    let store = Arc::new(CountingStore {
        inner: t.store.clone(),
        settings_key: keys_of::settings(&publication),
        counts: Mutex::default(),
    });
    let fake = FakeStripe::start().await;
    let worker = EventWorker::new(store.clone(), Arc::new(fake.client()));

    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut all = Row::default();
    let mut known = Row::default();
    let mut settings_reads = 0;
    let deliveries = stream(&fake);
    for delivery in &deliveries {
        let header = Header {
            provider: Provider::Stripe,
            publication: publication.clone(),
            account: Some(AccountKey::parse(delivery.account).unwrap()),
            received_at: 0,
            received_at_us: None,
            event_id: None,
            event_type: None,
        };
        let message = envelope::encode(&header, &delivery.event.to_string());
        let (before, stripe_before) = (store.counts(), fake.requests().len());
        let outcome = worker.process(&message).await;
        let counts = store.counts().since(&before);
        let stripe_calls = u32::try_from(fake.requests().len() - stripe_before).unwrap();
        let kind = delivery.event["type"].as_str().unwrap();
        let id = &delivery.event["id"];
        assert_eq!(outcome.unwrap_or_else(|e| panic!("{id} ({kind}): {e}")), Outcome::Applied, "{id} ({kind})");
        settings_reads += counts.settings_gets;
        // The settings read of a cache miss is reported on its own line; it is in the stream's totals.
        let mut own = counts;
        own.gets -= counts.settings_gets;
        own.settings_gets = 0;
        let label = match delivery.first {
            Some(what) => format!("{kind}, first event of a Stripe customer ({what})"),
            None => kind.to_owned(),
        };
        let at = rows.iter().position(|(l, _)| *l == label).unwrap_or_else(|| {
            rows.push((label, Row::default()));
            rows.len() - 1
        });
        rows[at].1.add(&own, stripe_calls);
        all.add(&counts, stripe_calls);
        if delivery.first.is_none() {
            known.add(&own, stripe_calls);
        }
    }

    let columns = [
        "event",
        "events",
        "reads/event (get+query)",
        "writes/event",
        "round trips/event",
        "max round trips",
        "max writes",
        "items written/event",
        "Stripe API calls/event",
    ];
    let mut report =
        vec![format!("| {} |", columns.join(" | ")), format!("|---|{}", "---:|".repeat(columns.len() - 1))];
    report.extend(rows.iter().map(|(label, row)| row.markdown(label)));
    report.push(format!("| publication settings (30 s cache: misses only) | | {settings_reads} in all | | | | | | |"));
    report.push(known.markdown("**all but first events (known customers, catalogue)**"));
    report.push(all.markdown("**whole stream (all applied events, settings reads included)**"));
    eprintln!("\n{}\n", report.join("\n"));

    let average = f64::from(all.counts.round_trips()) / f64::from(all.events);
    let over_writes: Vec<&str> = rows
        .iter()
        .filter(|(label, row)| row.max_writes > 2 && !label.contains("first event"))
        .map(|(label, _)| label.as_str())
        .collect();
    let over_three: Vec<String> = rows
        .iter()
        .filter(|(_, row)| row.max_round_trips > 3)
        .map(|(label, row)| format!("{label}: up to {} round trips, {} writes", row.max_round_trips, row.max_writes))
        .collect();
    eprintln!("{} applied events, {} store round trips: {average:.3} per event", all.events, all.counts.round_trips());
    assert!(over_writes.is_empty(), "events of known customers with more than 2 write calls: {over_writes:?}");
    assert!(
        average <= 3.0,
        "{average:.3} store round trips per applied event on average, over the target of 3; above 3: {over_three:#?}"
    );
}
