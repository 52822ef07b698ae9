//! The `Store` port: a single-table key/item store with conditional, atomic writes.
//!
//! Both adapters (`dynamo` for DynamoDB, `embedded` for a redb file) implement exactly these
//! semantics, and the contract suite in `shared/tests/store_contract.rs` runs against both.
//! Repositories (`repo`) build every access pattern of `docs/data-model.md` on top of it, once.

mod cursor;
pub mod dynamo;
pub mod embedded;
pub mod repo;
pub mod schema;

use async_trait::async_trait;

pub use cursor::Cursor;

/// Primary key of an item: partition key and sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }
}

/// One stored item. `doc` is the entity as JSON; the other fields are what the store indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: Key,
    /// Key in the one global secondary index (`gsi1pk`/`gsi1sk`), when the item is listed there.
    pub gsi1: Option<Key>,
    /// Optimistic-concurrency version; `Cond::Version(n)` compares against it.
    pub version: u64,
    /// Epoch seconds after which the item counts as absent (DynamoDB TTL deletes it later).
    pub expires_at: Option<i64>,
    pub doc: String,
}

impl Item {
    pub fn new(key: Key, doc: String) -> Self {
        Self { key, gsi1: None, version: 1, expires_at: None, doc }
    }

    pub fn with_gsi1(mut self, gsi1: Key) -> Self {
        self.gsi1 = Some(gsi1);
        self
    }

    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    pub fn expiring_at(mut self, epoch_seconds: i64) -> Self {
        self.expires_at = Some(epoch_seconds);
        self
    }

    pub(crate) fn is_live(&self, now: i64) -> bool {
        live_at(self.expires_at, now)
    }
}

/// Whether an item that expires at `expires_at` (epoch seconds) still counts at `now`: from its
/// expiry on it is absent, as for DynamoDB's `ttl <= :now` conditions.
pub(crate) fn live_at(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_none_or(|t| t > now)
}

/// Condition on the current state of an item, checked atomically with the write.
/// An expired item (see `Item::expires_at`) counts as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    None,
    NotExists,
    Exists,
    Version(u64),
}

impl Cond {
    /// Whether the condition holds on the live item of version `current` (`None`: absent or expired).
    pub(crate) fn holds(self, current: Option<u64>) -> bool {
        match (self, current) {
            (Cond::None, _) => true,
            (Cond::NotExists, current) => current.is_none(),
            (Cond::Exists, current) => current.is_some(),
            (Cond::Version(v), Some(version)) => version == v,
            (Cond::Version(_), None) => false,
        }
    }
}

#[derive(Debug, Clone)]
pub enum WriteOp {
    Put { item: Item, cond: Cond },
    Delete { key: Key, cond: Cond },
    Check { key: Key, cond: Cond },
}

impl WriteOp {
    pub fn put(item: Item, cond: Cond) -> Self {
        WriteOp::Put { item, cond }
    }

    pub fn key(&self) -> &Key {
        match self {
            WriteOp::Put { item, .. } => &item.key,
            WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } => key,
        }
    }

    pub fn cond(&self) -> Cond {
        match self {
            WriteOp::Put { cond, .. } | WriteOp::Delete { cond, .. } | WriteOp::Check { cond, .. } => *cond,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Primary,
    Gsi1,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkCond {
    All,
    BeginsWith(String),
    /// Inclusive on both ends, as DynamoDB's BETWEEN.
    Between(String, String),
}

impl SkCond {
    pub(crate) fn matches(&self, sk: &str) -> bool {
        match self {
            SkCond::All => true,
            SkCond::BeginsWith(p) => sk.starts_with(p.as_str()),
            SkCond::Between(a, b) => a.as_str() <= sk && sk <= b.as_str(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sk: SkCond,
    pub forward: bool,
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Query {
    pub fn new(index: Index, pk: impl Into<String>) -> Self {
        Self { index, pk: pk.into(), sk: SkCond::All, forward: true, limit: 100, after: None }
    }

    pub fn sk(mut self, sk: SkCond) -> Self {
        self.sk = sk;
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    pub fn backward(mut self) -> Self {
        self.forward = false;
        self
    }

    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.after = cursor;
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The condition of the write at `index` (in the order given) did not hold; nothing was written.
    #[error("condition failed on write {index}")]
    ConditionFailed { index: usize },
    /// Throttling, a transaction conflict, a timeout: the same call may succeed later.
    #[error("store temporarily unavailable: {0}")]
    Transient(String),
    #[error("invalid store request: {0}")]
    Invalid(String),
    #[error("store failure: {0}")]
    Backend(String),
    #[error("stored document is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }
}

/// Most writes one `Store::write` call may carry (DynamoDB's transaction limit).
pub const MAX_WRITE_OPS: usize = 100;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Strongly consistent read of one item; expired items are absent.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Items of one partition (of the table or of GSI1) in sort-key order, a page at a time.
    /// GSI1 reads are eventually consistent, as in DynamoDB.
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;

    /// Applies all writes or none. Every condition is checked against the state before the call.
    /// At most `MAX_WRITE_OPS` writes, each key at most once.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;
}

pub(crate) fn validate_ops(ops: &[WriteOp]) -> Result<(), StoreError> {
    if ops.is_empty() || ops.len() > MAX_WRITE_OPS {
        return Err(StoreError::Invalid(format!("a write carries 1 to {MAX_WRITE_OPS} operations, not {}", ops.len())));
    }
    let mut seen = std::collections::HashSet::with_capacity(ops.len());
    for op in ops {
        if !seen.insert(op.key()) {
            return Err(StoreError::Invalid(format!("key {}/{} appears twice in one write", op.key().pk, op.key().sk)));
        }
    }
    Ok(())
}

/// Now, in epoch seconds (UTC).
pub fn now_epoch() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
