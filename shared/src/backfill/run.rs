//! `Runner`: advances a backfill job page by page. The next page is fetched while the current one is
//! applied (so the request rate, not the store, sets the pace), a page's objects are applied
//! concurrently one customer at a time, and the checkpoint is written after the whole page.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::BackfillError;
use super::objects;
use crate::domain::ids::{AccountKey, PublicationId};
use crate::domain::settings::{PublicationSettings, StripeAccount};
use crate::store::repo::backfill::{self as jobs, BackfillJob, JobState, ObjectKind, SKIPPED_KEPT};
use crate::store::repo::publications;
use crate::store::{Store, StoreError, now_epoch};
use crate::stripe::client::{Params, StripeApi, StripeAuth};
use crate::stripe::list::{self, Paced, Page};
use crate::sync::identity::IdentityCache;
use crate::sync::{FiredSink, stripe};

/// How long a runner holds a job after its last checkpoint; a crashed runner's job is free after it.
pub const LEASE_SECONDS: i64 = 60;
/// Customers whose objects are applied at once: a whole page. Their writes share the embedded store's
/// commits (group commit), so a page costs a few commits' latency, not a hundred.
const CONCURRENCY: usize = list::PAGE_LIMIT as usize;
/// Attempts at one object whose store or Stripe calls fail transiently, before the run gives up.
const OBJECT_ATTEMPTS: u32 = 5;
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Pages listed ahead of the one being applied.
const AHEAD: usize = 2;

/// When a run stops: between pages, once the deadline (a Lambda's time limit) or the token (Ctrl-C)
/// is reached. The job is left `Running`, its lease released, for the next run to resume.
#[derive(Clone, Default)]
pub struct Stop {
    deadline: Option<Instant>,
    token: CancellationToken,
}

impl Stop {
    pub fn never() -> Self {
        Self::default()
    }

    pub fn at(deadline: Instant) -> Self {
        Self { deadline: Some(deadline), token: CancellationToken::new() }
    }

    pub fn on(token: CancellationToken) -> Self {
        Self { deadline: None, token }
    }

    /// Also stops when `token` is cancelled (a shutdown).
    pub fn or_on(self, token: CancellationToken) -> Self {
        Self { token, ..self }
    }

    pub(super) fn reached(&self) -> bool {
        self.token.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Waits `wait` unless the stop comes first; answers whether it did.
    pub(super) async fn sleep(&self, wait: Duration) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() + wait >= d) {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = self.token.cancelled() => true,
        }
    }
}

/// A page and when it was requested: the provider time of the states it carries.
struct Listed {
    page: Page,
    listed_at: i64,
}

#[derive(Default)]
struct Applied {
    objects: u64,
    skipped: Vec<String>,
}

/// What one run works with, for one job.
struct Session<'a> {
    store: &'a dyn Store,
    identities: &'a IdentityCache,
    api: &'a Paced,
    auth: StripeAuth,
    publication: &'a PublicationId,
    account: &'a StripeAccount,
    /// The publication's settings without automations: history must not send win-back emails.
    quiet: PublicationSettings,
    job_id: String,
    stop: &'a Stop,
    rate_limited: AtomicU64,
}

