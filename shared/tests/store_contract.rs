//! The `Store` contract: every test runs against the embedded (redb) adapter and against the
//! DynamoDB adapter on the emulator, and both must behave the same.

mod support;

use std::sync::Arc;

use shared::domain::billing::{ChargeState, InvoiceState, PaymentStatus, RefundState, Tracked};
use shared::domain::customer::{Customer, Identity};
use shared::domain::ids::{AccountKey, Email, PublicationId};
use shared::domain::money::{Currency, Money};
use shared::domain::piano::{PianoPayment, PianoPaymentStatus, PianoRefund, PianoSubscription};
use shared::domain::settings::PublicationSettings;
use shared::store::repo::customers::{self, CustomerWriteError};
use shared::store::repo::{keys_of, ledger, payments, publications};
use shared::store::{Cond, Cursor, Index, Item, Key, Query, SkCond, Store, StoreError, WriteOp};

type S = Arc<dyn Store>;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn item(pk: &str, sk: &str, doc: &str) -> Item {
    Item::new(Key::new(pk, sk), doc.to_owned())
}

async fn put_get_delete_round_trip(store: S) {
    let key = Key::new("P#1", "A");
    assert_eq!(store.get(&key).await.unwrap(), None);
    let written = item("P#1", "A", r#"{"x":"é ✓ \"quoted\""}"#).with_gsi1(Key::new("G#1", "s1")).with_version(7);
    store.write(vec![WriteOp::put(written.clone(), Cond::None)]).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(written));
    store.write(vec![WriteOp::Delete { key: key.clone(), cond: Cond::Exists }]).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
}

async fn conditions_hold_or_nothing_changes(store: S) {
    let v1 = item("P#2", "A", "1");
    store.write(vec![WriteOp::put(v1.clone(), Cond::NotExists)]).await.unwrap();
    let again = store.write(vec![WriteOp::put(item("P#2", "A", "other"), Cond::NotExists)]).await;
    assert!(matches!(again, Err(StoreError::ConditionFailed { index: 0 })), "{again:?}");
    let stale = store.write(vec![WriteOp::put(item("P#2", "A", "2").with_version(3), Cond::Version(2))]).await;
    assert!(matches!(stale, Err(StoreError::ConditionFailed { index: 0 })), "{stale:?}");
    store.write(vec![WriteOp::put(item("P#2", "A", "2").with_version(2), Cond::Version(1))]).await.unwrap();
    assert_eq!(store.get(&v1.key).await.unwrap().unwrap().doc, "2");
    let missing = store.write(vec![WriteOp::Delete { key: Key::new("P#2", "nope"), cond: Cond::Exists }]).await;
    assert!(matches!(missing, Err(StoreError::ConditionFailed { index: 0 })), "{missing:?}");
}

async fn transactions_are_all_or_nothing(store: S) {
    store.write(vec![WriteOp::put(item("P#3", "taken", "x"), Cond::None)]).await.unwrap();
    let ops = vec![
        WriteOp::put(item("P#3", "a", "a"), Cond::NotExists),
        WriteOp::put(item("P#3", "b", "b"), Cond::NotExists),
        WriteOp::put(item("P#3", "taken", "y"), Cond::NotExists),
    ];
    let failed = store.write(ops).await;
    assert!(matches!(failed, Err(StoreError::ConditionFailed { index: 2 })), "{failed:?}");
    assert_eq!(store.get(&Key::new("P#3", "a")).await.unwrap(), None);
    assert_eq!(store.get(&Key::new("P#3", "taken")).await.unwrap().unwrap().doc, "x");
    let check_failed = store
        .write(vec![
            WriteOp::Check { key: Key::new("P#3", "absent"), cond: Cond::Exists },
            WriteOp::put(item("P#3", "c", "c"), Cond::None),
        ])
        .await;
    assert!(matches!(check_failed, Err(StoreError::ConditionFailed { index: 0 })), "{check_failed:?}");
    assert_eq!(store.get(&Key::new("P#3", "c")).await.unwrap(), None);
    store
        .write(vec![
            WriteOp::Check { key: Key::new("P#3", "taken"), cond: Cond::Exists },
            WriteOp::put(item("P#3", "c", "c"), Cond::NotExists),
            WriteOp::Delete { key: Key::new("P#3", "b"), cond: Cond::None },
        ])
        .await
        .unwrap();
    assert!(store.get(&Key::new("P#3", "c")).await.unwrap().is_some());
    let duplicate = store
        .write(vec![WriteOp::put(item("P#3", "d", "1"), Cond::None), WriteOp::put(item("P#3", "d", "2"), Cond::None)])
        .await;
    assert!(matches!(duplicate, Err(StoreError::Invalid(_))), "{duplicate:?}");
}

