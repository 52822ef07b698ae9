//! The store flags every command that reads or writes records shares: the embedded store under
//! `--data-dir`, or DynamoDB (`--dynamodb`, `--table`); and the queues that go with each.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use shared::queue::Queue;
use shared::queue::memory::MemoryQueue;
use shared::queue::sqs::SqsQueue;
use shared::store::Store;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::{self, EmbeddedStore};

#[derive(clap::Args)]
pub struct StoreArgs {
    /// Where the embedded store (and a generated admin token) live.
    #[arg(long, env = "CRM_DATA_DIR", default_value = ".crm-data")]
    pub data_dir: PathBuf,
    /// Use DynamoDB (and SQS for `serve`; endpoint and credentials from the standard AWS environment).
    #[arg(long)]
    pub dynamodb: bool,
    #[arg(long, env = "CRM_TABLE_NAME", default_value = "crm")]
    pub table: String,
    /// Embedded store: fsync the latest commits together at most this many milliseconds apart,
    /// answering writes once applied; 0 fsyncs every commit before answering its writes.
    #[arg(long, env = "CRM_SYNC_EVERY_MS", default_value_t = 0)]
    pub sync_every_ms: u64,
}

impl StoreArgs {
    /// Opens the store; `cache` bounds the embedded store's page cache (redb's default otherwise).
    pub async fn open(&self, cache: Option<usize>) -> anyhow::Result<Arc<dyn Store>> {
        if self.dynamodb {
            let sdk = shared::aws::sdk_config().await;
            let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &self.table);
            store.warm_up().await.context("reaching DynamoDB (run `crm tables create` first?)")?;
            return Ok(Arc::new(store));
        }
        std::fs::create_dir_all(&self.data_dir).with_context(|| format!("creating {}", self.data_dir.display()))?;
        let path = self.data_dir.join("crm.redb");
        let options =
            embedded::Options { cache_bytes: cache, sync_every: std::time::Duration::from_millis(self.sync_every_ms) };
        Ok(Arc::new(EmbeddedStore::open_with(&path, &options).with_context(|| {
            format!("opening {} (while `crm serve` runs on it, use its HTTP routes instead)", path.display())
        })?))
    }
}

/// The queues going with the store: SQS's `{prefix}-…` with `--dynamodb`, otherwise in-process ones
/// (which live as long as this process), each holding at most `memory_max_bytes` of messages.
pub async fn open_queues(dynamodb: bool, prefix: &str, memory_max_bytes: usize) -> anyhow::Result<Arc<dyn Queue>> {
    if !dynamodb {
        return Ok(Arc::new(MemoryQueue::with_max_bytes(shared::queue::ALL, memory_max_bytes)));
    }
    let sdk = shared::aws::sdk_config().await;
    let queue = SqsQueue::discover(aws_sdk_sqs::Client::new(&sdk), prefix, shared::queue::ALL)
        .await
        .context("finding the SQS queues (run `crm tables create` first?)")?;
    Ok(Arc::new(queue))
}
