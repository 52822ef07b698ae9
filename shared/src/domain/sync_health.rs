//! Sync health's figures and its verdict: per provider and account, the last event received and
//! applied and what the worker did in the last 24 hours; the dead-letter queues' depths; unmapped
//! products and possible duplicates. `verdict` turns them into a status and the sentences (with the
//! command to run) an operator acts on.

use serde::{Deserialize, Serialize};

use super::ids::PublicationId;

/// Which provider and account figures are about (`account`: a Stripe account key; none for Piano).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.account {
            Some(account) => write!(f, "{}/{account}", self.provider),
            None => f.write_str(&self.provider),
        }
    }
}

/// What happened to the events of one source in a while.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counts {
    pub applied: u64,
    /// Recorded but not applied: a type the CRM does not apply, or nothing to attach it to.
    pub ignored: u64,
    /// Delivered again after being applied or ignored: nothing changed (Stripe redelivers at will).
    pub duplicates: u64,
    /// Attempts that failed (a message tried five times counts five).
    pub failed: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.applied += other.applied;
        self.ignored += other.ignored;
        self.duplicates += other.duplicates;
        self.failed += other.failed;
    }

    /// Messages the worker finished with (applied, ignored or found duplicate).
    pub fn processed(&self) -> u64 {
        self.applied + self.ignored + self.duplicates
    }
}

/// One event as sync health shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastEvent {
    /// The provider's event type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The provider's time of the event (Stripe's `created`; a Piano event's is its receipt), epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_at: Option<i64>,
    /// When it was received or applied, epoch seconds.
    pub at: i64,
}

impl LastEvent {
    /// Whether `self` is later than `other` as the last applied event: by the provider's time first, so
    /// an old event applied late (a redrive, a catch-up, a batch that ran slow beside a quicker one)
    /// does not move the source back to where it stood before; by the time applied between equals.
    pub fn later_than(&self, other: &LastEvent) -> bool {
        (self.event_at, self.at) > (other.event_at, other.at)
    }
}

/// Everything known of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHealth {
    pub source: Source,
    /// In the publication's settings (a removed account can still have figures).
    pub configured: bool,
    pub last_received: Option<LastEvent>,
    pub last_applied: Option<LastEvent>,
    /// Latest time the worker finished a message of this source in the last 24 hours.
    pub last_processed_at: Option<i64>,
    pub last_24h: Counts,
}

impl SourceHealth {
    /// A source with no figures yet.
    pub fn new(source: Source, configured: bool) -> Self {
        Self {
            source,
            configured,
            last_received: None,
            last_applied: None,
            last_processed_at: None,
            last_24h: Counts::default(),
        }
    }
}

/// A dead-letter queue and how many messages wait in it (`None`: it could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetters {
    pub queue: &'static str,
    pub redrives_to: &'static str,
    /// Holds events the sync has not applied (not forward jobs or notifications).
    pub events: bool,
    pub depth: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Attention,
    Failing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub status: Status,
    pub actions: Vec<String>,
}

/// What `verdict` judges.
pub struct Facts<'a> {
    pub publication: &'a PublicationId,
    pub sources: &'a [SourceHealth],
    pub dead_letters: &'a [DeadLetters],
    /// (source, product or resource id) of each unmapped product.
    pub unmapped: &'a [(Source, String)],
    pub possible_duplicates: usize,
    pub now: i64,
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// A received event the worker has not finished after this long means it is behind.
pub const LAG_SECS: i64 = 15 * 60;
/// A Stripe account with nothing applied for this long may have missed events (catch-up reads them).
pub const CATCH_UP_AFTER_SECS: i64 = 3 * DAY;