async fn queries_page_in_order_both_ways(store: S) {
    let mut ops = Vec::new();
    for i in 0..25 {
        ops.push(WriteOp::put(item("P#4", &format!("ACT#{i:03}"), &i.to_string()), Cond::None));
    }
    ops.push(WriteOp::put(item("P#4", "TASK#1", "t"), Cond::None));
    ops.push(WriteOp::put(item("P#4X", "ACT#000", "neighbour"), Cond::None));
    ops.push(WriteOp::put(item("P#", "ACT#000", "neighbour"), Cond::None));
    store.write(ops).await.unwrap();

    let collect = |forward: bool| {
        let store = store.clone();
        async move {
            let mut seen = Vec::new();
            let mut query = Query::new(Index::Primary, "P#4").sk(SkCond::BeginsWith("ACT#".into())).limit(10);
            if !forward {
                query = query.backward();
            }
            let mut pages = 0;
            loop {
                let page = store.query(&query).await.unwrap();
                pages += 1;
                seen.extend(page.items.iter().map(|i| i.doc.clone()));
                match page.next {
                    Some(next) => query = query.after(Some(Cursor::decode(&next.encode()).unwrap())),
                    None => break,
                }
            }
            (seen, pages)
        }
    };
    let (forward, pages) = collect(true).await;
    assert_eq!(forward, (0..25).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(pages, 3, "10 + 10 + 5, and no empty last page");
    let (backward, _) = collect(false).await;
    assert_eq!(backward, (0..25).rev().map(|i| i.to_string()).collect::<Vec<_>>());

    let between = store
        .query(&Query::new(Index::Primary, "P#4").sk(SkCond::Between("ACT#010".into(), "ACT#012".into())))
        .await
        .unwrap();
    assert_eq!(between.items.iter().map(|i| i.doc.as_str()).collect::<Vec<_>>(), ["10", "11", "12"]);
    let all = store.query(&Query::new(Index::Primary, "P#4")).await.unwrap();
    assert_eq!(all.items.len(), 26);
    assert_eq!(all.items.last().unwrap().doc, "t");
    let exact = store.query(&Query::new(Index::Primary, "P#4").sk(SkCond::All).limit(26)).await.unwrap();
    assert!(exact.next.is_none(), "a page that ends the partition has no cursor");
}

async fn gsi_lists_and_moves_entries(store: S) {
    for (pk, g) in [("A", "3"), ("B", "1"), ("C", "2")] {
        store.write(vec![WriteOp::put(item(pk, "S", pk).with_gsi1(Key::new("LIST", g)), Cond::None)]).await.unwrap();
    }
    let list = |store: S| async move {
        let page = store.query(&Query::new(Index::Gsi1, "LIST")).await.unwrap();
        page.items.into_iter().map(|i| i.doc).collect::<Vec<_>>()
    };
    assert_eq!(list(store.clone()).await, ["B", "C", "A"]);
    // Re-putting an item under another index key moves it; deleting removes it from the index.
    store.write(vec![WriteOp::put(item("B", "S", "B").with_gsi1(Key::new("LIST", "9")), Cond::None)]).await.unwrap();
    store.write(vec![WriteOp::Delete { key: Key::new("C", "S"), cond: Cond::None }]).await.unwrap();
    store.write(vec![WriteOp::put(item("A", "S", "A"), Cond::None)]).await.unwrap();
    assert_eq!(list(store.clone()).await, ["B"]);

    // A cursor minted for another partition must be refused, not followed.
    let cursor_elsewhere = Cursor { key: Key::new("B", "S"), gsi1: Some(Key::new("OTHER", "1")) };
    let refused = store.query(&Query::new(Index::Gsi1, "LIST").after(Some(cursor_elsewhere))).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
    assert!(Cursor::decode("not base64 !!").is_err());
}

async fn expired_items_are_absent(store: S) {
    let past = now() - 10;
    let expired = item("P#6", "E", "old").expiring_at(past).with_gsi1(Key::new("EXP", "1"));
    store.write(vec![WriteOp::put(expired, Cond::None)]).await.unwrap();
    store.write(vec![WriteOp::put(item("P#6", "F", "live").expiring_at(now() + 3600), Cond::None)]).await.unwrap();
    assert_eq!(store.get(&Key::new("P#6", "E")).await.unwrap(), None);
    let page = store.query(&Query::new(Index::Primary, "P#6")).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.doc.as_str()).collect::<Vec<_>>(), ["live"]);
    assert!(store.query(&Query::new(Index::Gsi1, "EXP")).await.unwrap().items.is_empty());
    // An expired item can be claimed again as if it were not there.
    store.write(vec![WriteOp::put(item("P#6", "E", "new"), Cond::NotExists)]).await.unwrap();
    assert_eq!(store.get(&Key::new("P#6", "E")).await.unwrap().unwrap().doc, "new");
    let exists = store.write(vec![WriteOp::put(item("P#6", "G", "x").expiring_at(past), Cond::None)]).await;
    assert!(exists.is_ok());
    let on_expired = store
        .write(vec![
            WriteOp::Check { key: Key::new("P#6", "G"), cond: Cond::Exists },
            WriteOp::put(item("P#6", "H", "h"), Cond::None),
        ])
        .await;
    assert!(matches!(on_expired, Err(StoreError::ConditionFailed { index: 0 })), "{on_expired:?}");
}

