//! The `acct_…` id Stripe reports for each of a publication's Stripe accounts (`GET /v1/account`), kept
//! beside the account's catalogue so the public list can name it without asking Stripe each time.
//! It is kept with a fingerprint of the secret key it was learned with: an account whose key is
//! replaced by another Stripe account's has it learned again.

use serde::{Deserialize, Serialize};

use super::{from_item, keys_of, to_doc};
use crate::domain::ids::PublicationId;
use crate::domain::settings::StripeAccount;
use crate::store::{Cond, Item, Store, StoreError, WriteOp};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Learned {
    account_id: String,
    /// `fingerprint` of the secret key Stripe answered (absent in items kept before it: learned again).
    #[serde(default)]
    key_fingerprint: String,
    /// Epoch seconds.
    learned_at: i64,
}

/// The first 16 hex digits of the secret key's SHA-256: tells keys apart, reveals nothing of them.
fn fingerprint(account: &StripeAccount) -> String {
    super::keys::hash_hex(account.secret_key.expose())[..16].to_owned()
}

/// The id learned for `account` with its current secret key, if any.
pub async fn get(
    store: &dyn Store,
    publication: &PublicationId,
    account: &StripeAccount,
) -> Result<Option<String>, StoreError> {
    let item = store.get(&keys_of::stripe_account_id(publication, &account.key)).await?;
    let learned = item.map(from_item::<Learned>).transpose()?.map(|l| l.value);
    Ok(learned.filter(|l| l.key_fingerprint == fingerprint(account)).map(|l| l.account_id))
}

pub async fn put(
    store: &dyn Store,
    publication: &PublicationId,
    account: &StripeAccount,
    account_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let learned = Learned { account_id: account_id.to_owned(), key_fingerprint: fingerprint(account), learned_at: now };
    let item = Item::new(keys_of::stripe_account_id(publication, &account.key), to_doc(&learned)?);
    store.write(vec![WriteOp::put(item, Cond::None)]).await
}
