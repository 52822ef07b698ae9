//! `webhook-worker`: takes messages of the events queue and applies them. The same handler runs
//! under Lambda (SQS event source mapping, partial batch response) and under `crm serve`. Each batch's
//! outcomes are counted for sync health (`tally`) and written once, by the batch or by a `TallyWriter`
//! the process's workers share.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument;

use super::envelope::{self, Header, Provider};
use super::identity::IdentityCache;
use super::tally::{BatchTally, Processed, TallyWriter};
use super::{FiredSink, Outcome, SyncError, piano, stripe};
use crate::piano::client::PianoApi;
use crate::queue::worker::{BatchHandler, each_concurrently};
use crate::queue::{Queue, Received};
use crate::store::Store;
use crate::store::repo::ledger;
use crate::store::repo::publications::SettingsCache;
use crate::stripe::client::StripeApi;
use crate::stripe::event::Event;

pub struct EventWorker {
    store: Arc<dyn Store>,
    stripe: Arc<dyn StripeApi>,
    /// Reads what Piano's events lack; `None`: events apply with what they carry.
    piano: Option<Arc<dyn PianoApi>>,
    /// `CRM_PIANO_API_BASE`: Piano's API for every region (a fake in tests).
    piano_base: Option<String>,
    /// Where automations queue their notifications; `None`: automations wait in their outbox.
    queue: Option<Arc<dyn Queue>>,
    settings: SettingsCache,
    identities: IdentityCache,
    /// Takes the batches' sync figures; `None`: each batch writes its own before it answers.
    tally_writer: Option<Arc<TallyWriter>>,
}

impl EventWorker {
    /// A worker that calls no Piano API until `with_piano`.
    pub fn new(store: Arc<dyn Store>, stripe: Arc<dyn StripeApi>) -> Self {
        Self {
            store,
            stripe,
            piano: None,
            piano_base: None,
            queue: None,
            settings: SettingsCache::new(Duration::from_secs(30)),
            identities: IdentityCache::default(),
            tally_writer: None,
        }
    }

    /// Piano's API and the base URL overriding every region's (`CRM_PIANO_API_BASE`).
    pub fn with_piano(mut self, api: Arc<dyn PianoApi>, base: Option<String>) -> Self {
        self.piano = Some(api);
        self.piano_base = base;
        self
    }

    /// The queue automations send notifications to (the forward queue's owner), and gaps in an account's
    /// events their catch-up (the jobs queue's).
    pub fn with_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Hands each batch's sync figures to `writer` (whose `run` the caller drives) instead of writing them.
    pub fn with_tally_writer(mut self, writer: Arc<TallyWriter>) -> Self {
        self.tally_writer = Some(writer);
        self
    }

    /// The worker of a deployment: its store, queues and provider clients.
    pub fn for_state(state: &crate::api::AppState) -> Self {
        Self::new(state.store.clone(), state.stripe.clone())
            .with_piano(state.piano.clone(), state.config.piano_api_base.clone())
            .with_queue(state.queue.clone())
    }

    /// Runs the automations `event_id` fired (just applied, or pending from an attempt that stopped
    /// before running them), then clears its outbox.
    async fn run_automations(
        &self,
        settings: &crate::domain::settings::PublicationSettings,
        publication: &crate::domain::ids::PublicationId,
        provider: &str,
        event_id: &str,
        fired: Vec<crate::automation::Fired>,
    ) -> Result<(), SyncError> {
        if fired.is_empty() {
            return Ok(());
        }
        let Some(queue) = &self.queue else {
            tracing::warn!(event_id, "automations pending: this worker has no queue for them");
            return Ok(());
        };
        let now = crate::store::now_epoch();
        crate::automation::run(self.store.as_ref(), queue.as_ref(), settings, publication, &fired, now).await?;
        ledger::pending_done(self.store.as_ref(), publication, provider, event_id).await?;
        Ok(())
    }

    /// Applies one queue message.
    pub async fn process(&self, message: &str) -> Result<Outcome, SyncError> {
        let (header, body) = envelope::decode(message)?;
        Ok(self.apply(&header, body).await?.outcome)
    }

