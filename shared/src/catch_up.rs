//! Catch-up after an outage (`crm catch-up`, `POST …/stripe-accounts/{key}/catch-up`): Stripe keeps 30
//! days of events, so the events of an account since the last one the worker applied (less a margin
//! for events created out of order), and every event Stripe has not managed to deliver
//! (`delivery_success=false`), are listed and put on the events queue exactly as the webhook puts
//! them. Events the processed-event ledger already holds are not queued again. An outage of the
//! endpoint, the queue or the worker thus loses nothing, as long as it is caught up within 30 days.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::domain::ids::{AccountKey, PublicationId};
use crate::domain::record::rfc3339;
use crate::queue::{EVENTS, OutMessage, Queue, QueueError};
use crate::store::repo::publications::{self, AccountError};
use crate::store::repo::{ledger, sync_stats};
use crate::store::{Store, StoreError};
use crate::stripe::client::{Params, StripeApi, StripeAuth, StripeError};
use crate::stripe::event::Event;
use crate::stripe::list::{self, Paced};
use crate::sync::envelope::{self, Header, Provider};

/// Stripe keeps events this long (`GET /v1/events`).
pub const RETENTION_SECS: i64 = 30 * 86_400;
/// A gap older than this is close to what Stripe still has: warn, and think of a backfill.
pub const WARN_AFTER_SECS: i64 = 25 * 86_400;
/// Taken off the last applied event's time: Stripe's event times are not strictly in delivery order.
pub const MARGIN_SECS: i64 = 300;
/// Stripe's limit on `types[]` in one request ("an array of up to 20 strings", the list events
/// parameters of Stripe's OpenAPI spec; `type` and `types` exclude each other, so only `types` is sent).
const TYPES_PER_REQUEST: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Stripe API: {0}")]
    Stripe(#[from] StripeError),
    #[error("events queue: {0}")]
    Queue(#[from] QueueError),
    #[error("no event of Stripe account {0} was ever applied: say from when to catch up (since)")]
    NoStart(String),
}

impl CatchUpError {
    /// Whether running the catch-up again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            CatchUpError::Store(e) => e.is_transient(),
            CatchUpError::Stripe(e) => e.is_transient(),
            CatchUpError::Queue(_) => true,
            CatchUpError::Account(_) | CatchUpError::NoStart(_) => false,
        }
    }
}

/// A gap at least this long between an account's consecutive applied events makes the webhook worker
/// queue a catch-up of it. A quiet account's catch-up finds nothing, for four list requests.
pub const AUTOMATIC_GAP_SECS: i64 = 3600;

/// Where an automatic catch-up starts when the worker, at `now`, applies `latest` right after `previous`
/// (both Stripe's `created`): only for a live event (a replay of old ones, or a backlog the queue
/// kept through a worker outage, has no hole to fill) after a gap of `AUTOMATIC_GAP_SECS` or more.
pub fn automatic_since(previous: i64, latest: i64, now: i64) -> Option<i64> {
    let live = latest >= now - AUTOMATIC_GAP_SECS;
    (live && latest - previous >= AUTOMATIC_GAP_SECS).then_some(previous - MARGIN_SECS)
}

/// What to catch up.
#[derive(Debug, Clone)]
pub struct Request {
    pub publication: PublicationId,
    pub account: AccountKey,
    /// Epoch seconds to list from; by default the last applied event's time less `MARGIN_SECS`.
    pub since: Option<i64>,
    /// List and count only: queue nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// RFC 3339: events created from then on were listed (besides the undelivered ones).
    pub since: Option<String>,
    /// Distinct events listed (of the types the CRM applies).
    pub listed: u64,
    /// Listed because Stripe has not delivered them (some may also be in the time range).
    pub undelivered: u64,
    /// Already in the processed-event ledger: not queued again.
    pub already_applied: u64,
    /// Put on the events queue (in a dry run: that would have been).
    pub queued: u64,
    pub dry_run: bool,
    /// The gap is older than 25 days, or reaches past what Stripe keeps (then `crm backfill`).
    pub warnings: Vec<String>,
}

