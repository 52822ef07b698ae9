//! The customer's activity timeline: items in the customer's partition, sorted by time.
//! An entry's key comes from the fact it records, so writing it again changes nothing.

use super::{from_item, keys_of, to_doc};
use crate::domain::activity::Activity;
use crate::domain::ids::{CustomerId, PublicationId};
use crate::store::{Cond, Cursor, Index, Item, Query, SkCond, Store, StoreError, WriteOp};

pub fn put(publication: &PublicationId, customer: &CustomerId, activity: &Activity) -> Result<WriteOp, StoreError> {
    let key = keys_of::activity(publication, customer, activity.at, &activity.key);
    Ok(WriteOp::put(Item::new(key, to_doc(activity)?), Cond::None))
}

/// A page of the timeline, newest first.
pub async fn list(
    store: &dyn Store,
    publication: &PublicationId,
    customer: &CustomerId,
    limit: u32,
    after: Option<Cursor>,
) -> Result<(Vec<Activity>, Option<Cursor>), StoreError> {
    let query = Query::new(Index::Primary, keys_of::customer_partition(publication, customer))
        .sk(SkCond::BeginsWith(keys_of::ACTIVITY_PREFIX.into()))
        .backward()
        .limit(limit)
        .after(after);
    let page = store.query(&query).await?;
    let activities = page.items.into_iter().map(|i| from_item(i).map(|v| v.value)).collect::<Result<_, _>>()?;
    Ok((activities, page.next))
}