/// The verdict: `failing` when events are not being applied (dead letters, a stalled worker),
/// `attention` for what needs a look, `healthy` when there is nothing to do.
pub fn verdict(facts: &Facts<'_>) -> Verdict {
    let mut failing = Vec::new();
    let mut attention = Vec::new();
    let publication = facts.publication;
    for dlq in facts.dead_letters {
        let redrive = format!("crm dlq redrive {} --dynamodb", dlq.redrives_to);
        match dlq.depth {
            None => attention
                .push(format!("Could not read the depth of {}: check the function's SQS permissions.", dlq.queue)),
            Some(0) => {}
            Some(n) if dlq.events => failing.push(format!(
                "Redrive {n} event{} from {} once the cause is fixed (`crm dlq list --dynamodb` shows them): {redrive}",
                plural(n),
                dlq.queue
            )),
            Some(n) if dlq.redrives_to == crate::queue::JOBS.name => attention.push(format!(
                "{n} backfill slice{} failed repeatedly and wait in {}: GET /admin/publications/{publication}/backfill \
                 shows the job's error; once it is fixed: {redrive}",
                plural(n),
                dlq.queue
            )),
            Some(n) => attention.push(format!(
                "Redrive {n} message{} from {} once the legacy endpoints or notification targets answer: {redrive}",
                plural(n),
                dlq.queue
            )),
        }
    }
    for s in facts.sources {
        judge_source(publication, s, facts.now, &mut failing, &mut attention);
    }
    if !facts.unmapped.is_empty() {
        let listed: Vec<String> = facts.unmapped.iter().map(|(source, id)| format!("{source} {id}")).collect();
        attention.push(format!(
            "Map {} product{} outside the catalogue in settings (`catalogue`, PUT /admin/publications/{publication}): {}",
            listed.len(),
            plural(listed.len() as u64),
            listed.join(", ")
        ));
    }
    if facts.possible_duplicates > 0 {
        let n = facts.possible_duplicates as u64;
        attention.push(format!(
            "Review {n} possible duplicate customer{} (`possibleDuplicates`): same mailbox, or same name and postcode.",
            if n == 1 { " group" } else { " groups" }
        ));
    }
    let status = if !failing.is_empty() {
        Status::Failing
    } else if !attention.is_empty() {
        Status::Attention
    } else {
        Status::Healthy
    };
    failing.extend(attention);
    Verdict { status, actions: failing }
}

