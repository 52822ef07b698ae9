//! What every Lambda `main.rs` needs: ports built once from the environment during init
//! (connections warmed so the first request does not pay the TLS handshake), then the runtime.

use std::collections::HashMap;
use std::sync::Arc;

use crate::api::AppState;
use crate::config::{self, ConfigError};
use crate::http::auth::AdminAuth;
use crate::queue::sqs::SqsQueue;
use crate::queue::{QueueDef, QueueError};
use crate::store::StoreError;
use crate::store::dynamo::DynamoStore;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

/// DynamoDB store and SQS queues for a function that sends to (or redrives) `queues`.
pub async fn aws_state(queues: &[QueueDef]) -> Result<AppState, InitError> {
    let table = config::table_name()?;
    let admin = AdminAuth::new(&config::admin_token()?);
    let mut urls = HashMap::new();
    for def in queues {
        urls.insert(def.name.to_owned(), config::required(def.url_env)?);
    }
    let sdk = crate::aws::sdk_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let (warm_store, ()) = tokio::join!(store.warm_up(), async {});
    warm_store?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), urls);
    Ok(AppState { store: Arc::new(store), queue: Arc::new(queue), admin: Arc::new(admin) })
}
