//! Embedded adapter of the `Store` port: one redb file under the data directory.
//!
//! redb runs one write transaction at a time, so every condition of a `write` is checked and
//! applied inside a single serialised transaction: the same all-or-nothing semantics as
//! DynamoDB's TransactWriteItems. Concurrent writes share a transaction (group commit, `Writer`),
//! each still all-or-nothing. GSI1 is a second redb table kept in the same transactions.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    Cond, Cursor, Index, Item, Key, Page, Query, SkCond, Store, StoreError, WriteOp, live_at, now_epoch, validate_ops,
};

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
/// (gsi1pk, gsi1sk, pk, sk) → nothing: the index entry points at the item.
const GSI1: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi1");

/// Writes waiting for the writer thread, answered once their batch is committed.
struct Pending {
    ops: Vec<WriteOp>,
    reply: Reply,
}

type Reply = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// Writes taken into one transaction, at most: one commit (and its fsync, when it has one) for all of them.
const MAX_BATCH: usize = 128;

/// How a store is opened.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Page cache of at most this many bytes: a one-pass reader (an export) needs little, and redb's
    /// default would fill up to a gigabyte of memory with pages read once.
    pub cache_bytes: Option<usize>,
    /// Zero: every commit is fsynced before its writes are answered. Otherwise commits are answered once
    /// applied and visible, and fsynced together at most this long after the last fsync (and at close):
    /// a crash of the machine loses at most that much of the latest writes, for a fraction of the
    /// writer's CPU under load (docs/PERFORMANCE.md, "Load").
    pub sync_every: Duration,
}

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    inner: Arc<Writer>,
}

/// The writer thread: group commit. Every write waits for a commit, which costs an fsync whatever
/// it holds (or, with `Options::sync_every`, a share of the next timed one); the writes that arrive
/// while one commits go together in the next, so concurrent writers (the event worker, a backfill)
/// share commits instead of queueing for one each.
struct Writer {
    writer: Option<std::sync::mpsc::Sender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread; joining it closes the file before the store is gone,
        // so the same file can be opened again at once.
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_batches(db: &Database, pending: &std::sync::mpsc::Receiver<Pending>, sync_every: Duration) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut last_sync = Instant::now();
    // Commits made since the last fsync: made durable at the latest `sync_every` after it.
    let mut unsynced = false;
    loop {
        let first = if unsynced {
            match pending.recv_timeout(sync_every.saturating_sub(last_sync.elapsed())) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    // A failed sync is tried again an interval later.
                    unsynced = !sync(db);
                    last_sync = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match pending.recv() {
                Ok(first) => first,
                Err(_) => break,
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let durable = last_sync.elapsed() >= sync_every;
        let (replies, results, committed) = commit_batch(db, batch, durable);
        if durable && committed {
            (unsynced, last_sync) = (false, Instant::now());
        } else {
            unsynced |= committed;
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
    if unsynced {
        sync(db);
    }
}

/// An empty durable commit: makes every commit before it durable. Answers whether it did.
fn sync(db: &Database) -> bool {
    let outcome = db.begin_write().map_err(redb::Error::from).and_then(|txn| txn.commit().map_err(redb::Error::from));
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "embedded store: syncing the latest commits failed");
    }
    outcome.is_ok()
}

/// Applies a batch in one transaction; each write gets its own answer, or all get the failure of
/// the transaction itself. Also answers whether the transaction was committed.
fn commit_batch(db: &Database, batch: Vec<Pending>, durable: bool) -> (Vec<Reply>, Vec<Result<(), StoreError>>, bool) {
    let now = now_epoch();
    let mut replies = Vec::with_capacity(batch.len());
    let outcome = (|| {
        let mut txn = db.begin_write().map_err(backend)?;
        if !durable {
            txn.set_durability(redb::Durability::None).map_err(backend)?;
        }
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut items = txn.open_table(ITEMS).map_err(backend)?;
            let mut gsi = txn.open_table(GSI1).map_err(backend)?;
            for Pending { ops, reply } in batch {
                replies.push(reply);
                match apply(&mut items, &mut gsi, ops, now) {
                    Ok(()) => results.push(Ok(())),
                    Err(e @ StoreError::ConditionFailed { .. }) => results.push(Err(e)),
                    // A write failed halfway: the transaction is not committed, for any of the batch.
                    Err(e) => return Err(e),
                }
            }
        }
        txn.commit().map_err(backend)?;
        Ok(results)
    })();
    match outcome {
        Ok(results) => (replies, results, true),
        Err(e) => {
            let n = replies.len();
            (replies, vec![Err(e); n], false)
        }
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file, e.g. `<data-dir>/crm.redb`, with redb's default page cache
    /// (fast for a long-running `crm serve`), every write durable before it is answered.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &Options::default())
    }

    pub fn open_with(path: &Path, options: &Options) -> Result<Self, StoreError> {
        let mut builder = redb::Builder::new();
        if let Some(bytes) = options.cache_bytes {
            builder.set_cache_size(bytes);
        }
        let sync_every = options.sync_every;
        let db = builder.create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(ITEMS).map_err(backend)?;
        txn.open_table(GSI1).map_err(backend)?;
        txn.commit().map_err(backend)?;
        let db = Arc::new(db);
        let (writer, pending) = std::sync::mpsc::channel();
        let thread = {
            let db = db.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || write_batches(&db, &pending, sync_every))
                .map_err(backend)?
        };
        Ok(Self { db, inner: Arc::new(Writer { writer: Some(writer), thread: Some(thread) }) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        // On the calling thread: one item is a few page reads, mostly from redb's cache, and handing
        // it to the blocking pool (a thread wake and a switch each way) cost more than the read.
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(ITEMS).map_err(backend)?;
        read_item(&table, key, now_epoch())
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        if let Some(cursor) = &query.after {
            cursor.check_partition(query.index, &query.pk)?;
        }
        let query = query.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let items = txn.open_table(ITEMS).map_err(backend)?;
            match query.index {
                Index::Primary => query_primary(&items, &query),
                Index::Gsi1 => {
                    let gsi = txn.open_table(GSI1).map_err(backend)?;
                    query_gsi1(&items, &gsi, &query)
                }
            }
        })
        .await
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_ops(&ops)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sender = self.inner.writer.as_ref().ok_or_else(|| StoreError::Backend("store closed".into()))?;
        sender.send(Pending { ops, reply }).map_err(|_| StoreError::Backend("store writer stopped".into()))?;
        answer.await.map_err(|_| StoreError::Backend("store writer stopped".into()))?
    }
}