/// Where the last event applied for the account leaves off, from sync health's marker.
async fn last_applied(
    store: &dyn Store,
    publication: &PublicationId,
    key: &AccountKey,
) -> Result<Option<i64>, StoreError> {
    let markers = sync_stats::markers(store, publication).await?;
    Ok(markers
        .into_iter()
        .filter(|m| m.stage == sync_stats::Stage::Applied && m.source.provider == "stripe")
        .filter(|m| m.source.account.as_deref() == Some(key.as_str()))
        .find_map(|m| m.last.event_at))
}

/// The start of the listing and what to warn about, for a gap starting at `start` seen at `now`.
fn window(start: i64, now: i64, request: &Request) -> (i64, Vec<String>) {
    let oldest = now - RETENTION_SECS;
    let days = (now - start) / 86_400;
    let backfill = format!("crm backfill --publication {} --account {}", request.publication, request.account);
    if start < oldest {
        let gone = format!(
            "the gap began {days} days ago, but Stripe keeps events 30 days: what happened before {} is gone \
             from its events; run `{backfill}` to bring the records up to date",
            rfc3339(oldest).unwrap_or_default()
        );
        (oldest, vec![gone])
    } else if start < now - WARN_AFTER_SECS {
        let near = format!(
            "the gap began {days} days ago, close to the 30 days Stripe keeps events: catch up now, or run `{backfill}`"
        );
        (start, vec![near])
    } else {
        (start, Vec::new())
    }
}

/// The list filters: `types[]` in groups Stripe accepts, each with `extra` (`created[gte]`, `delivery_success`).
fn filters(extra: &Params) -> Vec<Params> {
    Event::ENABLED_EVENTS
        .chunks(TYPES_PER_REQUEST)
        .map(|types| extra.clone().list("types", types.iter().copied()))
        .collect()
}

/// Lists the account's missed events and queues them on `queue`'s events queue, one page at a time.
pub async fn run(
    store: &dyn Store,
    stripe: Arc<dyn StripeApi>,
    queue: &dyn Queue,
    request: &Request,
    now: i64,
) -> Result<Report, CatchUpError> {
    let (_, account) = publications::stripe_account(store, &request.publication, &request.account).await?;
    let start = match request.since {
        Some(since) => since,
        None => last_applied(store, &request.publication, &request.account)
            .await?
            .map(|at| at - MARGIN_SECS)
            .ok_or_else(|| CatchUpError::NoStart(request.account.to_string()))?,
    };
    let (start, warnings) = window(start, now, request);
    for warning in &warnings {
        tracing::warn!(account = %request.account, "{warning}");
    }
    let api = Paced::for_key(stripe, &account.secret_key);
    let auth = StripeAuth::from(&account);
    let mut report = Report {
        since: rfc3339(start),
        listed: 0,
        undelivered: 0,
        already_applied: 0,
        queued: 0,
        dry_run: request.dry_run,
        warnings,
    };
    let mut seen = HashSet::new();
    let recent = Params::new().set("created[gte]", start.to_string());
    let undelivered =
        Params::new().set("delivery_success", "false").set("created[gte]", (now - RETENTION_SECS).to_string());
    let lists =
        filters(&recent).into_iter().map(|f| (f, false)).chain(filters(&undelivered).into_iter().map(|f| (f, true)));
    let mut queuer = Queuer { store, queue, request, now, report: &mut report, seen: &mut seen };
    for (filter, is_undelivered) in lists {
        let mut cursor = None;
        loop {
            let page = list::page(&api, &auth, "/v1/events", &filter, cursor.as_deref()).await?;
            queuer.queue_page(&page.data, is_undelivered).await?;
            cursor = page.next_cursor();
            if cursor.is_none() {
                break;
            }
        }
    }
    Ok(report)
}