pub struct Runner {
    store: Arc<dyn Store>,
    stripe: Arc<dyn StripeApi>,
    identities: IdentityCache,
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, stripe: Arc<dyn StripeApi>) -> Self {
        Self { store, stripe, identities: IdentityCache::default() }
    }

    /// The account's job: the running one as it is, otherwise a new one (at `rate` requests per
    /// second, by default the key's: `list::default_rate`). Answers whether it created one.
    pub async fn start(
        &self,
        publication: &PublicationId,
        key: &AccountKey,
        rate: Option<u32>,
    ) -> Result<(BackfillJob, bool), BackfillError> {
        let (_, account) = publications::stripe_account(self.store.as_ref(), publication, key).await?;
        let rate = rate.unwrap_or_else(|| list::default_rate(&account.secret_key));
        let existing = jobs::get(self.store.as_ref(), publication, key).await?;
        open(self.store.as_ref(), publication, existing, rate, |rate| BackfillJob::new(key.clone(), rate, now_epoch()))
            .await
    }

    /// Advances the account's running job until it is done or `stop` comes, calling `progress` after
    /// every checkpoint; answers the job as last saved (`Running` when it stopped early).
    pub async fn run(
        &self,
        publication: &PublicationId,
        key: &AccountKey,
        stop: &Stop,
        progress: &(dyn Fn(&BackfillJob) + Sync),
    ) -> Result<BackfillJob, BackfillError> {
        let (settings, account) = publications::stripe_account(self.store.as_ref(), publication, key).await?;
        let found = jobs::get(self.store.as_ref(), publication, key)
            .await?
            .ok_or_else(|| BackfillError::NotStarted(key.to_string()))?;
        if found.value.state != JobState::Running {
            return Ok(found.value);
        }
        let (mut job, mut version) = claim(self.store.as_ref(), publication, found).await?;
        let rate = NonZeroU32::new(job.rate).ok_or(BackfillError::BadRate)?;
        let api = Paced::new(self.stripe.clone(), rate);
        let mut quiet = settings.clone();
        quiet.automations.clear();
        let session = Session {
            store: self.store.as_ref(),
            identities: &self.identities,
            api: &api,
            auth: StripeAuth::from(&account),
            publication,
            account: &account,
            quiet,
            job_id: job.id.clone(),
            stop,
            rate_limited: AtomicU64::new(0),
        };
        let result = session.advance(&mut job, &mut version, progress).await;
        job.requests += api.calls();
        job.rate_limited += session.rate_limited.load(Ordering::Relaxed);
        conclude(self.store.as_ref(), publication, job, version, result, progress).await
    }
}

/// The running job `existing` as it is, else a new one (`fresh` at `rate`, 1 to 100 requests per
/// second) in its place. Answers whether it created one.
pub(super) async fn open(
    store: &dyn Store,
    publication: &PublicationId,
    existing: Option<crate::store::repo::Versioned<BackfillJob>>,
    rate: u32,
    fresh: impl FnOnce(u32) -> BackfillJob,
) -> Result<(BackfillJob, bool), BackfillError> {
    if !(1..=100).contains(&rate) {
        return Err(BackfillError::BadRate);
    }
    if let Some(found) = existing.as_ref().filter(|j| j.value.state == JobState::Running) {
        return Ok((found.value.clone(), false));
    }
    let job = fresh(rate);
    jobs::save(store, publication, &job, existing.map(|j| j.version)).await.map_err(lease_lost)?;
    Ok((job, true))
}

/// Takes a running job for this run, under a lease; `Busy` while another runner holds it.
pub(super) async fn claim(
    store: &dyn Store,
    publication: &PublicationId,
    found: crate::store::repo::Versioned<BackfillJob>,
) -> Result<(BackfillJob, u64), BackfillError> {
    let (mut job, version) = (found.value, found.version);
    let runner = ulid::Ulid::new().to_string();
    let now = now_epoch();
    if job.held_by_other(&runner, now) {
        return Err(BackfillError::Busy { until: job.lease_until });
    }
    job.runner = Some(runner);
    job.lease_until = now + LEASE_SECONDS;
    let version = jobs::save(store, publication, &job, Some(version)).await.map_err(lease_lost)?;
    Ok((job, version))
}

/// Records how a run ended: done once every stage is, failed on an error that will not pass (the
/// error kept), otherwise released for the next run (a transient error is answered too).
pub(super) async fn conclude(
    store: &dyn Store,
    publication: &PublicationId,
    mut job: BackfillJob,
    version: u64,
    result: Result<(), BackfillError>,
    progress: &(dyn Fn(&BackfillJob) + Sync),
) -> Result<BackfillJob, BackfillError> {
    job.updated_at = now_epoch();
    job.lease_until = 0;
    match result {
        Ok(()) if job.stages.iter().all(|s| s.done) => {
            job.state = JobState::Done;
            job.finished_at = Some(job.updated_at);
        }
        Ok(()) => {}
        Err(e) if e.is_transient() => {
            // Released for the next run; a lost lease belongs to the runner that took it.
            if !matches!(e, BackfillError::LeaseLost) {
                jobs::save(store, publication, &job, Some(version)).await.map_err(lease_lost)?;
            }
            return Err(e);
        }
        Err(e) => {
            job.state = JobState::Failed;
            job.error = Some(e.to_string());
            job.finished_at = Some(job.updated_at);
        }
    }
    jobs::save(store, publication, &job, Some(version)).await.map_err(lease_lost)?;
    progress(&job);
    Ok(job)
}