fn publication() -> PublicationId {
    PublicationId::parse(&support::unique("pub")).unwrap()
}

fn customer_with_email(publication: &PublicationId, email: &str) -> Customer {
    let mut c = Customer::new(publication.clone(), now());
    c.email = Some(Email::parse(email).unwrap());
    c
}

async fn customers_are_unique_per_identity(store: S) {
    let publication = publication();
    let main = AccountKey::parse("main").unwrap();
    let mut first = customer_with_email(&publication, "Reader@Example.com");
    first.stripe_customer_ids.insert(main.clone(), "cus_A".into());
    customers::create(store.as_ref(), &first).await.unwrap();

    let by_email =
        customers::find(store.as_ref(), &publication, &Identity::Email(Email::parse("reader@example.COM").unwrap()))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(by_email.value, first);
    let by_stripe = customers::find(store.as_ref(), &publication, &Identity::Stripe(main.clone(), "cus_A".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_stripe.value.id, first.id);

    let mut clash = customer_with_email(&publication, "other@example.com");
    clash.stripe_customer_ids.insert(main.clone(), "cus_A".into());
    match customers::create(store.as_ref(), &clash).await {
        Err(CustomerWriteError::Taken { identity: Some(Identity::Stripe(_, id)), holder: Some(holder) }) => {
            assert_eq!(id, "cus_A");
            assert_eq!(holder, first.id);
        }
        other => panic!("expected the Stripe id to be taken, got {other:?}"),
    }
    assert!(
        customers::find(store.as_ref(), &publication, &Identity::Email(Email::parse("other@example.com").unwrap()))
            .await
            .unwrap()
            .is_none()
    );

    // The same email in another publication is another person record.
    let elsewhere = customer_with_email(&self::publication(), "reader@example.com");
    customers::create(store.as_ref(), &elsewhere).await.unwrap();

    // Updating moves identities: the old email is freed, the new one claimed, a second account added.
    let mut changed = first.clone();
    changed.email = Some(Email::parse("new@example.com").unwrap());
    changed.stripe_customer_ids.insert(AccountKey::parse("second").unwrap(), "cus_B".into());
    let version = customers::update(store.as_ref(), &first, &changed, 1).await.unwrap();
    assert_eq!(version, 2);
    assert!(
        customers::find(store.as_ref(), &publication, &Identity::Email(Email::parse("reader@example.com").unwrap()))
            .await
            .unwrap()
            .is_none()
    );
    let found = customers::find(
        store.as_ref(),
        &publication,
        &Identity::Stripe(AccountKey::parse("second").unwrap(), "cus_B".into()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(found.value, changed);
    assert_eq!(found.version, 2);
    let stale = customers::update(store.as_ref(), &first, &changed, 1).await;
    assert!(matches!(stale, Err(CustomerWriteError::Stale)), "{stale:?}");

    let (listed, next) = customers::list(store.as_ref(), &publication, 10, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(next.is_none());
}

async fn concurrent_creates_end_with_one_customer(store: S) {
    let publication = publication();
    let email = Email::parse("race@example.com").unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let candidate = customer_with_email(&publication, email.as_str());
            let identity = Identity::Email(email.clone());
            tokio::spawn(async move { customers::find_or_create(store.as_ref(), &identity, &candidate).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap().value.id);
    }
    assert_eq!(ids.len(), 1, "every racer must end with the same customer");
    let (listed, _) = customers::list(store.as_ref(), &publication, 100, None).await.unwrap();
    assert_eq!(listed.len(), 1, "exactly one customer stored");
    assert_eq!(Some(&listed[0].id), ids.iter().next());
}

/// Optimistic concurrency: of many writers holding the same version, exactly one wins, in single
/// writes and in transactions alike; the others learn it from `ConditionFailed`.
async fn racing_writers_at_one_version_let_exactly_one_win(store: S) {
    let key = Key::new(support::unique("race"), "ITEM");
    store.write(vec![WriteOp::put(item(&key.pk, &key.sk, "v1"), Cond::NotExists)]).await.unwrap();
    for transactional in [false, true] {
        let version = store.get(&key).await.unwrap().unwrap().version;
        let tasks: Vec<_> = (0..12)
            .map(|n| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let put = WriteOp::put(
                        Item::new(key.clone(), format!("writer {n}")).with_version(version + 1),
                        Cond::Version(version),
                    );
                    let mut ops = vec![put];
                    if transactional {
                        ops.push(WriteOp::put(item(&key.pk, &format!("SIDE#{n}"), "side"), Cond::None));
                    }
                    store.write(ops).await
                })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => wins += 1,
                Err(StoreError::ConditionFailed { index: 0 }) => {}
                // DynamoDB may cancel a racing transaction for a conflict rather than the condition.
                Err(e) if e.is_transient() => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(wins, 1, "transactional: {transactional}");
    }
}

async fn customer_listing_pages_with_stable_cursors(store: S) {
    let publication = publication();
    let mut created = Vec::new();
    for i in 0..7 {
        let c = customer_with_email(&publication, &format!("p{i}@example.com"));
        customers::create(store.as_ref(), &c).await.unwrap();
        created.push(c.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = customers::list(store.as_ref(), &publication, 3, cursor).await.unwrap();
        seen.extend(page.into_iter().map(|c| c.id));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    created.sort();
    assert_eq!(seen, created, "ids are ULIDs: listing order is creation order");
}

async fn ledger_claims_once(store: S) {
    let publication = publication();
    let hold = now() + 60;
    let first = ledger::claim(store.as_ref(), &publication, "stripe", "evt_1", hold).await.unwrap();
    let ledger::Claim::Claimed(token) = first else { panic!("first claim must win, got {first:?}") };
    assert_eq!(
        ledger::claim(store.as_ref(), &publication, "stripe", "evt_1", hold).await.unwrap(),
        ledger::Claim::InProgress
    );
    ledger::complete(store.as_ref(), &token, now()).await.unwrap();
    assert_eq!(
        ledger::claim(store.as_ref(), &publication, "stripe", "evt_1", hold).await.unwrap(),
        ledger::Claim::Completed
    );
    assert!(ledger::complete(store.as_ref(), &token, now()).await.is_err(), "a token completes once");

    // A crashed attempt: its claim expires and the event can be claimed again; the old token is dead.
    let crashed = ledger::claim(store.as_ref(), &publication, "stripe", "evt_2", now() - 1).await.unwrap();
    let ledger::Claim::Claimed(dead) = crashed else { panic!("{crashed:?}") };
    let retry = ledger::claim(store.as_ref(), &publication, "stripe", "evt_2", hold).await.unwrap();
    let ledger::Claim::Claimed(live) = retry else { panic!("expired claim must be claimable, got {retry:?}") };
    assert!(ledger::complete(store.as_ref(), &dead, now()).await.is_err());
    ledger::release(store.as_ref(), &live).await.unwrap();
    assert!(matches!(
        ledger::claim(store.as_ref(), &publication, "stripe", "evt_2", hold).await.unwrap(),
        ledger::Claim::Claimed(_)
    ));
    // Same event id from another provider or publication is another event.
    assert!(matches!(
        ledger::claim(store.as_ref(), &publication, "piano", "evt_1", hold).await.unwrap(),
        ledger::Claim::Claimed(_)
    ));
}

async fn settings_are_versioned_and_found_by_piano_aid(store: S) {
    let aid = support::unique("aid").replace('-', "");
    let body = |name: &str| {
        format!(r#"{{"name":"{name}","piano":{{"aid":"{aid}","apiToken":"t0ken-t0ken","privateKey":"pk-pk-pk-pk"}}}}"#)
    };
    let (a, b) = (publication(), publication());
    for id in [&a, &b] {
        let stored = publications::StoredSettings {
            publication_id: id.clone(),
            settings: PublicationSettings::parse(body(id.as_str()).as_bytes(), None).unwrap(),
            updated_at: now(),
        };
        assert_eq!(publications::put(store.as_ref(), &stored, None).await.unwrap(), 1);
        let twice = publications::put(store.as_ref(), &stored, None).await;
        assert!(matches!(twice, Err(publications::PutError::Stale)), "create is create-only");
    }
    let mut found: Vec<_> =
        publications::by_piano_aid(store.as_ref(), &aid).await.unwrap().into_iter().map(|s| s.publication_id).collect();
    found.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(found, expected);
    let current = publications::get(store.as_ref(), &a).await.unwrap().unwrap();
    assert_eq!(current.version, 1);
    let mut renamed = current.value.clone();
    renamed.settings.name = "Renamed".into();
    renamed.settings.piano = None;
    assert_eq!(publications::put(store.as_ref(), &renamed, Some(1)).await.unwrap(), 2);
    assert!(publications::put(store.as_ref(), &renamed, Some(1)).await.is_err(), "stale version refused");
    let found: Vec<_> =
        publications::by_piano_aid(store.as_ref(), &aid).await.unwrap().into_iter().map(|s| s.publication_id).collect();
    assert_eq!(found, vec![b]);
    let (c, d) = (publication(), publication());
    // One (application, origin) pair per publication, on every store: d cannot take c's page.
    let with_origin = |id: &PublicationId, origins: &str| {
        publications::StoredSettings {
        publication_id: id.clone(),
        settings: PublicationSettings::parse(
            format!(r#"{{"name":"x","origins":[{origins}],"piano":{{"aid":"{aid}","apiToken":"t0ken-t0ken","privateKey":"pk-pk-pk-pk"}}}}"#)
                .as_bytes(),
            None,
        )
        .unwrap(),
        updated_at: now(),
    }
    };
    let page = r#""https://pages.example""#;
    assert_eq!(publications::put(store.as_ref(), &with_origin(&c, page), None).await.unwrap(), 1);
    let taken = publications::put(store.as_ref(), &with_origin(&d, page), None).await;
    assert!(matches!(taken, Err(publications::PutError::Claimed { .. })), "{taken:?}");
    assert_eq!(publications::put(store.as_ref(), &with_origin(&c, page), Some(1)).await.unwrap(), 2, "its own pair");
    assert_eq!(publications::put(store.as_ref(), &with_origin(&c, ""), Some(2)).await.unwrap(), 3, "released");
    assert_eq!(publications::put(store.as_ref(), &with_origin(&d, page), None).await.unwrap(), 1, "then free");
}

fn usd() -> Currency {
    Currency::parse("usd").unwrap()
}

/// A monthly subscriber's `n` paid invoices and their charges, the last charge half refunded, and
/// one refund with no charge.
fn paying_customer(publication: &PublicationId, n: usize) -> Customer {
    let account = AccountKey::parse("main").unwrap();
    let mut c = customer_with_email(publication, &format!("payer{n}@example.com"));
    for i in 0..n {
        let (invoice, charge) = (format!("in_{i:03}"), format!("ch_{i:03}"));
        let t = 1_750_000_000 + i as i64 * 2_592_000;
        let state = InvoiceState {
            account: account.clone(),
            id: invoice.clone(),
            number: Some(format!("A-{i}")),
            status: "paid".into(),
            currency: Some(usd()),
            amount_due: 1500,
            amount_paid: 1500,
            amount_remaining: 0,
            attempt_count: 1,
            created: Some(t),
            due_date: None,
            paid_at: Some(t),
            period_start: Some(t),
            period_end: Some(t + 2_592_000),
            subscription_id: Some("sub_1".into()),
            hosted_invoice_url: Some(format!("https://invoice.example/{invoice}")),
        };
        c.stripe.invoices.insert(invoice.clone(), Tracked { as_of: t, state });
        let state = ChargeState {
            account: account.clone(),
            id: charge.clone(),
            status: "succeeded".into(),
            amount: 1500,
            amount_refunded: if i + 1 == n { 750 } else { 0 },
            currency: Some(usd()),
            created: Some(t),
            invoice_id: Some(invoice),
        };
        c.stripe.charges.insert(charge, Tracked { as_of: t, state });
    }
    let lone = RefundState {
        account,
        id: "re_lone".into(),
        charge_id: None,
        status: "succeeded".into(),
        amount: 100,
        currency: Some(usd()),
        created: Some(1_750_000_000),
    };
    c.stripe.refunds.insert("re_lone".into(), Tracked { as_of: 1_750_000_000, state: lone });
    c
}

/// Creates both customers and answers the length of each one's customer item.
async fn created_item_lengths(store: &S, a: &Customer, b: &Customer) -> (usize, usize) {
    let mut lengths = [0; 2];
    for (c, length) in [a, b].into_iter().zip(&mut lengths) {
        customers::create(store.as_ref(), c).await.unwrap();
        *length = store.get(&keys_of::customer(&c.publication_id, &c.id)).await.unwrap().unwrap().doc.len();
    }
    (lengths[0], lengths[1])
}

async fn payments_live_in_items_of_their_own(store: S) {
    let publication = publication();
    let (short, long) = (paying_customer(&publication, 2), paying_customer(&publication, 40));
    // The customer item holds the figures, not the states: 40 months weigh what 2 do.
    let (short_len, long_len) = created_item_lengths(&store, &short, &long).await;
    assert!(long_len <= short_len + 16, "customer item of 2 months {short_len} bytes, of 40 months {long_len}");

    let plain = customers::get(store.as_ref(), &publication, &long.id).await.unwrap().unwrap();
    assert!(plain.value.stripe.invoices.is_empty() && plain.value.stripe.charges.is_empty());
    assert_eq!(plain.value.lifetime_value().get(&usd()), 40 * 1500 - 750 - 100);
    assert_eq!(plain.value.payment_status(), PaymentStatus::Current);
    assert_eq!(plain.value.lifetime_value(), long.lifetime_value());

    let mut full = customers::get_full(store.as_ref(), &publication, &long.id).await.unwrap().unwrap();
    assert_eq!(full.value.stripe.invoices, long.stripe.invoices);
    assert_eq!(full.value.stripe.charges, long.stripe.charges);
    assert_eq!(full.value.stripe.refunds, long.stripe.refunds);
    assert_eq!(full.value.lifetime_value(), long.lifetime_value());

    // One invoice read and changed: only its item is written, and the figures follow.
    let mut touched = plain.clone();
    payments::read_invoice(store.as_ref(), &mut touched.value, "in_039").await.unwrap();
    let mut after = touched.value.clone();
    let invoice = &mut after.stripe.invoices.get_mut("in_039").unwrap().state;
    (invoice.status, invoice.amount_paid, invoice.amount_remaining) = ("open".into(), 0, 1500);
    let writes = payments::changes(Some(&touched.value), &after).unwrap();
    assert_eq!(writes.len(), 1, "{writes:?}");
    customers::update(store.as_ref(), &touched.value, &after, touched.version).await.unwrap();
    let again = customers::get(store.as_ref(), &publication, &long.id).await.unwrap().unwrap();
    assert_eq!(again.value.lifetime_value().get(&usd()), 39 * 1500 - 750 - 100);
    assert_eq!(again.value.payment_status(), PaymentStatus::Overdue, "an open invoice with a failed attempt");
    full.value.stripe.invoices.get_mut("in_039").unwrap().state = after.stripe.invoices["in_039"].state.clone();
    let reread = customers::get_full(store.as_ref(), &publication, &long.id).await.unwrap().unwrap();
    assert_eq!(reread.value.stripe.invoices, full.value.stripe.invoices);
}

/// Stores `c` as customer items were written before payments had items of their own: under `side`, the
/// states `inline` and no `figures` field.
async fn put_as_written_before<const N: usize>(
    store: &S,
    c: &Customer,
    side: &str,
    figures: &str,
    inline: [(&str, serde_json::Value); N],
) {
    let mut doc = serde_json::to_value(c).unwrap();
    let fields = doc[side].as_object_mut().unwrap();
    fields.remove(figures);
    fields.extend(inline.into_iter().map(|(name, states)| (name.to_owned(), states)));
    let item = Item::new(keys_of::customer(&c.publication_id, &c.id), doc.to_string())
        .with_gsi1(keys_of::customer_listing(&c.publication_id, &c.id))
        .with_version(1);
    store.write(vec![WriteOp::put(item, Cond::NotExists)]).await.unwrap();
}

async fn items_written_before_payment_items_move_out_on_their_next_write(store: S) {
    let publication = publication();
    // More states than one transaction may write.
    let old = paying_customer(&publication, 120);
    let inline = [
        ("invoices", serde_json::to_value(&old.stripe.invoices).unwrap()),
        ("charges", serde_json::to_value(&old.stripe.charges).unwrap()),
        ("refunds", serde_json::to_value(&old.stripe.refunds).unwrap()),
    ];
    put_as_written_before(&store, &old, "stripe", "payments", inline).await;

    let read = customers::get(store.as_ref(), &publication, &old.id).await.unwrap().unwrap();
    assert!(read.value.stripe.inline);
    assert_eq!(read.value.stripe.invoices, old.stripe.invoices);
    assert_eq!(read.value.lifetime_value(), old.lifetime_value());

    let mut renamed = read.value.clone();
    renamed.name = Some("Renamed".into());
    customers::update(store.as_ref(), &read.value, &renamed, read.version).await.unwrap();
    let plain = customers::get(store.as_ref(), &publication, &old.id).await.unwrap().unwrap();
    assert!(!plain.value.stripe.inline && plain.value.stripe.invoices.is_empty());
    assert_eq!(plain.value.lifetime_value().get(&usd()), 120 * 1500 - 750 - 100);
    let full = customers::get_full(store.as_ref(), &publication, &old.id).await.unwrap().unwrap();
    assert_eq!(full.value.stripe.invoices, old.stripe.invoices);
    assert_eq!(full.value.stripe.charges, old.stripe.charges);
    assert_eq!(full.value.stripe.refunds, old.stripe.refunds);
    assert_eq!(full.value.name.as_deref(), Some("Renamed"));
}

/// A Piano reader's `n` monthly payments of subscription S1, the last one failed, and one refund.
fn piano_payer(publication: &PublicationId, n: usize) -> Customer {
    let mut c = customer_with_email(publication, &format!("piano{n}@example.com"));
    c.piano_uid = Some(format!("uid_{n}"));
    let live = PianoSubscription {
        id: "S1".into(),
        status: "active".into(),
        term_id: None,
        resource_id: Some("R1".into()),
        expires_at: None,
    };
    c.piano.subscriptions.insert("S1".into(), Tracked { as_of: 1, state: live });
    for i in 0..n {
        let status = if i + 1 == n { PianoPaymentStatus::Failed } else { PianoPaymentStatus::Completed };
        let id = format!("P{i:03}");
        let state = PianoPayment {
            id: id.clone(),
            status,
            amount: Some(Money::new(999, usd())),
            subscription_id: Some("S1".into()),
        };
        c.piano.payments.insert(id, Tracked { as_of: 1_750_000_000_000_000 + i as i64, state });
    }
    c.piano
        .refunds
        .insert("evt_refund".into(), PianoRefund { payment_id: Some("P000".into()), amount: Money::new(99, usd()) });
    c
}

async fn piano_payments_live_in_items_of_their_own(store: S) {
    let publication = publication();
    let (short, long) = (piano_payer(&publication, 2), piano_payer(&publication, 40));
    let (short_len, long_len) = created_item_lengths(&store, &short, &long).await;
    assert!(long_len <= short_len + 16, "customer item of 2 payments {short_len} bytes, of 40 {long_len}");

    let plain = customers::get(store.as_ref(), &publication, &long.id).await.unwrap().unwrap();
    assert!(plain.value.piano.payments.is_empty() && plain.value.piano.refunds.is_empty());
    assert_eq!(plain.value.lifetime_value().get(&usd()), 39 * 999 - 99);
    assert_eq!(plain.value.payment_status(), PaymentStatus::Overdue, "the latest payment failed");
    let key = keys_of::customer_piano_payment(&publication, &long.id, "P039");
    let stored: Tracked<PianoPayment> = serde_json::from_str(&store.get(&key).await.unwrap().unwrap().doc).unwrap();
    assert_eq!(stored, long.piano.payments["P039"]);
    let key = keys_of::customer_piano_refund(&publication, &long.id, "evt_refund");
    assert!(store.get(&key).await.unwrap().is_some());

    // The failed payment read and then completed: only its item is written, and the figures follow.
    let mut touched = plain.clone();
    payments::read_piano_payment(store.as_ref(), &mut touched.value, "P039").await.unwrap();
    assert_eq!(touched.value.lifetime_value(), plain.value.lifetime_value(), "reading changes no figure");
    let mut after = touched.value.clone();
    let paid = after.piano.payments.get_mut("P039").unwrap();
    (paid.as_of, paid.state.status) = (paid.as_of + 1, PianoPaymentStatus::Completed);
    let writes = payments::changes(Some(&touched.value), &after).unwrap();
    assert_eq!(writes.len(), 1, "{writes:?}");
    customers::update(store.as_ref(), &touched.value, &after, touched.version).await.unwrap();
    let again = customers::get(store.as_ref(), &publication, &long.id).await.unwrap().unwrap();
    assert_eq!(again.value.lifetime_value().get(&usd()), 40 * 999 - 99);
    assert_eq!(again.value.payment_status(), PaymentStatus::Current);
}

async fn piano_items_written_inline_move_out_on_their_next_write(store: S) {
    let publication = publication();
    let old = piano_payer(&publication, 120);
    let inline = [
        ("payments", serde_json::to_value(&old.piano.payments).unwrap()),
        ("refunds", serde_json::to_value(&old.piano.refunds).unwrap()),
    ];
    put_as_written_before(&store, &old, "piano", "figures", inline).await;

    let read = customers::get(store.as_ref(), &publication, &old.id).await.unwrap().unwrap();
    assert!(read.value.piano.inline && !read.value.stripe.inline);
    assert_eq!(read.value.piano.payments, old.piano.payments);
    assert_eq!(
        (read.value.lifetime_value(), read.value.payment_status()),
        (old.lifetime_value(), old.payment_status())
    );

    let mut renamed = read.value.clone();
    renamed.name = Some("Renamed".into());
    customers::update(store.as_ref(), &read.value, &renamed, read.version).await.unwrap();
    let plain = customers::get(store.as_ref(), &publication, &old.id).await.unwrap().unwrap();
    assert!(!plain.value.piano.inline && plain.value.piano.payments.is_empty());
    assert_eq!(plain.value.lifetime_value().get(&usd()), 119 * 999 - 99);
    assert_eq!(plain.value.payment_status(), PaymentStatus::Overdue);
    for id in old.piano.payments.keys() {
        let mut moved = plain.value.clone();
        payments::read_piano_payment(store.as_ref(), &mut moved, id).await.unwrap();
        assert_eq!(moved.piano.payments.get(id), old.piano.payments.get(id), "{id}");
    }
    let mut moved = plain.value.clone();
    payments::read_piano_refund(store.as_ref(), &mut moved, "evt_refund").await.unwrap();
    assert_eq!(moved.piano.refunds, old.piano.refunds);
}

for_each_store!(
    put_get_delete_round_trip,
    conditions_hold_or_nothing_changes,
    transactions_are_all_or_nothing,
    queries_page_in_order_both_ways,
    gsi_lists_and_moves_entries,
    expired_items_are_absent,
    customers_are_unique_per_identity,
    concurrent_creates_end_with_one_customer,
    racing_writers_at_one_version_let_exactly_one_win,
    customer_listing_pages_with_stable_cursors,
    ledger_claims_once,
    settings_are_versioned_and_found_by_piano_aid,
    payments_live_in_items_of_their_own,
    items_written_before_payment_items_move_out_on_their_next_write,
    piano_payments_live_in_items_of_their_own,
    piano_items_written_inline_move_out_on_their_next_write,
);
