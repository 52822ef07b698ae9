//! Customers: one item per customer plus one identity item per email / provider id, written in the
//! same transaction with "must not exist" conditions, so two customers can never share an identity;
//! and one item in the listing of the customer's payment status, moved in the transaction that
//! changes it, so `?status=` is a query, never a scan. Match keys for possible duplicates
//! (`duplicates`) and the invoices and charges the customer's operation changed (`payments`) are
//! written in the same transaction.

use super::{Versioned, duplicates, from_item, keys_of, payments, to_doc};
use crate::domain::billing::PaymentStatus;
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::{CustomerId, PublicationId};
use crate::domain::matching::MatchKey;
use crate::store::{Cond, Cursor, Index, Item, Query, Store, StoreError, WriteOp};

#[derive(Debug, thiserror::Error)]
pub enum CustomerWriteError {
    /// Another customer already holds this identity (or the id itself exists).
    #[error("identity already belongs to customer {holder:?}")]
    Taken { identity: Option<Identity>, holder: Option<CustomerId> },
    /// The record changed since it was read; read it again and retry.
    #[error("customer changed concurrently")]
    Stale,
    /// The condition of the caller's own write at this index (into `extra`) did not hold.
    #[error("condition failed on extra write {0}")]
    Extra(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityDoc {
    customer_id: CustomerId,
}

fn customer_item(customer: &Customer, version: u64) -> Result<Item, StoreError> {
    Ok(Item::new(keys_of::customer(&customer.publication_id, &customer.id), to_doc(customer)?)
        .with_gsi1(keys_of::customer_listing(&customer.publication_id, &customer.id))
        .with_version(version))
}

fn status_put(customer: &Customer) -> Result<WriteOp, StoreError> {
    let key = keys_of::customer_by_status(&customer.publication_id, customer.payment_status(), &customer.id);
    let doc = to_doc(&IdentityDoc { customer_id: customer.id.clone() })?;
    Ok(WriteOp::put(Item::new(key, doc), Cond::None))
}

/// `customer`'s claim of `identity`: `Cond::NotExists` for a new claim, `Cond::None` to take one over.
fn identity_put(customer: &Customer, identity: &Identity, cond: Cond) -> Result<WriteOp, StoreError> {
    let doc = to_doc(&IdentityDoc { customer_id: customer.id.clone() })?;
    Ok(WriteOp::put(Item::new(keys_of::identity(&customer.publication_id, identity), doc), cond))
}

/// Creates the customer and claims every identity it holds, or nothing at all.
pub async fn create(store: &dyn Store, customer: &Customer) -> Result<(), CustomerWriteError> {
    let identities = customer.identities();
    let mut ops = vec![WriteOp::put(customer_item(customer, 1)?, Cond::NotExists)];
    for identity in &identities {
        ops.push(identity_put(customer, identity, Cond::NotExists)?);
    }
    ops.push(status_put(customer)?);
    let matches = duplicates::index_change(None, customer)?;
    ops.extend(matches.ops);
    ops.extend(payments::changes(None, customer)?);
    match store.write(ops).await {
        Ok(()) => {
            refresh_duplicates(store, &customer.publication_id, &matches.changed).await;
            Ok(())
        }
        Err(StoreError::ConditionFailed { index: 0 }) => {
            Err(CustomerWriteError::Taken { identity: None, holder: None })
        }
        Err(StoreError::ConditionFailed { index }) => {
            let identity = identities[index - 1].clone();
            let holder = holder_of(store, &customer.publication_id, &identity).await?;
            Err(CustomerWriteError::Taken { identity: Some(identity), holder })
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes a changed customer read at `version`, moving identity items along with it.
pub async fn update(
    store: &dyn Store,
    before: &Customer,
    after: &Customer,
    version: u64,
) -> Result<u64, CustomerWriteError> {
    update_with(store, before, after, version, Vec::new()).await
}

/// `update`, plus the caller's `extra` writes in the same transaction (all or nothing).
pub async fn update_with(
    store: &dyn Store,
    before: &Customer,
    after: &Customer,
    version: u64,
    extra: Vec<WriteOp>,
) -> Result<u64, CustomerWriteError> {
    write(store, before, after, version, None, extra).await
}

/// Folds `source` (another record of the same person) into the target, `before` read at `version`
/// and becoming `after`, in one transaction: the target is written and claims its new identities
/// (taking over those `source` held), and `source` is deleted with its identities, status entry and
/// match keys, on condition that neither changed since read; the caller's `extra` writes go in the
/// same transaction. The items of the source's partition are copied beforehand by `copy_partition`.
pub async fn absorb(
    store: &dyn Store,
    before: &Customer,
    after: &Customer,
    version: u64,
    source: &Versioned<Customer>,
    extra: Vec<WriteOp>,
) -> Result<u64, CustomerWriteError> {
    write(store, before, after, version, Some(source), extra).await
}

/// The transaction of `update_with` and `absorb`: the customer item on its version, identity items
/// moved with it, its status entry, match keys and payment items, then `extra`; with a `source`, also
/// that record deleted on its version with everything of its own the target does not take over.
async fn write(
    store: &dyn Store,
    before: &Customer,
    after: &Customer,
    version: u64,
    source: Option<&Versioned<Customer>>,
    extra: Vec<WriteOp>,
) -> Result<u64, CustomerWriteError> {
    payments::move_out(store, before).await?;
    let publication = &after.publication_id;
    // A handful each: a list compares them for less than a hash set costs to build.
    let old = before.identities();
    let new = after.identities();
    let held = source.map(|s| s.value.identities()).unwrap_or_default();
    let added: Vec<&Identity> = new.iter().filter(|i| !old.contains(i)).collect();
    let (taken_over, fresh): (Vec<&Identity>, Vec<&Identity>) = added.iter().partition(|i| held.contains(i));
    let mut ops = vec![WriteOp::put(customer_item(after, version + 1)?, Cond::Version(version))];
    if let Some(source) = source {
        let key = keys_of::customer(publication, &source.value.id);
        ops.push(WriteOp::Delete { key, cond: Cond::Version(source.version) });
    }
    // Conditions on the records themselves come first: a failure among them is a stale read.
    let records = ops.len();
    for identity in &fresh {
        ops.push(identity_put(after, identity, Cond::NotExists)?);
    }
    for identity in &taken_over {
        ops.push(identity_put(after, identity, Cond::None)?);
    }
    let dropped = old.iter().filter(|i| !new.contains(i)).chain(held.iter().filter(|i| !new.contains(i)));
    for identity in dropped {
        ops.push(WriteOp::Delete { key: keys_of::identity(publication, identity), cond: Cond::None });
    }
    let (was, is) = (before.payment_status(), after.payment_status());
    if was != is {
        ops.push(WriteOp::Delete { key: keys_of::customer_by_status(publication, was, &before.id), cond: Cond::None });
        ops.push(status_put(after)?);
    }
    let matches = duplicates::index_change(Some(before), after)?;
    ops.extend(matches.ops);
    let mut changed = matches.changed;
    if let Some(source) = source {
        let gone = keys_of::customer_by_status(publication, source.value.payment_status(), &source.value.id);
        ops.push(WriteOp::Delete { key: gone, cond: Cond::None });
        for key in crate::domain::matching::keys_of(&source.value) {
            ops.push(WriteOp::Delete {
                key: keys_of::match_key(publication, &key, &source.value.id),
                cond: Cond::None,
            });
            if !changed.contains(&key) {
                changed.push(key);
            }
        }
    }
    ops.extend(payments::changes(Some(before), after)?);
    let first_extra = ops.len();
    ops.extend(extra);
    match store.write(ops).await {
        Ok(()) => {
            refresh_duplicates(store, publication, &changed).await;
            Ok(version + 1)
        }
        Err(StoreError::ConditionFailed { index }) if index < records => Err(CustomerWriteError::Stale),
        Err(StoreError::ConditionFailed { index }) if index - records < fresh.len() => {
            let identity = fresh[index - records].clone();
            let holder = holder_of(store, publication, &identity).await?;
            Err(CustomerWriteError::Taken { identity: Some(identity), holder })
        }
        Err(StoreError::ConditionFailed { index }) if index >= first_extra => {
            Err(CustomerWriteError::Extra(index - first_extra))
        }
        Err(e) => Err(e.into()),
    }
}

/// Copies the timeline entries and Piano payments and refunds of customer `from` into customer `to`'s
/// partition, each only where `to` has no such item: run before `absorb`, so a retry after a failure
/// between the two copies nothing twice.
pub async fn copy_partition(
    store: &dyn Store,
    publication: &PublicationId,
    from: &CustomerId,
    to: &CustomerId,
) -> Result<usize, StoreError> {
    const COPIED: [&str; 3] = [keys_of::ACTIVITY_PREFIX, keys_of::PIANO_PAYMENT_PREFIX, keys_of::PIANO_REFUND_PREFIX];
    let items =
        super::query_all(store, Query::new(Index::Primary, keys_of::customer_partition(publication, from))).await?;
    let target = keys_of::customer_partition(publication, to);
    let copies: Vec<WriteOp> = items
        .into_iter()
        .filter(|item| item.gsi1.is_none() && COPIED.iter().any(|p| item.key.sk.starts_with(p)))
        .map(|item| {
            let mut copy = Item::new(crate::store::Key::new(target.clone(), item.key.sk), item.doc);
            copy.expires_at = item.expires_at;
            WriteOp::put(copy, Cond::NotExists)
        })
        .collect();
    let count = copies.len();
    super::write_each_unless_present(store, copies).await?;
    Ok(count)
}

/// Best effort once the customer is written: failing it would retry a write that is already in, and the
/// next change of the same keys refreshes them again.
async fn refresh_duplicates(store: &dyn Store, publication: &PublicationId, changed: &[MatchKey]) {
    if changed.is_empty() {
        return;
    }
    if let Err(e) = duplicates::refresh(store, publication, changed, crate::store::now_epoch()).await {
        tracing::warn!(error = %e, "possible duplicates not refreshed");
    }
}

pub async fn get(
    store: &dyn Store,
    publication: &PublicationId,
    id: &CustomerId,
) -> Result<Option<Versioned<Customer>>, StoreError> {
    store.get(&keys_of::customer(publication, id)).await?.map(from_item).transpose()
}

/// `get` with every invoice, charge and refund read in: what a full record shows.
pub async fn get_full(
    store: &dyn Store,
    publication: &PublicationId,
    id: &CustomerId,
) -> Result<Option<Versioned<Customer>>, StoreError> {
    let Some(mut found) = get(store, publication, id).await? else { return Ok(None) };
    payments::read_all(store, &mut found.value).await?;
    Ok(Some(found))
}

async fn holder_of(
    store: &dyn Store,
    publication: &PublicationId,
    identity: &Identity,
) -> Result<Option<CustomerId>, StoreError> {
    let item = store.get(&keys_of::identity(publication, identity)).await?;
    Ok(item.map(from_item::<IdentityDoc>).transpose()?.map(|d| d.value.customer_id))
}

/// The customer holding this identity: two key lookups, no index.
pub async fn find(
    store: &dyn Store,
    publication: &PublicationId,
    identity: &Identity,
) -> Result<Option<Versioned<Customer>>, StoreError> {
    match holder_of(store, publication, identity).await? {
        Some(id) => get(store, publication, &id).await,
        None => Ok(None),
    }
}

/// Finds the customer by `identity`, or creates `candidate` (which must hold that identity).
/// Under concurrent calls exactly one creation wins; the others answer the winner.
pub async fn find_or_create(
    store: &dyn Store,
    identity: &Identity,
    candidate: &Customer,
) -> Result<Versioned<Customer>, CustomerWriteError> {
    // Bounded: a round only repeats after a conflict or a holder that vanished meanwhile.
    for _ in 0..5 {
        if let Some(found) = find(store, &candidate.publication_id, identity).await? {
            return Ok(found);
        }
        match create(store, candidate).await {
            Ok(()) => {
                return Ok(Versioned { value: candidate.clone(), version: 1 });
            }
            Err(CustomerWriteError::Taken { holder: Some(holder), .. }) => {
                if let Some(found) = get(store, &candidate.publication_id, &holder).await? {
                    return Ok(found);
                }
            }
            // DynamoDB cancels racing transactions on the same keys; the next round sees the winner.
            Err(CustomerWriteError::Store(e)) if e.is_transient() => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Transient("customer identity kept changing; retry".into()).into())
}

/// One page of the customers whose payment status is `status`, in id (creation) order.
pub async fn list_by_status(
    store: &dyn Store,
    publication: &PublicationId,
    status: PaymentStatus,
    limit: u32,
    after: Option<Cursor>,
) -> Result<(Vec<Customer>, Option<Cursor>), StoreError> {
    let query = Query::new(Index::Primary, keys_of::status_partition(publication, status)).limit(limit).after(after);
    let page = store.query(&query).await?;
    let ids: Vec<CustomerId> = page
        .items
        .into_iter()
        .map(|i| from_item::<IdentityDoc>(i).map(|d| d.value.customer_id))
        .collect::<Result<_, _>>()?;
    let found = futures::future::try_join_all(ids.iter().map(|id| get(store, publication, id))).await?;
    // An entry whose customer moved on meanwhile is skipped: it is no longer in this status.
    let customers = found.into_iter().flatten().map(|v| v.value).filter(|c| c.payment_status() == status).collect();
    Ok((customers, page.next))
}

/// One page of a publication's customers in id (creation) order.
pub async fn list(
    store: &dyn Store,
    publication: &PublicationId,
    limit: u32,
    after: Option<Cursor>,
) -> Result<(Vec<Customer>, Option<Cursor>), StoreError> {
    let page = store
        .query(&Query::new(Index::Gsi1, keys_of::customers_partition(publication)).limit(limit).after(after))
        .await?;
    let customers = page.items.into_iter().map(|i| from_item(i).map(|v| v.value)).collect::<Result<_, _>>()?;
    Ok((customers, page.next))
}