/// Checks every condition of one `write`, then applies it, inside the batch's transaction: a write
/// whose condition fails leaves nothing behind, so the writes batched before and after it stand.
fn apply(
    items: &mut redb::Table<(&'static str, &'static str), &'static [u8]>,
    gsi: &mut redb::Table<(&'static str, &'static str, &'static str, &'static str), ()>,
    ops: Vec<WriteOp>,
    now: i64,
) -> Result<(), StoreError> {
    // The index key each conditional op's item had; an unconditional op learns it from the value its
    // insert or remove replaces, which saves a walk down the tree (most of an event's writes).
    let mut read = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        if op.cond() == Cond::None {
            read.push(None);
            continue;
        }
        // An expired item still occupies its key (and index entry) until overwritten.
        let stored = read_head(&*items, op.key())?;
        let live = stored.as_ref().filter(|head| head.is_live(now));
        if !op.cond().holds(live.map(|head| head.version)) {
            // Nothing of this write was applied yet: the batch's transaction goes on without it.
            return Err(StoreError::ConditionFailed { index });
        }
        read.push(Some(stored.and_then(|head| head.gsi1)));
    }
    for (op, old_gsi) in ops.into_iter().zip(read) {
        match op {
            WriteOp::Put { item, .. } => {
                let replaced = items
                    .insert((item.key.pk.as_str(), item.key.sk.as_str()), encode(&item).as_slice())
                    .map_err(backend)?;
                let old_gsi = known_or_replaced(old_gsi, &item.key, replaced.as_ref().map(|old| old.value()))?;
                // An unchanged index entry is left alone: rewriting it would dirty its page for nothing.
                if old_gsi != item.gsi1 {
                    if let Some(g) = &old_gsi {
                        gsi.remove((g.pk.as_str(), g.sk.as_str(), item.key.pk.as_str(), item.key.sk.as_str()))
                            .map_err(backend)?;
                    }
                    if let Some(g) = &item.gsi1 {
                        gsi.insert((g.pk.as_str(), g.sk.as_str(), item.key.pk.as_str(), item.key.sk.as_str()), ())
                            .map_err(backend)?;
                    }
                }
            }
            WriteOp::Delete { key, .. } => {
                let removed = items.remove((key.pk.as_str(), key.sk.as_str())).map_err(backend)?;
                let old_gsi = known_or_replaced(old_gsi, &key, removed.as_ref().map(|old| old.value()))?;
                if let Some(g) = old_gsi {
                    gsi.remove((g.pk.as_str(), g.sk.as_str(), key.pk.as_str(), key.sk.as_str())).map_err(backend)?;
                }
            }
            WriteOp::Check { .. } => {}
        }
    }
    Ok(())
}