/// Queues listed events not seen before in this run nor in the ledger.
struct Queuer<'a> {
    store: &'a dyn Store,
    queue: &'a dyn Queue,
    request: &'a Request,
    now: i64,
    report: &'a mut Report,
    seen: &'a mut HashSet<String>,
}

impl Queuer<'_> {
    async fn queue_page(&mut self, events: &[Value], undelivered: bool) -> Result<(), CatchUpError> {
        let mut out = Vec::new();
        for event in events {
            // `list::page` answers only objects with an id.
            let id = event.get("id").and_then(Value::as_str).unwrap_or_default();
            if !self.seen.insert(id.to_owned()) {
                continue;
            }
            self.report.listed += 1;
            self.report.undelivered += u64::from(undelivered);
            if ledger::completed(self.store, &self.request.publication, "stripe", id).await? {
                self.report.already_applied += 1;
                continue;
            }
            // Stripe's API answered it: its type is as good as a checked webhook's.
            let event_type = event.get("type").and_then(Value::as_str).map(str::to_owned);
            let header = Header {
                provider: Provider::Stripe,
                publication: self.request.publication.clone(),
                account: Some(self.request.account.clone()),
                received_at: self.now,
                received_at_us: None,
                event_id: None,
                event_type,
            };
            out.push(OutMessage::new(envelope::encode(&header, &event.to_string())));
        }
        if !self.request.dry_run && !out.is_empty() {
            self.queue.send(EVENTS.name, &out).await?;
        }
        self.report.queued += out.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            publication: PublicationId::parse("daily").unwrap(),
            account: AccountKey::parse("main").unwrap(),
            since: None,
            dry_run: false,
        }
    }

    #[test]
    fn a_live_event_after_an_hour_of_silence_starts_a_catch_up_from_the_one_before() {
        let now = 100 * 86_400;
        assert_eq!(automatic_since(now - 7_200, now - 5, now), Some(now - 7_200 - MARGIN_SECS));
        assert_eq!(automatic_since(now - 3_600, now, now), Some(now - 3_600 - MARGIN_SECS));
        assert_eq!(automatic_since(now - 3_599, now, now), None, "under an hour: Stripe's own retries cover it");
        assert_eq!(automatic_since(now - 9_000, now - 3_601, now), None, "not live: a backlog or a replay");
        assert_eq!(automatic_since(now, now - 60, now), None, "an older event than the last applied");
    }

    #[test]
    fn gaps_near_or_past_stripes_thirty_days_are_warned_of() {
        let now = 100 * 86_400;
        assert_eq!(window(now - 3_600, now, &request()), (now - 3_600, vec![]));
        let (start, near) = window(now - 26 * 86_400, now, &request());
        assert_eq!(start, now - 26 * 86_400);
        assert!(near[0].contains("26 days") && near[0].contains("crm backfill --publication daily --account main"));
        let (start, gone) = window(now - 40 * 86_400, now, &request());
        assert_eq!(start, now - RETENTION_SECS, "Stripe has nothing older to list");
        assert!(gone[0].contains("is gone"), "{gone:?}");
    }

    #[test]
    fn types_go_twenty_at_most_per_request_and_all_of_them() {
        let groups = filters(&Params::new().set("created[gte]", "5"));
        assert_eq!(groups.len(), Event::ENABLED_EVENTS.len().div_ceil(TYPES_PER_REQUEST));
        let encoded: Vec<String> = groups.iter().map(Params::encode).collect();
        assert!(
            encoded.iter().all(|q| q.starts_with("created%5Bgte%5D=5") || q.starts_with("created[gte]=5")),
            "{encoded:?}"
        );
        let types = encoded.iter().map(|q| q.matches("types").count()).collect::<Vec<_>>();
        assert!(types.iter().all(|&n| n <= TYPES_PER_REQUEST));
        assert_eq!(types.iter().sum::<usize>(), Event::ENABLED_EVENTS.len());
    }
}
