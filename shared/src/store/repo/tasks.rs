//! Follow-up tasks: one item in the publication's task partition, listed by status through gsi1
//! (closing a task moves its gsi1 key), and a copy in the customer's partition for the record; both
//! are written in one transaction, so they never disagree for long.

use super::{Versioned, from_item, keys_of, to_doc};
use crate::domain::ids::{CustomerId, PublicationId, TaskId};
use crate::domain::task::{Task, TaskStatus};
use crate::store::{Cond, Cursor, Index, Item, Query, SkCond, Store, StoreError, WriteOp};

/// Rounds of read-then-conditional-write before a status change gives up (the caller retries).
const ROUNDS: usize = 5;

/// The most tasks the customer record reads (its partition holds them, open and done).
const MAX_PER_CUSTOMER: usize = 500;

fn main_item(publication: &PublicationId, task: &Task, version: u64) -> Result<Item, StoreError> {
    Ok(Item::new(keys_of::task(publication, &task.id), to_doc(task)?)
        .with_gsi1(keys_of::task_by_status(publication, task.status, &task.id))
        .with_version(version))
}

fn copy_put(publication: &PublicationId, task: &Task) -> Result<WriteOp, StoreError> {
    let key = keys_of::customer_task(publication, &task.customer_id, &task.id);
    Ok(WriteOp::put(Item::new(key, to_doc(task)?), Cond::None))
}

/// Creates the task unless one with its id exists: `true` when this call created it. A task's id
/// names what made it, so creating it again (a rerun) changes nothing, even once it was closed.
pub async fn create(store: &dyn Store, publication: &PublicationId, task: &Task) -> Result<bool, StoreError> {
    let ops = vec![WriteOp::put(main_item(publication, task, 1)?, Cond::NotExists), copy_put(publication, task)?];
    match store.write(ops).await {
        Ok(()) => Ok(true),
        Err(StoreError::ConditionFailed { index: 0 }) => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn get(
    store: &dyn Store,
    publication: &PublicationId,
    id: &TaskId,
) -> Result<Option<Versioned<Task>>, StoreError> {
    store.get(&keys_of::task(publication, id)).await?.map(from_item).transpose()
}

/// Opens or closes a task; `None` when there is no such task. Setting the status it has changes nothing.
pub async fn set_status(
    store: &dyn Store,
    publication: &PublicationId,
    id: &TaskId,
    status: TaskStatus,
    now: i64,
) -> Result<Option<Task>, StoreError> {
    for _ in 0..ROUNDS {
        let Some(found) = get(store, publication, id).await? else { return Ok(None) };
        if found.value.status == status {
            return Ok(Some(found.value));
        }
        let mut task = found.value;
        task.status = status;
        task.closed_at = (status == TaskStatus::Done).then_some(now);
        let ops = vec![
            WriteOp::put(main_item(publication, &task, found.version + 1)?, Cond::Version(found.version)),
            copy_put(publication, &task)?,
        ];
        match store.write(ops).await {
            Ok(()) => return Ok(Some(task)),
            Err(StoreError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Transient(format!("task {id} kept changing; retry")))
}

/// One page of the publication's tasks of one status, in id order (the time of what created them).
pub async fn list(
    store: &dyn Store,
    publication: &PublicationId,
    status: TaskStatus,
    limit: u32,
    after: Option<Cursor>,
) -> Result<(Vec<Task>, Option<Cursor>), StoreError> {
    let query = Query::new(Index::Gsi1, keys_of::tasks_status_partition(publication, status)).limit(limit).after(after);
    let page = store.query(&query).await?;
    let tasks = page.items.into_iter().map(|i| from_item(i).map(|v| v.value)).collect::<Result<_, _>>()?;
    Ok((tasks, page.next))
}

/// The customer's tasks (of `status`, or all), oldest first: a query on the customer's partition.
pub async fn of_customer(
    store: &dyn Store,
    publication: &PublicationId,
    customer: &CustomerId,
    status: Option<TaskStatus>,
) -> Result<Vec<Task>, StoreError> {
    let mut out = Vec::new();
    let mut after = None;
    let mut read = 0;
    loop {
        let query = Query::new(Index::Primary, keys_of::customer_partition(publication, customer))
            .sk(SkCond::BeginsWith(keys_of::TASK_PREFIX.into()))
            .limit(100)
            .after(after);
        let page = store.query(&query).await?;
        read += page.items.len();
        for item in page.items {
            let task: Task = from_item(item)?.value;
            if status.is_none_or(|s| s == task.status) {
                out.push(task);
            }
        }
        match page.next {
            Some(next) if read < MAX_PER_CUSTOMER => after = Some(next),
            _ => return Ok(out),
        }
    }
}
