//! `PianoRunner`: the Piano history import of a publication's application. Users (each with its access
//! list), subscriptions and payments are listed page by page at the job's request rate and applied
//! by the webhook path's own code (`sync::piano::apply`, `backfill::piano_objects`), with the list
//! offset checkpointed after every page under the same lease as the Stripe backfill. As for webhooks,
//! a Piano user joins an existing record only on evidence (`sync::link`): otherwise it gets its own,
//! paired with the email's holder as a possible duplicate, and the reader's first visit links them.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;

use super::piano_objects as objects;
use super::run::{backoff, claim, conclude, open, save_checkpoint};
use super::{BackfillError, Stop};
use crate::domain::ids::PublicationId;
use crate::domain::settings::{PianoSettings, PublicationSettings};
use crate::piano::client::{PianoApi, PianoError, PianoList, PianoPage, base_for};
use crate::store::repo::backfill::{self as jobs, BackfillJob, JobState, ObjectKind, SKIPPED_KEPT};
use crate::store::repo::publications;
use crate::store::{Store, now_epoch};
use crate::sync::{FiredSink, piano as sync};

/// Requests per second when the operator names none: well under what Piano's API allows an application.
pub const DEFAULT_RATE: u32 = 10;
/// Objects per list request.
pub const PAGE: u32 = 100;
/// Users of a page applied at once (each also lists its access).
const CONCURRENCY: usize = 8;
/// Attempts at one list request or one object whose calls fail transiently, before the run gives up.
const ATTEMPTS: u32 = 5;

pub struct PianoRunner {
    store: Arc<dyn Store>,
    piano: Arc<dyn PianoApi>,
    /// `CRM_PIANO_API_BASE`, when every region's calls go elsewhere (tests).
    base_override: Option<String>,
}

/// The publication's settings and its Piano application's.
async fn piano_settings(
    store: &dyn Store,
    publication: &PublicationId,
) -> Result<(PublicationSettings, PianoSettings), BackfillError> {
    let settings = publications::get(store, publication)
        .await?
        .ok_or_else(|| BackfillError::NoPiano(publication.to_string()))?
        .value
        .settings;
    let piano = settings.piano.clone().ok_or_else(|| BackfillError::NoPiano(publication.to_string()))?;
    Ok((settings, piano))
}

impl PianoRunner {
    pub fn new(store: Arc<dyn Store>, piano: Arc<dyn PianoApi>, base_override: Option<String>) -> Self {
        Self { store, piano, base_override }
    }

    /// The running import as it is, otherwise a new one at `rate` requests per second
    /// (`DEFAULT_RATE` by default). Answers whether it created one.
    pub async fn start(
        &self,
        publication: &PublicationId,
        rate: Option<u32>,
    ) -> Result<(BackfillJob, bool), BackfillError> {
        piano_settings(self.store.as_ref(), publication).await?;
        let existing = jobs::get_piano(self.store.as_ref(), publication).await?;
        let fresh = |rate| BackfillJob::piano(rate, now_epoch());
        open(self.store.as_ref(), publication, existing, rate.unwrap_or(DEFAULT_RATE), fresh).await
    }

    /// Advances the running import until it is done or `stop` comes (see `Runner::run`).
    pub async fn run(
        &self,
        publication: &PublicationId,
        stop: &Stop,
        progress: &(dyn Fn(&BackfillJob) + Sync),
    ) -> Result<BackfillJob, BackfillError> {
        let store = self.store.as_ref();
        let (settings, piano) = piano_settings(store, publication).await?;
        let found =
            jobs::get_piano(store, publication).await?.ok_or_else(|| BackfillError::NotStarted("piano".into()))?;
        if found.value.state != JobState::Running {
            return Ok(found.value);
        }
        let (mut job, mut version) = claim(store, publication, found).await?;
        let rate = NonZeroU32::new(job.rate).ok_or(BackfillError::BadRate)?;
        let mut quiet = settings;
        // History must not send win-back emails.
        quiet.automations.clear();
        let session = Session {
            store,
            api: self.piano.as_ref(),
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(NonZeroU32::MIN)),
            calls: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            sequence: AtomicU64::new(0),
            base: base_for(piano.region, self.base_override.as_deref()),
            piano: &piano,
            publication,
            quiet: &quiet,
            job_id: job.id.clone(),
            stop,
        };
        let result = session.advance(&mut job, &mut version, progress).await;
        job.requests += session.calls.load(Ordering::Relaxed);
        job.rate_limited += session.retried.load(Ordering::Relaxed);
        conclude(store, publication, job, version, result, progress).await
    }
}

struct Session<'a> {
    store: &'a dyn Store,
    api: &'a dyn PianoApi,
    limiter: DefaultDirectRateLimiter,
    calls: AtomicU64,
    /// List requests answered with a failure that may pass (429 among them) and waited out.
    retried: AtomicU64,
    /// Orders the states this run applies: each gets the next microsecond after the page's listing.
    sequence: AtomicU64,
    base: String,
    piano: &'a PianoSettings,
    publication: &'a PublicationId,
    quiet: &'a PublicationSettings,
    job_id: String,
    stop: &'a Stop,
}

