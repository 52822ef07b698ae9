//! Access patterns of `docs/data-model.md`, written once over the `Store` port.

pub mod activities;
pub mod backfill;
pub mod catalogue;
pub mod customers;
pub mod duplicates;
pub mod keys;
pub mod ledger;
pub mod payments;
pub mod piano_seen;
pub mod publications;
pub mod revenue;
pub mod stripe_account_ids;
pub mod sync_stats;
pub mod tasks;
pub mod unmapped;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Item, Query, Store, StoreError};
use crate::domain::billing::PaymentStatus;
use crate::domain::customer::Identity;
use crate::domain::ids::{AccountKey, CustomerId, PublicationId, TaskId};
use crate::domain::matching::MatchKey;
use crate::domain::task::TaskStatus;

/// A value read from the store with the version a conditional update must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

pub(crate) fn to_doc(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("cannot serialise: {e}")))
}

/// Every item `query` finds, page after page (for partitions a caller reads whole).
pub(crate) async fn query_all(store: &dyn Store, mut query: Query) -> Result<Vec<Item>, StoreError> {
    let mut out = Vec::new();
    loop {
        let page = store.query(&query).await?;
        out.extend(page.items);
        match page.next {
            Some(next) => query = query.after(Some(next)),
            None => return Ok(out),
        }
    }
}

/// `query_all`, each item's document read as `T`.
pub(crate) async fn values_all<T: DeserializeOwned>(store: &dyn Store, query: Query) -> Result<Vec<T>, StoreError> {
    query_all(store, query).await?.into_iter().map(|item| from_item(item).map(|v| v.value)).collect()
}

/// Writes each of `puts` (`Cond::NotExists` ones) in a write of its own, concurrently: an item that
/// exists already is left as it is, and however many there are no transaction limit applies.
pub(crate) async fn write_each_unless_present(store: &dyn Store, puts: Vec<super::WriteOp>) -> Result<(), StoreError> {
    futures::future::try_join_all(puts.into_iter().map(|put| async move {
        match store.write(vec![put]).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }))
    .await
    .map(|_| ())
}

pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<Versioned<T>, StoreError> {
    let value = serde_json::from_str(&item.doc)
        .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", item.key.pk, item.key.sk)))?;
    Ok(Versioned { value, version: item.version })
}

/// Every key of the table is built here, so the layout in docs/data-model.md has one source.
pub mod keys_of {
    use super::*;
    use crate::store::Key;

    pub fn settings(publication: &PublicationId) -> Key {
        Key::new(format!("PUB#{publication}"), "SETTINGS")
    }

    pub fn piano_aid(aid: &str, publication: &PublicationId) -> Key {
        Key::new(piano_aid_partition(aid), format!("PUB#{publication}"))
    }

    pub fn piano_aid_partition(aid: &str) -> String {
        format!("AID#{aid}")
    }

    /// The claim of one publication on a (Piano application, origin) pair: its public routes' own.
    pub fn aid_origin_claim(aid: &str, origin: &str) -> Key {
        Key::new(format!("CLAIM#AID#{aid}#ORIGIN#{origin}"), "CLAIM")
    }

    /// A publication serving pages from `origin` (the CORS preflight index).
    pub fn origin(origin: &str, publication: &PublicationId) -> Key {
        Key::new(origin_partition(origin), format!("PUB#{publication}"))
    }

    pub fn origin_partition(origin: &str) -> String {
        format!("ORIGIN#{origin}")
    }

    pub fn api_key(hash_hex: &str) -> Key {
        Key::new(format!("APIKEY#{hash_hex}"), "APIKEY")
    }

    /// A key's entry in its publication's key listing.
    pub fn api_key_listing(publication: &PublicationId, key_id: &str) -> Key {
        Key::new(api_keys_partition(publication), format!("K#{key_id}"))
    }

    pub fn api_keys_partition(publication: &PublicationId) -> String {
        format!("PUB#{publication}#KEYS")
    }

    pub fn customer(publication: &PublicationId, id: &CustomerId) -> Key {
        Key::new(customer_partition(publication, id), "PROFILE")
    }

    pub fn customer_listing(publication: &PublicationId, id: &CustomerId) -> Key {
        Key::new(customers_partition(publication), format!("C#{id}"))
    }

    pub fn customers_partition(publication: &PublicationId) -> String {
        format!("PUB#{publication}#CUSTOMERS")
    }

    /// The customer's entry in the listing of its payment status (`?status=`).
    pub fn customer_by_status(publication: &PublicationId, status: PaymentStatus, id: &CustomerId) -> Key {
        Key::new(status_partition(publication, status), format!("C#{id}"))
    }