/// Saves a page's checkpoint under the job's version, renewing the lease, and reports progress.
pub(super) async fn save_checkpoint(
    store: &dyn Store,
    publication: &PublicationId,
    job: &mut BackfillJob,
    version: &mut u64,
    progress: &(dyn Fn(&BackfillJob) + Sync),
) -> Result<(), BackfillError> {
    let now = now_epoch();
    job.updated_at = now;
    job.lease_until = now + LEASE_SECONDS;
    *version = jobs::save(store, publication, job, Some(*version)).await.map_err(lease_lost)?;
    progress(job);
    Ok(())
}

/// A checkpoint that fails its version condition: another runner has the job.
pub(super) fn lease_lost(e: StoreError) -> BackfillError {
    match e {
        StoreError::ConditionFailed { .. } => BackfillError::LeaseLost,
        other => other.into(),
    }
}

pub(super) fn backoff(attempt: u32) -> Duration {
    (Duration::from_secs(1) * 2u32.saturating_pow(attempt.min(6))).min(MAX_WAIT)
}

impl Session<'_> {
    async fn advance(
        &self,
        job: &mut BackfillJob,
        version: &mut u64,
        progress: &(dyn Fn(&BackfillJob) + Sync),
    ) -> Result<(), BackfillError> {
        if job.history_from.is_none() {
            job.history_from = self.account_created().await;
        }
        // The fetcher lists pages at the request rate, up to `AHEAD` pages in front of the applier and
        // on into the next object type, so applying and checkpointing never hold a request back. The
        // applier takes the pages in order: customers are in before their subscriptions are applied.
        let stages: Vec<(usize, ObjectKind, Option<String>)> = job
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.done)
            .map(|(index, s)| (index, s.kind, s.cursor.clone()))
            .collect();
        let (pages, mut listed) = tokio::sync::mpsc::channel(AHEAD);
        let fetcher = self.fetch_pages(stages, pages);
        let applier = async {
            while let Some((index, page)) = listed.recv().await {
                // `None`: the stop came while a rate limit was waited out.
                let Some(page) = page? else { return Ok::<(), BackfillError>(()) };
                self.checkpoint(job, index, page, version, progress).await?;
                if self.stop.reached() {
                    return Ok(());
                }
            }
            Ok(())
        };
        let ((), applied) = tokio::join!(fetcher, applier);
        applied
    }

    /// Lists each stage from its cursor on, sending every page (with its stage's index) to the
    /// applier, until the last page of the last stage, the stop, a failure (sent too) or the applier
    /// hanging up.
    async fn fetch_pages(
        &self,
        stages: Vec<(usize, ObjectKind, Option<String>)>,
        pages: tokio::sync::mpsc::Sender<(usize, Result<Option<Listed>, BackfillError>)>,
    ) {
        for (index, kind, mut cursor) in stages {
            loop {
                let fetched = self.fetch(kind, cursor.clone()).await;
                let (last, next) = match &fetched {
                    Ok(Some(listed)) => (false, listed.page.next_cursor()),
                    _ => (true, None),
                };
                if pages.send((index, fetched)).await.is_err() || last || self.stop.reached() {
                    return;
                }
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
    }

    /// Applies a page of stage `index` and writes the stage's checkpoint after it.
    async fn checkpoint(
        &self,
        job: &mut BackfillJob,
        index: usize,
        listed: Listed,
        version: &mut u64,
        progress: &(dyn Fn(&BackfillJob) + Sync),
    ) -> Result<(), BackfillError> {
        let applied = self.apply_page(job.stages[index].kind, &listed).await?;
        let stage = &mut job.stages[index];
        stage.objects += applied.objects;
        stage.skipped += applied.skipped.len() as u64;
        if let Some(last) = listed.page.data.last() {
            stage.cursor = last["id"].as_str().map(str::to_owned);
            stage.reached = objects::created(last).or(stage.reached);
        }
        stage.done = !listed.page.has_more;
        let room = SKIPPED_KEPT.saturating_sub(job.skipped_ids.len());
        job.skipped_ids.extend(applied.skipped.into_iter().take(room));
        save_checkpoint(self.store, self.publication, job, version, progress).await
    }

    /// When the account was created (`GET /v1/account`), for estimating how far stages have to go;
    /// `None` when a restricted key may not read it.
    async fn account_created(&self) -> Option<i64> {
        match self.api.get(&self.auth, "/v1/account", &Params::new()).await {
            Ok(account) => account.get("created").and_then(Value::as_i64),
            Err(e) => {
                tracing::info!(error = %e, "account creation time unknown; progress shown without an estimate");
                None
            }
        }
    }

    /// A page, retrying what Stripe may answer later (429 among them) until the stop; `None` if it came first.
    async fn fetch(&self, kind: ObjectKind, cursor: Option<String>) -> Result<Option<Listed>, BackfillError> {
        let path = objects::path(kind).ok_or(BackfillError::WrongKind(kind.name()))?;
        let mut attempt = 0;
        loop {
            let listed_at = now_epoch();
            match list::page(self.api, &self.auth, path, &objects::filters(kind), cursor.as_deref()).await {
                Ok(page) => return Ok(Some(Listed { page, listed_at })),
                Err(e) if e.is_transient() => {
                    if e.status() == Some(429) {
                        self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    }
                    attempt += 1;
                    let wait = backoff(attempt);
                    tracing::warn!(error = %e, kind = kind.name(), wait_ms = wait.as_millis() as u64, "list page failed; waiting");
                    if self.stop.sleep(wait).await {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Applies a page: one customer's objects in list order, customers concurrently.
    async fn apply_page(&self, kind: ObjectKind, listed: &Listed) -> Result<Applied, BackfillError> {
        let mut groups: Vec<(Option<&str>, Vec<&Value>)> = Vec::new();
        for object in &listed.page.data {
            let owner = objects::owner(kind, object);
            match groups.iter_mut().find(|(o, _)| owner.is_some() && *o == owner) {
                Some((_, members)) => members.push(object),
                None => groups.push((owner, vec![object])),
            }
        }
        // Futures made by a method, not a closure: the stream stays `Send` for every lifetime.
        let work: Vec<_> =
            groups.into_iter().map(|(_, members)| self.apply_group(kind, members, listed.listed_at)).collect();
        let results: Vec<Result<Applied, BackfillError>> =
            futures::stream::iter(work).buffer_unordered(CONCURRENCY).collect().await;
        let mut total = Applied::default();
        for result in results {
            let applied = result?;
            total.objects += applied.objects;
            total.skipped.extend(applied.skipped);
        }
        Ok(total)
    }

    async fn apply_group(
        &self,
        kind: ObjectKind,
        members: Vec<&Value>,
        listed_at: i64,
    ) -> Result<Applied, BackfillError> {
        let mut done = Applied::default();
        for object in members {
            match self.apply_object(kind, object, listed_at).await? {
                Some(reason) => done.skipped.push(reason),
                None => done.objects += 1,
            }
        }
        Ok(done)
    }

    /// Applies one object; answers why it was skipped, if it was.
    async fn apply_object(
        &self,
        kind: ObjectKind,
        object: &Value,
        listed_at: i64,
    ) -> Result<Option<String>, BackfillError> {
        let label = format!("{}/{}", kind.name(), object["id"].as_str().unwrap_or_default());
        let event = match objects::event(kind, &self.job_id, object, listed_at) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(error = %reason, object = %label, "listed object skipped");
                return Ok(Some(format!("{label}: {reason}")));
            }
        };
        let mut attempt = 0;
        loop {
            let fired = FiredSink::default();
            let ctx = stripe::Context {
                store: self.store,
                identities: self.identities,
                api: self.api,
                publication: self.publication,
                account: self.account,
                settings: &self.quiet,
                fired: &fired,
                as_of: Some(listed_at),
                now: now_epoch(),
            };
            match stripe::apply(&ctx, &event).await {
                Ok(_) => return Ok(None),
                Err(e) if e.is_transient() && attempt + 1 < OBJECT_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(error = %e, object = %label, "applying a listed object failed; retrying");
                    tokio::time::sleep(backoff(attempt) / 4).await;
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, object = %label, "listed object skipped");
                    return Ok(Some(format!("{label}: {e}")));
                }
            }
        }
    }
}