impl Session<'_> {
    async fn advance(
        &self,
        job: &mut BackfillJob,
        version: &mut u64,
        progress: &(dyn Fn(&BackfillJob) + Sync),
    ) -> Result<(), BackfillError> {
        for index in 0..job.stages.len() {
            while !job.stages[index].done {
                let stage = &job.stages[index];
                let offset = stage.cursor.as_deref().and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
                let list = match stage.kind {
                    ObjectKind::PianoUsers => PianoList::Users,
                    ObjectKind::PianoSubscriptions => PianoList::Subscriptions,
                    ObjectKind::PianoPayments => PianoList::Conversions,
                    other => return Err(BackfillError::WrongKind(other.name())),
                };
                let Some(page) = self.fetch(list, offset).await? else { return Ok(()) };
                let listed_at_us = now_us();
                let (applied, skipped) = self.apply_page(job.stages[index].kind, &page.items, listed_at_us).await?;
                let stage = &mut job.stages[index];
                let next = offset + page.items.len() as u64;
                stage.objects += applied;
                stage.skipped += skipped.len() as u64;
                stage.cursor = Some(next.to_string());
                stage.total = page.total.or(stage.total);
                stage.done = page.items.len() < PAGE as usize || page.total.is_some_and(|t| next >= t);
                let room = SKIPPED_KEPT.saturating_sub(job.skipped_ids.len());
                job.skipped_ids.extend(skipped.into_iter().take(room));
                save_checkpoint(self.store, self.publication, job, version, progress).await?;
                if self.stop.reached() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// One paced request.
    async fn call(&self, list: PianoList<'_>, offset: u64) -> Result<PianoPage, PianoError> {
        self.limiter.until_ready().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.api.list(&self.base, &self.piano.aid, &self.piano.api_token, list, offset, PAGE).await
    }

    /// A page, failures that may pass waited out until the stop; `None` if the stop came first.
    async fn fetch(&self, list: PianoList<'_>, offset: u64) -> Result<Option<PianoPage>, BackfillError> {
        let mut attempt = 0;
        loop {
            match self.call(list, offset).await {
                Ok(page) => return Ok(Some(page)),
                Err(e) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    self.retried.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(attempt);
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "Piano list page failed; waiting");
                    if self.stop.sleep(wait).await {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Applies a page's objects, concurrently; answers how many were applied and why the others were skipped.
    async fn apply_page(
        &self,
        kind: ObjectKind,
        items: &[Value],
        listed_at_us: i64,
    ) -> Result<(u64, Vec<String>), BackfillError> {
        let work: Vec<_> = items.iter().map(|item| self.apply_item(kind, item, listed_at_us)).collect();
        let results: Vec<Result<(u64, Vec<String>), BackfillError>> =
            futures::stream::iter(work).buffer_unordered(CONCURRENCY).collect().await;
        let (mut applied, mut skipped) = (0, Vec::new());
        for result in results {
            let (a, s) = result?;
            applied += a;
            skipped.extend(s);
        }
        Ok((applied, skipped))
    }

    /// One listed object (a user with its access list).
    async fn apply_item(
        &self,
        kind: ObjectKind,
        item: &Value,
        listed_at_us: i64,
    ) -> Result<(u64, Vec<String>), BackfillError> {
        let mapped = match kind {
            ObjectKind::PianoUsers => objects::user(item).map(Some),
            ObjectKind::PianoSubscriptions => objects::subscription(item).map(Some),
            ObjectKind::PianoPayments => objects::payment(item),
            other => return Err(BackfillError::WrongKind(other.name())),
        };
        let mut events = match mapped {
            Ok(Some(mapped)) => vec![mapped],
            // A conversion without a payment: nothing of it is kept.
            Ok(None) => return Ok((0, Vec::new())),
            Err(reason) => return Ok((0, vec![format!("{}: {reason}", kind.name())])),
        };
        let mut skipped = Vec::new();
        if kind == ObjectKind::PianoUsers
            && let Some(uid) = events[0].1.uid.clone()
        {
            for access in self.accesses(&uid).await? {
                match objects::access(&uid, &access) {
                    Ok(mapped) => events.push(mapped),
                    Err(reason) => skipped.push(format!("access of {uid}: {reason}")),
                }
            }
        }
        let mut applied = 0;
        for (id, event) in events {
            match self.apply(kind, &id, &event, listed_at_us).await? {
                None => applied += 1,
                Some(reason) => skipped.push(reason),
            }
        }
        Ok((applied, skipped))
    }

    /// Every access of user `uid`.
    async fn accesses(&self, uid: &str) -> Result<Vec<Value>, BackfillError> {
        let mut all = Vec::new();
        loop {
            let Some(page) = self.fetch(PianoList::Accesses { uid }, all.len() as u64).await? else { return Ok(all) };
            let count = page.items.len();
            all.extend(page.items);
            if count < PAGE as usize || page.total.is_some_and(|t| all.len() as u64 >= t) {
                return Ok(all);
            }
        }
    }

    /// Applies one event as its webhook would be; answers why it was skipped, if it was.
    async fn apply(
        &self,
        kind: ObjectKind,
        id: &str,
        event: &crate::piano::webhook::PianoEvent,
        listed_at_us: i64,
    ) -> Result<Option<String>, BackfillError> {
        // One per job, kind and object: a page applied again after an interruption is a duplicate;
        // a later import applies the object again.
        let event_id = format!("pn_import_{}_{}_{id}", self.job_id, kind.name());
        let as_of_us = listed_at_us + self.sequence.fetch_add(1, Ordering::Relaxed) as i64;
        let mut attempt = 0;
        loop {
            let fired = FiredSink::default();
            let delivery = sync::Delivery {
                publication: self.publication,
                settings: self.quiet,
                event_id: &event_id,
                event,
                fetched: None,
                received_at: as_of_us / 1_000_000,
                received_at_us: as_of_us,
                fired: &fired,
                now: now_epoch(),
            };
            match sync::apply(self.store, &delivery).await {
                Ok(_) => return Ok(None),
                Err(e) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt) / 4).await;
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, object = %event_id, "listed Piano object skipped");
                    return Ok(Some(format!("{}/{id}: {e}", kind.name())));
                }
            }
        }
    }
}

fn now_us() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}