    pub fn status_partition(publication: &PublicationId, status: PaymentStatus) -> String {
        format!("PUB#{publication}#STATUS#{}", status.as_str())
    }

    pub fn identity(publication: &PublicationId, identity: &Identity) -> Key {
        let pk = match identity {
            Identity::Email(email) => format!("PUB#{publication}#ID#EMAIL#{email}"),
            Identity::Stripe(account, id) => format!("PUB#{publication}#ID#STRIPE#{account}#{id}"),
            Identity::Piano(uid) => format!("PUB#{publication}#ID#PIANO#{uid}"),
        };
        Key::new(pk, "IDENTITY")
    }

    pub fn customer_partition(publication: &PublicationId, id: &CustomerId) -> String {
        format!("PUB#{publication}#C#{id}")
    }

    /// Zero-padded time first, so the partition lists the timeline in time order.
    pub fn activity(publication: &PublicationId, id: &CustomerId, at: i64, key: &str) -> Key {
        Key::new(customer_partition(publication, id), format!("{ACTIVITY_PREFIX}{:011}#{key}", at.max(0)))
    }

    pub const ACTIVITY_PREFIX: &str = "ACT#";

    /// A follow-up task; listed by status in gsi1 (`task_by_status`), which closing moves.
    pub fn task(publication: &PublicationId, id: &TaskId) -> Key {
        Key::new(format!("PUB#{publication}#TASKS"), format!("T#{id}"))
    }

    /// The task's key in gsi1: the listing of its status, in id (creation) order.
    pub fn task_by_status(publication: &PublicationId, status: TaskStatus, id: &TaskId) -> Key {
        Key::new(tasks_status_partition(publication, status), format!("T#{id}"))
    }

    pub fn tasks_status_partition(publication: &PublicationId, status: TaskStatus) -> String {
        format!("PUB#{publication}#TASKS#{}", status.as_str())
    }

    /// The task's copy in its customer's partition, which the customer record reads.
    pub fn customer_task(publication: &PublicationId, customer: &CustomerId, id: &TaskId) -> Key {
        Key::new(customer_partition(publication, customer), format!("{TASK_PREFIX}{id}"))
    }

    pub const TASK_PREFIX: &str = "TASK#";

    /// One of the customer's invoices (`domain::payments`).
    pub fn customer_invoice(publication: &PublicationId, customer: &CustomerId, invoice: &str) -> Key {
        Key::new(customer_partition(publication, customer), format!("{INVOICE_PREFIX}{invoice}"))
    }

    pub const INVOICE_PREFIX: &str = "INV#";

    /// One of the customer's charges with its refunds, or a refund with no charge (`domain::payments`).
    pub fn customer_charge(publication: &PublicationId, customer: &CustomerId, group: &str) -> Key {
        Key::new(customer_partition(publication, customer), format!("{CHARGE_PREFIX}{group}"))
    }

    pub const CHARGE_PREFIX: &str = "CHG#";

    /// One of the customer's Piano payments (`domain::piano_payments`).
    pub fn customer_piano_payment(publication: &PublicationId, customer: &CustomerId, payment: &str) -> Key {
        Key::new(customer_partition(publication, customer), format!("{PIANO_PAYMENT_PREFIX}{payment}"))
    }

    /// One of the customer's Piano refunds, under the id of the event that announced it.
    pub fn customer_piano_refund(publication: &PublicationId, customer: &CustomerId, event: &str) -> Key {
        Key::new(customer_partition(publication, customer), format!("{PIANO_REFUND_PREFIX}{event}"))
    }

    pub const PIANO_PAYMENT_PREFIX: &str = "PPAY#";
    pub const PIANO_REFUND_PREFIX: &str = "PREF#";

    /// A product (`kind` = `PRODUCT`) or price (`PRICE`) of one Stripe account's catalogue.
    pub fn stripe_catalogue(publication: &PublicationId, account: &AccountKey, kind: &str, id: &str) -> Key {
        Key::new(format!("PUB#{publication}#STRIPE#{account}"), format!("{kind}#{id}"))
    }

    /// The `acct_…` id Stripe reports for one of the publication's Stripe accounts (beside its catalogue).
    pub fn stripe_account_id(publication: &PublicationId, account: &AccountKey) -> Key {
        Key::new(format!("PUB#{publication}#STRIPE#{account}"), "ACCOUNT")
    }

