//! A customer's Stripe invoices and charge groups (`domain::payments`) and Piano payments and refunds
//! (`domain::piano_payments`): items in the customer's partition, written in the customer's own
//! transaction (`customers::update_with`), so the customer item's version guards them too. An
//! operation reads the ones it touches; a full record reads the Stripe ones all (nothing shows Piano's).

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{from_item, keys_of, query_all, to_doc};
use crate::domain::billing::{InvoiceState, Tracked};
use crate::domain::customer::Customer;
use crate::domain::payments::ChargeGroup;
use crate::domain::piano::{PianoPayment, PianoRefund};
use crate::store::{Cond, Index, Item, Key, Query, SkCond, Store, StoreError, WriteOp};

/// The writes that store `after`'s payment states where they differ from `before`'s (all of them when
/// there is no `before`).
pub fn changes(before: Option<&Customer>, after: &Customer) -> Result<Vec<WriteOp>, StoreError> {
    let mut ops = stripe_writes(before, after, Cond::None)?;
    ops.extend(piano_writes(before, after, Cond::None)?);
    Ok(ops)
}

/// Puts each state of `after` under `key_of` its key where `before` holds it differently or not at all.
fn puts<V: PartialEq + Serialize>(
    before: Option<&BTreeMap<String, V>>,
    after: &BTreeMap<String, V>,
    key_of: impl Fn(&str) -> Key,
    cond: Cond,
) -> Result<Vec<WriteOp>, StoreError> {
    let changed = after.iter().filter(|(key, state)| before.and_then(|b| b.get(*key)) != Some(*state));
    changed.map(|(key, state)| Ok(WriteOp::put(Item::new(key_of(key), to_doc(state)?), cond))).collect()
}

fn stripe_writes(before: Option<&Customer>, after: &Customer, cond: Cond) -> Result<Vec<WriteOp>, StoreError> {
    let (publication, id) = (&after.publication_id, &after.id);
    let old_invoices = before.map(|b| &b.stripe.invoices);
    let invoice_key = |key: &str| keys_of::customer_invoice(publication, id, key);
    let mut ops = puts(old_invoices, &after.stripe.invoices, invoice_key, cond)?;
    for key in old_invoices.into_iter().flat_map(|old| old.keys()).filter(|k| !after.stripe.invoices.contains_key(*k)) {
        ops.push(WriteOp::Delete { key: invoice_key(key), cond: Cond::None });
    }
    let old_groups = before.map(|b| b.stripe.groups());
    let group_key = |key: &str| keys_of::customer_charge(publication, id, key);
    ops.extend(puts(old_groups.as_ref(), &after.stripe.groups(), group_key, cond)?);
    Ok(ops)
}

fn piano_writes(before: Option<&Customer>, after: &Customer, cond: Cond) -> Result<Vec<WriteOp>, StoreError> {
    let (publication, id) = (&after.publication_id, &after.id);
    let payment_key = |key: &str| keys_of::customer_piano_payment(publication, id, key);
    let mut ops = puts(before.map(|b| &b.piano.payments), &after.piano.payments, payment_key, cond)?;
    let refund_key = |key: &str| keys_of::customer_piano_refund(publication, id, key);
    ops.extend(puts(before.map(|b| &b.piano.refunds), &after.piano.refunds, refund_key, cond)?);
    Ok(ops)
}

/// A customer item written before payments had items of their own holds their states: they are put
/// in their items before the customer's next write, each in a write of its own (however many there
/// are, the customer's transaction stays within its limit) and only where no item exists yet (a
/// concurrent writer may have moved them out already, and newer).
pub async fn move_out(store: &dyn Store, before: &Customer) -> Result<(), StoreError> {
    let mut puts = Vec::new();
    if before.stripe.inline {
        puts.extend(stripe_writes(None, before, Cond::NotExists)?);
    }
    if before.piano.inline {
        puts.extend(piano_writes(None, before, Cond::NotExists)?);
    }
    super::write_each_unless_present(store, puts).await
}

/// The state stored under `key`, if any.
async fn read<T: DeserializeOwned>(store: &dyn Store, key: &Key) -> Result<Option<T>, StoreError> {
    Ok(store.get(key).await?.map(from_item::<T>).transpose()?.map(|found| found.value))
}

/// Reads invoice `invoice` into the customer, when it has an item and is not read already.
pub async fn read_invoice(store: &dyn Store, customer: &mut Customer, invoice: &str) -> Result<(), StoreError> {
    if customer.stripe.holds_invoice(invoice) {
        return Ok(());
    }
    let key = keys_of::customer_invoice(&customer.publication_id, &customer.id, invoice);
    if let Some(state) = read(store, &key).await? {
        customer.stripe.adopt_invoice(state);
    }
    Ok(())
}

/// Reads charge group `group` (a charge's id, or a lone refund's) into the customer, like `read_invoice`.
pub async fn read_group(store: &dyn Store, customer: &mut Customer, group: &str) -> Result<(), StoreError> {
    if customer.stripe.holds_group(group) {
        return Ok(());
    }
    let key = keys_of::customer_charge(&customer.publication_id, &customer.id, group);
    if let Some(state) = read(store, &key).await? {
        customer.stripe.adopt_group(group, state);
    }
    Ok(())
}

/// Reads Piano payment `payment` into the customer, like `read_invoice`.
pub async fn read_piano_payment(store: &dyn Store, customer: &mut Customer, payment: &str) -> Result<(), StoreError> {
    if customer.piano.payments.contains_key(payment) {
        return Ok(());
    }
    let key = keys_of::customer_piano_payment(&customer.publication_id, &customer.id, payment);
    if let Some(state) = read::<Tracked<PianoPayment>>(store, &key).await? {
        customer.piano.adopt_payment(state);
    }
    Ok(())
}

/// Reads the Piano refund announced by event `event` into the customer, like `read_invoice`.
pub async fn read_piano_refund(store: &dyn Store, customer: &mut Customer, event: &str) -> Result<(), StoreError> {
    if customer.piano.refunds.contains_key(event) {
        return Ok(());
    }
    let key = keys_of::customer_piano_refund(&customer.publication_id, &customer.id, event);
    if let Some(state) = read::<PianoRefund>(store, &key).await? {
        customer.piano.adopt_refund(event, state);
    }
    Ok(())
}

/// Reads every invoice and charge group into the customer: the full record.
pub async fn read_all(store: &dyn Store, customer: &mut Customer) -> Result<(), StoreError> {
    let partition = keys_of::customer_partition(&customer.publication_id, &customer.id);
    let in_partition =
        |prefix: &str| Query::new(Index::Primary, partition.clone()).sk(SkCond::BeginsWith(prefix.into())).limit(1000);
    for item in query_all(store, in_partition(keys_of::INVOICE_PREFIX)).await? {
        customer.stripe.adopt_invoice(from_item::<Tracked<InvoiceState>>(item)?.value);
    }
    for item in query_all(store, in_partition(keys_of::CHARGE_PREFIX)).await? {
        let group = item.key.sk.trim_start_matches(keys_of::CHARGE_PREFIX).to_owned();
        customer.stripe.adopt_group(&group, from_item::<ChargeGroup>(item)?.value);
    }
    Ok(())
}

/// `read_all` for each customer of a page, concurrently.
pub async fn read_all_of(store: &dyn Store, customers: &mut [Customer]) -> Result<(), StoreError> {
    futures::future::try_join_all(customers.iter_mut().map(|c| read_all(store, c))).await.map(|_| ())
}
