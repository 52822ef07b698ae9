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
    /// The secret named by `name` could not be read: `why` is AWS's error code (or what went wrong
    /// before one), never anything of the secret's value.
    #[error("cannot read the secret named by {name}: {why}")]
    Secret { name: &'static str, why: String },
}

/// What a function needs besides the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Queues it sends to; each URL comes from the queue's `url_env` variable.
    pub queues: &'static [QueueDef],
    /// Dead-letter queues it reads (depths); each URL comes from the queue's `dlq_url_env` variable.
    pub dead_letters: &'static [QueueDef],
    /// Serves admin routes: requires `CRM_ADMIN_TOKEN_SECRET_ARN` or `CRM_ADMIN_TOKEN`.
    pub admin: bool,
}

/// DynamoDB store, SQS queues and the Stripe client for a function, from the environment.
pub async fn aws_state(needs: Needs) -> Result<AppState, InitError> {
    let table = config::table_name()?;
    let secret_arn = config::optional(config::ADMIN_TOKEN_SECRET_ARN)?;
    let plain_token = config::optional(config::ADMIN_TOKEN)?;
    let plain_previous = config::optional(config::ADMIN_TOKEN_PREVIOUS)?;
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
    let operator = async {
        if !needs.admin {
            return Ok(AdminAuth::none());
        }
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let (token, previous) = tokio::join!(
            admin_token_from(secret_arn.as_deref(), plain_token.as_deref(), &secrets),
            previous_admin_token_from(secret_arn.as_deref(), plain_previous.as_deref(), &secrets),
        );
        Ok::<_, InitError>(AdminAuth::new(&token?).with_previous(previous.as_deref()))
    };
    // Both are network calls of the cold start: side by side, it waits for the longer one only.
    let (admin, ()) = tokio::try_join!(operator, async { Ok(store.warm_up().await?) })?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), urls);
    let piano = HttpPiano::new();
    Ok(AppState::new(Arc::new(store), Arc::new(queue), admin, Arc::new(stripe), Arc::new(piano))
        .with_config(api_config))
}

/// The operator key being rotated out, if any: the secret's `AWSPREVIOUS` version when the key comes
/// from Secrets Manager (a rotation leaves the old value there), else `CRM_ADMIN_TOKEN_PREVIOUS`.
/// Absent, unreadable or too short, there is none (logged): the current key still works.
pub async fn previous_admin_token_from(
    secret_arn: Option<&str>,
    plain: Option<&str>,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Option<String> {
    let raw = match secret_arn {
        Some(arn) => {
            let read = secrets.get_secret_value().secret_id(arn).version_stage("AWSPREVIOUS").send().await;
            read.ok()?.secret_string()?.to_owned()
        }
        None => plain?.to_owned(),
    };
    match config::checked_admin_token(config::ADMIN_TOKEN_PREVIOUS, &raw) {
        Ok(token) => Some(token),
        Err(e) => {
            tracing::warn!(error = %e, "previous operator key ignored");
            None
        }
    }
}

/// The operator key: the secret at `secret_arn` (`CRM_ADMIN_TOKEN_SECRET_ARN`) when given, read with
/// one GetSecretValue (at init only: a request never waits on Secrets Manager), else `plain`
/// (`CRM_ADMIN_TOKEN`); trimmed either way, and refused when too short.
pub async fn admin_token_from(
    secret_arn: Option<&str>,
    plain: Option<&str>,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<String, InitError> {
    use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};

    const NAME: &str = config::ADMIN_TOKEN_SECRET_ARN;
    let Some(arn) = secret_arn else {
        let plain = plain.ok_or(ConfigError::MissingEither(NAME, config::ADMIN_TOKEN))?;
        return Ok(config::checked_admin_token(config::ADMIN_TOKEN, plain)?);
    };
    let read = secrets.get_secret_value().secret_id(arn).send().await.map_err(|e| {
        // A service error has a code (ResourceNotFoundException, AccessDeniedException, ...); the
        // others (timeout, no connection) have a chain of causes. Neither holds the secret's value.
        let why = e.code().map_or_else(|| DisplayErrorContext(&e).to_string(), str::to_owned);
        InitError::Secret { name: NAME, why }
    })?;
    let value = read.secret_string().ok_or_else(|| InitError::Secret {
        name: NAME,
        why: "the secret has no SecretString (binary secret?)".into(),
    })?;
    Ok(config::checked_admin_token(NAME, value)?)
}
