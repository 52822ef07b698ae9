//! The products and prices of each Stripe account, as the sync last saw them (to name plans).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Versioned, from_item, keys_of, to_doc};
use crate::domain::billing::{CataloguePrice, ProductState, Tracked};
use crate::domain::ids::{AccountKey, PublicationId};
use crate::store::{Cond, Item, Store, StoreError, WriteOp};

pub const PRODUCT: &str = "PRODUCT";
pub const PRICE: &str = "PRICE";

pub async fn get<T: DeserializeOwned>(
    store: &dyn Store,
    publication: &PublicationId,
    account: &AccountKey,
    kind: &str,
    id: &str,
) -> Result<Option<Versioned<Tracked<T>>>, StoreError> {
    store.get(&keys_of::stripe_catalogue(publication, account, kind, id)).await?.map(from_item).transpose()
}

/// Writes `value` over the version read (`None`: it must not exist yet).
pub fn put<T: Serialize>(
    publication: &PublicationId,
    account: &AccountKey,
    kind: &str,
    id: &str,
    value: &Tracked<T>,
    read_version: Option<u64>,
) -> Result<WriteOp, StoreError> {
    let item = Item::new(keys_of::stripe_catalogue(publication, account, kind, id), to_doc(value)?)
        .with_version(read_version.map_or(1, |v| v + 1));
    Ok(WriteOp::put(item, read_version.map_or(Cond::NotExists, Cond::Version)))
}

pub async fn product(
    store: &dyn Store,
    publication: &PublicationId,
    account: &AccountKey,
    id: &str,
) -> Result<Option<ProductState>, StoreError> {
    Ok(get::<ProductState>(store, publication, account, PRODUCT, id).await?.map(|v| v.value.state))
}

pub async fn price(
    store: &dyn Store,
    publication: &PublicationId,
    account: &AccountKey,
    id: &str,
) -> Result<Option<CataloguePrice>, StoreError> {
    Ok(get::<CataloguePrice>(store, publication, account, PRICE, id).await?.map(|v| v.value.state))
}