    /// Applies one event; answers what sync health keeps of it too (type and time, from the parse
    /// the event needs anyway).
    async fn apply(&self, header: &Header, body: &str) -> Result<Processed, SyncError> {
        let settings = self
            .settings
            .get(self.store.as_ref(), &header.publication)
            .await?
            .ok_or_else(|| SyncError::UnknownPublication(header.publication.to_string()))?;
        let now = crate::store::now_epoch();
        let fired = FiredSink::default();
        let (provider, event_id, processed) = match header.provider {
            Provider::Stripe => {
                let event = match &header.event_type {
                    Some(kind) => Event::parse_as(body.as_bytes(), kind)?,
                    None => Event::parse(body.as_bytes())?,
                };
                tracing::Span::current().record("event_id", event.id.as_str());
                let key = header
                    .account
                    .as_ref()
                    .ok_or_else(|| SyncError::Message("Stripe message without account".into()))?;
                let account =
                    settings.settings.stripe_account(key).ok_or_else(|| SyncError::UnknownAccount(key.to_string()))?;
                let ctx = stripe::Context {
                    store: self.store.as_ref(),
                    identities: &self.identities,
                    api: self.stripe.as_ref(),
                    publication: &header.publication,
                    account,
                    settings: &settings.settings,
                    fired: &fired,
                    as_of: None,
                    now,
                };
                let outcome = stripe::apply(&ctx, &event).await?;
                let processed = Processed { outcome, event_type: Some(event.kind.clone()), event_at: event.created };
                ("stripe", event.id.to_string(), processed)
            }
            Provider::Piano => {
                let event = crate::piano::webhook::parse_event(body).map_err(|e| SyncError::Message(e.to_string()))?;
                let id = header
                    .event_id
                    .clone()
                    .ok_or_else(|| SyncError::Message("Piano message without event id".into()))?;
                tracing::Span::current().record("event_id", id.as_str());
                let fetched = match &self.piano {
                    Some(api) => {
                        piano::fetch_profile(api.as_ref(), &settings.settings, self.piano_base.as_deref(), &event)
                            .await?
                    }
                    None => None,
                };
                let delivery = piano::Delivery {
                    publication: &header.publication,
                    settings: &settings.settings,
                    event_id: &id,
                    event: &event,
                    fetched: fetched.as_ref(),
                    received_at: header.received_at,
                    received_at_us: state_time_us(&event, header),
                    fired: &fired,
                    now,
                };
                let outcome = piano::apply(self.store.as_ref(), &delivery).await?;
                // Timeline entries and sync health keep the receipt time.
                let processed = Processed { outcome, event_type: event.kind.clone(), event_at: header.received_at };
                ("piano", id, processed)
            }
        };
        let fired = match processed.outcome {
            Outcome::Applied => fired.take(),
            // A redelivery: the attempt that applied it may have stopped before its automations ran.
            Outcome::Duplicate if !settings.settings.automations.is_empty() => {
                ledger::pending(self.store.as_ref(), &header.publication, provider, &event_id).await?
            }
            _ => Vec::new(),
        };
        self.run_automations(&settings.settings, &header.publication, provider, &event_id, fired).await?;
        Ok(processed)
    }

    async fn process_logged(&self, message: &Received, tally: &BatchTally) -> bool {
        let span = tracing::info_span!("event", message_id = %message.id, event_id = tracing::field::Empty);
        async {
            let (header, body) = match envelope::decode(&message.body) {
                Ok(decoded) => decoded,
                Err(e) => {
                    tracing::error!(error = %e, attempt = message.receive_count, "not an events-queue message; retried until the dead-letter queue takes it");
                    return false;
                }
            };
            let result = self.apply(&header, body).await;
            tally.note(&header, &result, crate::store::now_epoch());
            match result {
                Ok(processed) => {
                    tracing::info!(outcome = ?processed.outcome, "event processed");
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
        let tally = BatchTally::default();
        let failed = each_concurrently(batch, |m| self.process_logged(m, &tally)).await;
        match &self.tally_writer {
            Some(writer) => writer.add(tally),
            None => tally.flush(self.store.as_ref(), self.queue.as_deref(), crate::store::now_epoch()).await,
        }
        failed
    }
}

/// The time a Piano event's states are ordered by: Piano's own where the payload has it (so a replayed
/// old event cannot overwrite newer state), with the receipt's microsecond within its second to keep
/// two events of one second in delivery order; the receipt time otherwise.
fn state_time_us(event: &crate::piano::webhook::PianoEvent, header: &super::envelope::Header) -> i64 {
    let received = header.received_at_us.unwrap_or(header.received_at.saturating_mul(1_000_000));
    match crate::piano::webhook::event_time_us(event) {
        Some(piano) => piano - piano.rem_euclid(1_000_000) + received.rem_euclid(1_000_000),
        None => received,
    }
}