/// The index key an op's item had: the one read for its condition, else the one stored with the value
/// its write replaced (decoded only then).
fn known_or_replaced(read: Option<Option<Key>>, key: &Key, replaced: Option<&[u8]>) -> Result<Option<Key>, StoreError> {
    match (read, replaced) {
        (Some(read), _) => Ok(read),
        (None, Some(bytes)) => Ok(decode_head(key, bytes)?.0.gsi1),
        (None, None) => Ok(None),
    }
}

fn read_item(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &Key,
    now: i64,
) -> Result<Option<Item>, StoreError> {
    let Some(guard) = table.get((key.pk.as_str(), key.sk.as_str())).map_err(backend)? else {
        return Ok(None);
    };
    let item = decode(key.clone(), guard.value())?;
    Ok(item.is_live(now).then_some(item))
}

fn query_primary(
    items: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    query: &Query,
) -> Result<Page, StoreError> {
    let pk = query.pk.as_str();
    let next_pk = format!("{pk}\0");
    let (low, high) = sk_bounds(&query.sk);
    let cursor_sk = query.after.as_ref().map(|c| c.key.sk.as_str());
    // Bounds stay inside the partition: (pk, sk) sorts before (pk + "\0", "") for every sk.
    let (lower, upper) = match (query.forward, cursor_sk) {
        (true, Some(after)) => (Bound::Excluded((pk, after)), Bound::Excluded((next_pk.as_str(), ""))),
        (false, Some(before)) => (Bound::Included((pk, low.as_str())), Bound::Excluded((pk, before))),
        (_, None) => (Bound::Included((pk, low.as_str())), Bound::Excluded((next_pk.as_str(), ""))),
    };
    let range = items.range::<(&str, &str)>((lower, upper)).map_err(backend)?;
    let now = now_epoch();
    let mut out = Vec::new();
    let mut more = false;
    let entries: Box<dyn Iterator<Item = _>> = if query.forward { Box::new(range) } else { Box::new(range.rev()) };
    for entry in entries {
        let (k, v) = entry.map_err(backend)?;
        let (kpk, ksk) = k.value();
        if !within_high(ksk, high.as_deref()) {
            if query.forward {
                break;
            }
            continue;
        }
        if !query.sk.matches(ksk) {
            if query.forward {
                break;
            }
            continue;
        }
        let item = decode(Key::new(kpk, ksk), v.value())?;
        if !item.is_live(now) {
            continue;
        }
        if out.len() == query.limit as usize {
            more = true;
            break;
        }
        out.push(item);
    }
    Ok(page(out, more, Index::Primary))
}

