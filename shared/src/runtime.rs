//! What every Lambda `main.rs` needs: ports built once from the environment during init
//! (connections warmed so the first request does not pay the TLS handshake), then the runtime.

use std::collections::HashMap;
use std::sync::Arc;

use crate::api::{ApiConfig, AppState};
use crate::config::{self, ConfigError};
use crate::http::auth::AdminAuth;
use crate::piano::client::HttpPiano;
use crate::queue::sqs::SqsQueue;
use crate::queue::{QueueDef, QueueError};
use crate::store::StoreError;
use crate::store::dynamo::DynamoStore;
use crate::stripe::client::{HttpStripe, StripeConfigError};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Stripe(#[from] StripeConfigError),
}

/// What a function needs besides the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Queues it sends to; each URL comes from the queue's `url_env` variable.
    pub queues: &'static [QueueDef],
    /// Dead-letter queues it reads (depths); each URL comes from the queue's `dlq_url_env` variable.
    pub dead_letters: &'static [QueueDef],
    /// Serves admin routes: requires `CRM_ADMIN_TOKEN`.
    pub admin: bool,
}

/// DynamoDB store, SQS queues and the Stripe client for a function, from the environment.
pub async fn aws_state(needs: Needs) -> Result<AppState, InitError> {
    let table = config::table_name()?;
    let admin = if needs.admin { AdminAuth::new(&config::admin_token()?) } else { AdminAuth::none() };
    let api_config = ApiConfig::from_env()?;
    let mut urls = HashMap::new();
    for def in needs.queues {
        urls.insert(def.name.to_owned(), config::required(def.url_env)?);
    }
    for def in needs.dead_letters {
        urls.insert(def.dlq_name.to_owned(), config::required(def.dlq_url_env)?);
    }
    let stripe = HttpStripe::from_env()?;
    let sdk = crate::aws::sdk_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    store.warm_up().await?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), urls);
    let piano = HttpPiano::new();
    Ok(AppState::new(Arc::new(store), Arc::new(queue), admin, Arc::new(stripe), Arc::new(piano))
        .with_config(api_config))
}