fn judge_source(
    publication: &PublicationId,
    s: &SourceHealth,
    now: i64,
    failing: &mut Vec<String>,
    attention: &mut Vec<String>,
) {
    let name = &s.source;
    let time = |at: i64| super::record::rfc3339(at).unwrap_or_else(|| at.to_string());
    if let Some(received) = &s.last_received {
        let waiting = s.last_processed_at.is_none_or(|done| done < received.at);
        if waiting && now - received.at > LAG_SECS {
            let since = s.last_processed_at.map_or_else(|| "not in the last 24 hours".to_owned(), time);
            if s.last_processed_at.is_none_or(|done| now - done > DAY) {
                failing.push(format!(
                    "{name}: events arrive (last {}) but none was applied for over 24 hours (last finished: {since}): \
                     check webhook-worker (its logs and its SQS event source mapping).",
                    time(received.at)
                ));
            } else {
                attention.push(format!(
                    "{name}: the worker is behind: last event received {}, last finished {since}: check webhook-worker's \
                     errors and throttling, and the events queue's depth.",
                    time(received.at)
                ));
            }
        }
    }
    if s.last_24h.failed > 0 {
        let n = s.last_24h.failed;
        attention.push(format!(
            "{name}: {n} failed attempt{} in the last 24 hours: webhook-worker's error logs say why; events that keep \
             failing end in the events dead-letter queue.",
            plural(n)
        ));
    }
    if !s.configured {
        return;
    }
    if s.source.provider == "stripe" {
        let account = s.source.account.as_deref().unwrap_or_default();
        match (&s.last_applied, &s.last_received) {
            (None, None) => attention.push(format!(
                "{name}: no event received yet: create its webhook endpoint with \
                 POST /admin/publications/{publication}/stripe-accounts/{account}/webhook-endpoint"
            )),
            (Some(applied), _) if now - applied.at > CATCH_UP_AFTER_SECS => attention.push(format!(
                "{name}: last event applied {} (over {} days ago): fetch what may have been missed with \
                 `crm catch-up --publication {publication} --account {account}` or \
                 POST /admin/publications/{publication}/stripe-accounts/{account}/catch-up",
                time(applied.at),
                CATCH_UP_AFTER_SECS / DAY
            )),
            _ => {}
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn stripe(account: &str) -> SourceHealth {
        SourceHealth {
            source: Source { provider: "stripe".into(), account: Some(account.into()) },
            configured: true,
            last_received: Some(LastEvent { event_type: None, event_at: None, at: NOW - 60 }),
            last_applied: Some(LastEvent { event_type: None, event_at: Some(NOW - 61), at: NOW - 59 }),
            last_processed_at: Some(NOW - 59),
            last_24h: Counts { applied: 3, ..Counts::default() },
        }
    }

    fn judge(sources: &[SourceHealth], dead_letters: &[DeadLetters]) -> Verdict {
        let publication = PublicationId::parse("daily").unwrap();
        let facts =
            Facts { publication: &publication, sources, dead_letters, unmapped: &[], possible_duplicates: 0, now: NOW };
        verdict(&facts)
    }

    fn dlq(depth: Option<u64>) -> DeadLetters {
        DeadLetters { queue: "events-dlq", redrives_to: "events", events: true, depth }
    }

    #[test]
    fn a_flowing_account_with_empty_dead_letter_queues_is_healthy() {
        assert_eq!(judge(&[stripe("main")], &[dlq(Some(0))]), Verdict { status: Status::Healthy, actions: vec![] });
    }

    #[test]
    fn dead_letters_fail_and_say_how_to_redrive() {
        let v = judge(&[stripe("main")], &[dlq(Some(2))]);
        assert_eq!(v.status, Status::Failing);
        assert!(v.actions[0].starts_with("Redrive 2 events from events-dlq"), "{:?}", v.actions);
        assert!(v.actions[0].ends_with("crm dlq redrive events --dynamodb"));
        assert_eq!(judge(&[stripe("main")], &[dlq(None)]).status, Status::Attention);
    }

    #[test]
    fn events_received_but_none_finished_for_a_day_fail() {
        let mut s = stripe("main");
        s.last_processed_at = None;
        s.last_applied = Some(LastEvent { event_type: None, event_at: None, at: NOW - 2 * DAY });
        s.last_received = Some(LastEvent { event_type: None, event_at: None, at: NOW - 1800 });
        let v = judge(std::slice::from_ref(&s), &[]);
        assert_eq!(v.status, Status::Failing);
        assert!(v.actions[0].contains("none was applied for over 24 hours"), "{:?}", v.actions);
        s.last_received = Some(LastEvent { event_type: None, event_at: None, at: NOW - 60 });
        assert_eq!(judge(&[s], &[]).status, Status::Healthy, "received a minute ago: the worker may be on it");
    }

    #[test]
    fn a_worker_an_hour_behind_needs_attention_but_seconds_do_not() {
        let mut s = stripe("main");
        s.last_processed_at = Some(NOW - 3600);
        s.last_received = Some(LastEvent { event_type: None, event_at: None, at: NOW - 1200 });
        let v = judge(std::slice::from_ref(&s), &[]);
        assert_eq!(v.status, Status::Attention);
        assert!(v.actions[0].contains("the worker is behind"), "{:?}", v.actions);
        s.last_received = Some(LastEvent { event_type: None, event_at: None, at: NOW - 10 });
        assert_eq!(judge(&[s], &[]).status, Status::Healthy, "just received: not late yet");
    }

    #[test]
    fn a_stripe_account_quiet_for_days_suggests_catch_up() {
        let mut s = stripe("books");
        s.last_applied = Some(LastEvent { event_type: None, event_at: None, at: NOW - 4 * DAY });
        s.last_received = None;
        let v = judge(&[s], &[]);
        assert_eq!(v.status, Status::Attention);
        assert!(v.actions[0].contains("`crm catch-up --publication daily --account books`"), "{:?}", v.actions);
        assert!(
            v.actions[0].ends_with("POST /admin/publications/daily/stripe-accounts/books/catch-up"),
            "{:?}",
            v.actions
        );
    }

    #[test]
    fn a_stripe_account_that_never_received_an_event_needs_its_webhook() {
        let mut s = stripe("books");
        (s.last_applied, s.last_received, s.last_processed_at) = (None, None, None);
        let v = judge(&[s], &[]);
        assert!(v.actions[0].contains("/stripe-accounts/books/webhook-endpoint"), "{:?}", v.actions);
    }

    #[test]
    fn the_later_applied_event_is_the_later_one_by_provider_time() {
        let event = |event_at, at| LastEvent { event_type: None, event_at, at };
        assert!(event(Some(NOW), NOW - 10).later_than(&event(Some(NOW - 1), NOW)), "applied earlier, newer");
        assert!(!event(Some(NOW - 3_600), NOW).later_than(&event(Some(NOW), NOW - 10)), "an old event applied late");
        assert!(event(Some(NOW), NOW).later_than(&event(Some(NOW), NOW - 1)), "equal times: applied later");
        assert!(!event(Some(NOW), NOW).later_than(&event(Some(NOW), NOW)), "the same event");
        assert!(event(None, NOW).later_than(&event(None, NOW - 1)), "no provider time: by the time applied");
    }
}
