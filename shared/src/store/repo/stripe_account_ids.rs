//! The `acct_…` id Stripe reports for each of a publication's Stripe accounts (`GET /v1/account`), kept
//! beside the account's catalogue so the public list can name it without asking Stripe each time.

use serde::{Deserialize, Serialize};

use super::{from_item, keys_of, to_doc};
use crate::domain::ids::{AccountKey, PublicationId};
use crate::store::{Cond, Item, Store, StoreError, WriteOp};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Learned {
    account_id: String,
    /// Epoch seconds.
    learned_at: i64,
}

pub async fn get(
    store: &dyn Store,
    publication: &PublicationId,
    account: &AccountKey,
) -> Result<Option<String>, StoreError> {
    let item = store.get(&keys_of::stripe_account_id(publication, account)).await?;
    Ok(item.map(from_item::<Learned>).transpose()?.map(|l| l.value.account_id))
}

pub async fn put(
    store: &dyn Store,
    publication: &PublicationId,
    account: &AccountKey,
    account_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let doc = to_doc(&Learned { account_id: account_id.to_owned(), learned_at: now })?;
    let item = Item::new(keys_of::stripe_account_id(publication, account), doc);
    store.write(vec![WriteOp::put(item, Cond::None)]).await
}
