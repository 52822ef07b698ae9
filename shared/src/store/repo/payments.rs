//! A customer's invoices and charge groups (`domain::payments`): items in the customer's partition,
//! written in the customer's own transaction (`customers::update_with`), so the customer item's
//! version guards them too. An operation reads the ones it touches; a full record reads them all.

use std::collections::BTreeMap;

use super::{from_item, keys_of, query_all, to_doc};
use crate::domain::billing::{InvoiceState, Tracked};
use crate::domain::customer::Customer;
use crate::domain::payments::ChargeGroup;
use crate::store::{Cond, Index, Item, Query, SkCond, Store, StoreError, WriteOp};

/// The writes that store `after`'s invoices and charge groups where they differ from `before`'s (all
/// of them when there is no `before`).
pub fn changes(before: Option<&Customer>, after: &Customer) -> Result<Vec<WriteOp>, StoreError> {
    writes(before, after, Cond::None)
}

fn writes(before: Option<&Customer>, after: &Customer, cond: Cond) -> Result<Vec<WriteOp>, StoreError> {
    let (publication, id) = (&after.publication_id, &after.id);
    let empty = BTreeMap::new();
    let old_invoices = before.map_or(&empty, |b| &b.stripe.invoices);
    let old_groups = before.map(|b| b.stripe.groups()).unwrap_or_default();
    let mut ops = Vec::new();
    for (key, invoice) in &after.stripe.invoices {
        if old_invoices.get(key) != Some(invoice) {
            let item = Item::new(keys_of::customer_invoice(publication, id, key), to_doc(invoice)?);
            ops.push(WriteOp::put(item, cond));
        }
    }
    for key in old_invoices.keys().filter(|k| !after.stripe.invoices.contains_key(*k)) {
        ops.push(WriteOp::Delete { key: keys_of::customer_invoice(publication, id, key), cond: Cond::None });
    }
    for (key, group) in after.stripe.groups() {
        if old_groups.get(&key) != Some(&group) {
            let item = Item::new(keys_of::customer_charge(publication, id, &key), to_doc(&group)?);
            ops.push(WriteOp::put(item, cond));
        }
    }
    Ok(ops)
}

/// A customer item written before payments had items of their own holds their states: they are put
/// in their items before the customer's next write, each in a write of its own (however many there
/// are, the customer's transaction stays within its limit) and only where no item exists yet (a
/// concurrent writer may have moved them out already, and newer).
pub async fn move_out(store: &dyn Store, before: &Customer) -> Result<(), StoreError> {
    if !before.stripe.inline {
        return Ok(());
    }
    let puts = writes(None, before, Cond::NotExists)?;
    futures::future::try_join_all(puts.into_iter().map(|put| async move {
        match store.write(vec![put]).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }))
    .await
    .map(|_| ())
}

/// Reads invoice `invoice` into the customer, when it has an item and is not read already.
pub async fn read_invoice(store: &dyn Store, customer: &mut Customer, invoice: &str) -> Result<(), StoreError> {
    if customer.stripe.holds_invoice(invoice) {
        return Ok(());
    }
    let key = keys_of::customer_invoice(&customer.publication_id, &customer.id, invoice);
    if let Some(item) = store.get(&key).await? {
        customer.stripe.adopt_invoice(from_item::<Tracked<InvoiceState>>(item)?.value);
    }
    Ok(())
}

/// Reads charge group `group` (a charge's id, or a lone refund's) into the customer, like `read_invoice`.
pub async fn read_group(store: &dyn Store, customer: &mut Customer, group: &str) -> Result<(), StoreError> {
    if customer.stripe.holds_group(group) {
        return Ok(());
    }
    let key = keys_of::customer_charge(&customer.publication_id, &customer.id, group);
    if let Some(item) = store.get(&key).await? {
        customer.stripe.adopt_group(group, from_item::<ChargeGroup>(item)?.value);
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