    /// A product or resource outside the catalogue (`account`: the Stripe account of a product).
    pub fn unmapped(publication: &PublicationId, provider: &str, account: Option<&str>, id: &str) -> Key {
        let sk = match account {
            Some(account) => format!("{provider}#{account}#{id}"),
            None => format!("{provider}#{id}"),
        };
        Key::new(unmapped_partition(publication), sk)
    }

    pub fn unmapped_partition(publication: &PublicationId) -> String {
        format!("PUB#{publication}#UNMAPPED")
    }

    /// An MRR movement in one of the publication's movement partitions, sorted by recording time.
    pub fn mrr_movement(publication: &PublicationId, shard: u32, sk: &str) -> Key {
        Key::new(mrr_partition(publication, shard), sk)
    }

    pub fn mrr_partition(publication: &PublicationId, shard: u32) -> String {
        format!("PUB#{publication}#MRR#{shard}")
    }

    /// The folded revenue summary of a publication.
    pub fn revenue_summary(publication: &PublicationId) -> Key {
        Key::new(format!("PUB#{publication}#REVENUE"), "SUMMARY")
    }

    /// A Stripe account's backfill job.
    pub fn backfill(publication: &PublicationId, account: &AccountKey) -> Key {
        Key::new(backfill_partition(publication), account.to_string())
    }

    /// The Piano application's history import (uppercase: never an account key).
    pub fn piano_backfill(publication: &PublicationId) -> Key {
        Key::new(backfill_partition(publication), "PIANO")
    }

    pub fn backfill_partition(publication: &PublicationId) -> String {
        format!("PUB#{publication}#BACKFILL")
    }

    /// A customer holding a match key (`domain::matching`), in that key's partition.
    pub fn match_key(publication: &PublicationId, key: &MatchKey, id: &CustomerId) -> Key {
        Key::new(match_partition(publication, key), format!("C#{id}"))
    }

    pub fn match_partition(publication: &PublicationId, key: &MatchKey) -> String {
        format!("PUB#{publication}#MATCH#{}#{}", key.reason.as_str(), key.value)
    }

    /// A match key two or more customers hold: possible duplicates, listed by sync health.
    pub fn possible_duplicate(publication: &PublicationId, key: &MatchKey) -> Key {
        Key::new(duplicates_partition(publication), format!("{}#{}", key.reason.as_str(), key.value))
    }

    pub fn duplicates_partition(publication: &PublicationId) -> String {
        format!("PUB#{publication}#DUPES")
    }

    /// Sync figures of a publication: hourly buckets (`H#…`) and last-event markers (`LAST#…`).
    pub fn sync_partition(publication: &PublicationId) -> String {
        format!("PUB#{publication}#SYNC")
    }

    /// Outcomes of one (provider, account) in the hour starting at `hour` (epoch seconds), one of the
    /// hour's `shard`s (buckets written before shards have none); the hour first, so the last 24 hours
    /// of every account are one range query.
    pub fn sync_bucket(publication: &PublicationId, hour: i64, provider: &str, account: &str, shard: u64) -> Key {
        Key::new(sync_partition(publication), format!("{}{provider}#{account}#{shard}", sync_hour_prefix(hour)))
    }

    pub fn sync_hour_prefix(hour: i64) -> String {
        format!("{SYNC_BUCKET_PREFIX}{:011}#", hour.max(0))
    }

    pub const SYNC_BUCKET_PREFIX: &str = "H#";

    /// The last event of one (provider, account) that was received (`received`) or applied (`applied`).
    pub fn sync_marker(publication: &PublicationId, provider: &str, account: &str, what: &str) -> Key {
        Key::new(sync_partition(publication), format!("{SYNC_MARKER_PREFIX}{provider}#{account}#{what}"))
    }

    pub const SYNC_MARKER_PREFIX: &str = "LAST#";

    /// A Piano event the webhook received (`piano_seen`), beside its ledger entry.
    pub fn piano_seen(publication: &PublicationId, event_id: &str) -> Key {
        Key::new(format!("PUB#{publication}#EVT#piano#{event_id}"), "RECEIVED")
    }

    pub fn event(publication: &PublicationId, provider: &str, event_id: &str) -> Key {
        Key::new(format!("PUB#{publication}#EVT#{provider}#{event_id}"), "EVENT")
    }

    /// The automations an applied event fired that have not run yet (beside its ledger entry).
    pub fn pending_automations(publication: &PublicationId, provider: &str, event_id: &str) -> Key {
        Key::new(format!("PUB#{publication}#EVT#{provider}#{event_id}"), "AUTOMATIONS")
    }
}