fn query_gsi1(
    items: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    gsi: &impl ReadableTable<(&'static str, &'static str, &'static str, &'static str), ()>,
    query: &Query,
) -> Result<Page, StoreError> {
    let pk = query.pk.as_str();
    let next_pk = format!("{pk}\0");
    let (low, high) = sk_bounds(&query.sk);
    let at_cursor = query
        .after
        .as_ref()
        .and_then(|c| c.gsi1.as_ref().map(|g| (pk, g.sk.as_str(), c.key.pk.as_str(), c.key.sk.as_str())));
    let start = (pk, low.as_str(), "", "");
    let end = (next_pk.as_str(), "", "", "");
    let (lower, upper) = match (query.forward, at_cursor) {
        (true, Some(after)) => (Bound::Excluded(after), Bound::Excluded(end)),
        (false, Some(before)) => (Bound::Included(start), Bound::Excluded(before)),
        (_, None) => (Bound::Included(start), Bound::Excluded(end)),
    };
    let range = gsi.range::<(&str, &str, &str, &str)>((lower, upper)).map_err(backend)?;
    let entries: Box<dyn Iterator<Item = _>> = if query.forward { Box::new(range) } else { Box::new(range.rev()) };
    let now = now_epoch();
    let mut out = Vec::new();
    let mut more = false;
    for entry in entries {
        let (k, _) = entry.map_err(backend)?;
        let (_, gsk, ipk, isk) = k.value();
        if !within_high(gsk, high.as_deref()) || !query.sk.matches(gsk) {
            if query.forward {
                break;
            }
            continue;
        }
        let Some(item) = read_item(items, &Key::new(ipk, isk), now)? else {
            continue;
        };
        if out.len() == query.limit as usize {
            more = true;
            break;
        }
        out.push(item);
    }
    Ok(page(out, more, Index::Gsi1))
}

fn page(items: Vec<Item>, more: bool, index: Index) -> Page {
    let next = if more { items.last().map(|last| Cursor::after_item(last, index)) } else { None };
    Page { items, next }
}

/// The lowest sort key to start at, and the highest one (inclusive) when bounded.
fn sk_bounds(sk: &SkCond) -> (String, Option<String>) {
    match sk {
        SkCond::All => (String::new(), None),
        SkCond::BeginsWith(p) => (p.clone(), None),
        SkCond::Between(a, b) => (a.clone(), Some(b.clone())),
    }
}

fn within_high(sk: &str, high: Option<&str>) -> bool {
    high.is_none_or(|h| sk <= h)
}

// Value layout: version u64 | expires_at flag u8 + i64 | gsi1 flag u8 (+ two length-prefixed strings) | doc.
fn encode(item: &Item) -> Vec<u8> {
    let mut out = Vec::with_capacity(item.doc.len() + 32);
    out.extend_from_slice(&item.version.to_le_bytes());
    match item.expires_at {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_le_bytes());
        }
        None => out.push(0),
    }
    match &item.gsi1 {
        Some(g) => {
            out.push(1);
            for s in [&g.pk, &g.sk] {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        None => out.push(0),
    }
    out.extend_from_slice(item.doc.as_bytes());
    out
}

/// What `apply` needs of a stored item to check a condition and move its index entry: all but the doc.
struct Head {
    version: u64,
    expires_at: Option<i64>,
    gsi1: Option<Key>,
}

impl Head {
    fn is_live(&self, now: i64) -> bool {
        live_at(self.expires_at, now)
    }
}

fn read_head(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &Key,
) -> Result<Option<Head>, StoreError> {
    let Some(guard) = table.get((key.pk.as_str(), key.sk.as_str())).map_err(backend)? else {
        return Ok(None);
    };
    Ok(Some(decode_head(key, guard.value())?.0))
}

fn decode(key: Key, bytes: &[u8]) -> Result<Item, StoreError> {
    let (Head { version, expires_at, gsi1 }, doc) = decode_head(&key, bytes)?;
    let doc = std::str::from_utf8(doc).map_err(|_| corrupt(&key))?.to_owned();
    Ok(Item { key, gsi1, version, expires_at, doc })
}

fn corrupt(key: &Key) -> StoreError {
    StoreError::Corrupt(format!("item {}/{}", key.pk, key.sk))
}

/// The head of a stored value and the bytes of its doc.
fn decode_head<'v>(key: &Key, bytes: &'v [u8]) -> Result<(Head, &'v [u8]), StoreError> {
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&'v [u8], StoreError> {
        if rest.len() < n {
            return Err(corrupt(key));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let version = u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt(key))?);
    let expires_at = match take(1)?[0] {
        0 => None,
        _ => Some(i64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt(key))?)),
    };
    let gsi1 = match take(1)?[0] {
        0 => None,
        _ => {
            let mut parts = [String::new(), String::new()];
            for part in &mut parts {
                let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt(key))?) as usize;
                *part = std::str::from_utf8(take(len)?).map_err(|_| corrupt(key))?.to_owned();
            }
            let [pk, sk] = parts;
            Some(Key { pk, sk })
        }
    };
    Ok((Head { version, expires_at, gsi1 }, rest))
}
