//! Backfill jobs: one item per (publication, Stripe account), and one for the publication's Piano
//! application, with the job's stages, each with its checkpoint (the cursor or offset after the last
//! page applied), written after every page under the version it was read at, so two runners can never
//! both advance one job.

use serde::{Deserialize, Serialize};

use super::{Versioned, from_item, keys_of, to_doc, values_all};
use crate::domain::ids::{AccountKey, PublicationId};
use crate::store::{Cond, Item, Query, Store, StoreError, WriteOp};

/// The object types a backfill imports, in the order it imports them: the catalogue, then the
/// customers (so every later object finds its record), then what hangs off them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Products,
    Prices,
    Customers,
    Subscriptions,
    Invoices,
    Charges,
    Refunds,
    /// Piano's users, each with its access list.
    PianoUsers,
    PianoSubscriptions,
    /// Piano's conversions that carry a payment.
    PianoPayments,
}

impl ObjectKind {
    /// What a Piano history import lists, in order: users (so later objects find their record), then
    /// subscriptions, then payments.
    pub const PIANO: [ObjectKind; 3] =
        [ObjectKind::PianoUsers, ObjectKind::PianoSubscriptions, ObjectKind::PianoPayments];

    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Products,
        ObjectKind::Prices,
        ObjectKind::Customers,
        ObjectKind::Subscriptions,
        ObjectKind::Invoices,
        ObjectKind::Charges,
        ObjectKind::Refunds,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Products => "products",
            ObjectKind::Prices => "prices",
            ObjectKind::Customers => "customers",
            ObjectKind::Subscriptions => "subscriptions",
            ObjectKind::Invoices => "invoices",
            ObjectKind::Charges => "charges",
            ObjectKind::Refunds => "refunds",
            ObjectKind::PianoUsers => "users",
            ObjectKind::PianoSubscriptions => "subscriptions",
            ObjectKind::PianoPayments => "payments",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Started, or paused between two runs (a Lambda's time limit, an interrupted `crm backfill`).
    Running,
    Done,
    /// Stopped for good (Stripe refused the key); `error` says why.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub kind: ObjectKind,
    /// The id after which the next page starts; `None` before the first page.
    pub cursor: Option<String>,
    pub done: bool,
    /// Objects listed and applied.
    pub objects: u64,
    /// Objects that could not be applied (malformed), counted and skipped.
    pub skipped: u64,
    /// The creation time of the last object listed: lists go from the newest back, so this is how far
    /// back into the account's history the stage has come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached: Option<i64>,
    /// How many objects the provider said the list holds (Piano's `total`), for progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Whose history a job imports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobProvider {
    /// One Stripe account (`BackfillJob::account`).
    #[default]
    Stripe,
    /// The publication's Piano application.
    Piano,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillJob {
    pub id: String,
    #[serde(default)]
    pub provider: JobProvider,
    /// The Stripe account; `None` for Piano.
    #[serde(default)]
    pub account: Option<AccountKey>,
    pub state: JobState,
    /// Requests per second the job keeps under.
    pub rate: u32,
    pub started_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// Stripe requests made, and how many of them Stripe answered 429 (counted by the job's runners).
    pub requests: u64,
    pub rate_limited: u64,
    /// When the account was created at Stripe: with `Stage::reached`, how far a stage has to go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_from: Option<i64>,
    pub stages: Vec<Stage>,
    /// The first objects skipped (`kind/id: reason`), at most `SKIPPED_KEPT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The runner holding the job until `lease_until` (epoch seconds); another may take over after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    #[serde(default)]
    pub lease_until: i64,
}

/// Skipped objects listed by id in the job (all are counted).
pub const SKIPPED_KEPT: usize = 100;

impl BackfillJob {
    /// A Stripe account's job.
    pub fn new(account: AccountKey, rate: u32, now: i64) -> Self {
        Self::of(JobProvider::Stripe, Some(account), &ObjectKind::ALL, rate, now)
    }

    /// The Piano application's job.
    pub fn piano(rate: u32, now: i64) -> Self {
        Self::of(JobProvider::Piano, None, &ObjectKind::PIANO, rate, now)
    }

    fn of(provider: JobProvider, account: Option<AccountKey>, kinds: &[ObjectKind], rate: u32, now: i64) -> Self {
        Self {
            id: ulid::Ulid::new().to_string().to_lowercase(),
            provider,
            account,
            state: JobState::Running,
            rate,
            started_at: now,
            updated_at: now,
            finished_at: None,
            requests: 0,
            rate_limited: 0,
            history_from: None,
            stages: kinds
                .iter()
                .map(|&kind| Stage {
                    kind,
                    cursor: None,
                    done: false,
                    objects: 0,
                    skipped: 0,
                    reached: None,
                    total: None,
                })
                .collect(),
            skipped_ids: Vec::new(),
            error: None,
            runner: None,
            lease_until: 0,
        }
    }

    pub fn objects(&self) -> u64 {
        self.stages.iter().map(|s| s.objects).sum()
    }

    /// Whether a runner other than `runner` holds the job at `now`.
    pub fn held_by_other(&self, runner: &str, now: i64) -> bool {
        self.state == JobState::Running && self.lease_until > now && self.runner.as_deref().is_some_and(|r| r != runner)
    }
}

pub async fn get(
    store: &dyn Store,
    publication: &PublicationId,
    account: &AccountKey,
) -> Result<Option<Versioned<BackfillJob>>, StoreError> {
    store.get(&keys_of::backfill(publication, account)).await?.map(from_item).transpose()
}

/// The Piano application's job.
pub async fn get_piano(
    store: &dyn Store,
    publication: &PublicationId,
) -> Result<Option<Versioned<BackfillJob>>, StoreError> {
    store.get(&keys_of::piano_backfill(publication)).await?.map(from_item).transpose()
}

/// Every account's latest job, and the Piano application's.
pub async fn list(store: &dyn Store, publication: &PublicationId) -> Result<Vec<BackfillJob>, StoreError> {
    values_all(store, Query::new(crate::store::Index::Primary, keys_of::backfill_partition(publication))).await
}

/// Writes `job` if the item is still at `version` (`None`: absent); `ConditionFailed` otherwise.
/// Returns the new version.
pub async fn save(
    store: &dyn Store,
    publication: &PublicationId,
    job: &BackfillJob,
    version: Option<u64>,
) -> Result<u64, StoreError> {
    let next = version.map_or(1, |v| v + 1);
    let key = match &job.account {
        Some(account) => keys_of::backfill(publication, account),
        None => keys_of::piano_backfill(publication),
    };
    let item = Item::new(key, to_doc(job)?).with_version(next);
    let cond = version.map_or(Cond::NotExists, Cond::Version);
    store.write(vec![WriteOp::put(item, cond)]).await?;
    Ok(next)
}
