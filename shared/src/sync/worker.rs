//! `webhook-worker`: takes messages of the events queue and applies them. The same handler runs
//! under Lambda (SQS event source mapping, partial batch response) and under `crm serve`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument;

use super::envelope::{self, Provider};
use super::identity::IdentityCache;
use super::{Outcome, SyncError, piano, stripe};
use crate::queue::Received;
use crate::queue::worker::{BatchHandler, each_concurrently};
use crate::store::Store;
use crate::store::repo::publications::SettingsCache;
use crate::stripe::client::StripeApi;
use crate::stripe::event::Event;

pub struct EventWorker {
    store: Arc<dyn Store>,
    stripe: Arc<dyn StripeApi>,
    settings: SettingsCache,
    identities: IdentityCache,
}

impl EventWorker {
    pub fn new(store: Arc<dyn Store>, stripe: Arc<dyn StripeApi>) -> Self {
        Self {
            store,
            stripe,
            settings: SettingsCache::new(Duration::from_secs(30)),
            identities: IdentityCache::default(),
        }
    }

    /// Applies one queue message.
    pub async fn process(&self, message: &str) -> Result<Outcome, SyncError> {
        let (header, body) = envelope::decode(message)?;
        match header.provider {
            Provider::Stripe => {
                let event = Event::parse(body.as_bytes())?;
                tracing::Span::current().record("event_id", event.id.as_str());
                let settings = self
                    .settings
                    .get(self.store.as_ref(), &header.publication)
                    .await?
                    .ok_or_else(|| SyncError::UnknownPublication(header.publication.to_string()))?;
                let key = header.account.ok_or_else(|| SyncError::Message("Stripe message without account".into()))?;
                let account =
                    settings.settings.stripe_account(&key).ok_or_else(|| SyncError::UnknownAccount(key.to_string()))?;
                let ctx = stripe::Context {
                    store: self.store.as_ref(),
                    identities: &self.identities,
                    api: self.stripe.as_ref(),
                    publication: &header.publication,
                    account,
                    now: crate::store::now_epoch(),
                };
                stripe::apply(&ctx, &event).await
            }
            Provider::Piano => {
                let event = crate::piano::webhook::parse_event(body).map_err(|e| SyncError::Message(e.to_string()))?;
                let id = header.event_id.ok_or_else(|| SyncError::Message("Piano message without event id".into()))?;
                tracing::Span::current().record("event_id", id.as_str());
                let delivery = piano::Delivery {
                    publication: &header.publication,
                    event_id: &id,
                    event: &event,
                    received_at: header.received_at,
                    now: crate::store::now_epoch(),
                };
                piano::apply(self.store.as_ref(), &delivery).await
            }
        }
    }

    async fn process_logged(&self, message: &Received) -> bool {
        let span = tracing::info_span!("event", message_id = %message.id, event_id = tracing::field::Empty);
        async {
            match self.process(&message.body).await {
                Ok(outcome) => {
                    tracing::info!(?outcome, "event processed");
                    true
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, attempt = message.receive_count, "event failed; will retry");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, attempt = message.receive_count, "event cannot be applied; retried until the dead-letter queue takes it");
                    false
                }
            }
        }
        .instrument(span)
        .await
    }
}

#[async_trait]
impl BatchHandler for EventWorker {
    async fn handle(&self, batch: &[Received]) -> Vec<String> {
        each_concurrently(batch, |m| self.process_logged(m)).await
    }
}
