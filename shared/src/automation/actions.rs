//! A rule's actions, each keyed by (occurrence, rule, action index) so running it again (a retry, a
//! rerun after a crash) changes nothing: the stage change carries a marker in its own transaction, a
//! task's id and a note's key are derived from that key, and a notification is queued only while its
//! marker is absent (the marker is written once it is queued; a crash in between queues it twice, and
//! the receiver dedupes on its `Idempotency-Key`).

use std::time::Duration;

use super::AutomationError;
use super::fired::Fired;
use super::notify;
use super::template::render;
use crate::domain::activity::{Activity, ActivityKind};
use crate::domain::automation::{Action, ActivityTemplate, Automation, NotifyTarget, TaskTemplate};
use crate::domain::customer::Customer;
use crate::domain::ids::{PublicationId, TaskId};
use crate::domain::task::{Task, TaskSource, TaskStatus};
use crate::queue::{FORWARD, OutMessage, Queue};
use crate::store::repo::customers::{self, CustomerWriteError};
use crate::store::repo::{activities, keys_of, ledger, tasks};
use crate::store::{Store, StoreError};

/// Ledger provider of the markers of stage changes and queued notifications.
pub const ACTION_LEDGER: &str = "automation-action";

/// Rounds of read-modify-write of the customer before a stage change gives up (the event is retried).
const ROUNDS: u32 = 5;

/// One rule running for one fired trigger.
pub(super) struct RuleRun<'a> {
    pub store: &'a dyn Store,
    pub queue: &'a dyn Queue,
    pub publication: &'a PublicationId,
    pub fired: &'a Fired,
    pub rule_key: &'a str,
    pub now: i64,
}

impl RuleRun<'_> {
    /// The key of the rule's `index`-th action for this occurrence.
    fn action_key(&self, index: usize) -> String {
        format!("{}:{}:{index}", self.fired.occurrence(), self.rule_key)
    }

    pub async fn run(&self, rule: &Automation) -> Result<(), AutomationError> {
        let customer = customers::get(self.store, self.publication, &self.fired.customer_id)
            .await?
            .ok_or_else(|| AutomationError::CustomerNotFound(self.fired.customer_id.clone()))?
            .value;
        for (index, action) in rule.actions.iter().enumerate() {
            match action {
                Action::SetStatus(stage) => self.set_status(index, stage).await?,
                Action::CreateTask(template) => self.create_task(index, template, &customer).await?,
                Action::LogActivity(template) => self.log_activity(index, template, &customer).await?,
                Action::Notify(target) => self.notify(index, target, &customer).await?,
            }
        }
        Ok(())
    }

    /// Sets the customer's lifecycle stage, unless a rule of a newer event set one already.
    async fn set_status(&self, index: usize, stage: &str) -> Result<(), AutomationError> {
        let marker = ledger::applied(self.publication, ACTION_LEDGER, &self.action_key(index), self.now)?;
        for round in 0..ROUNDS {
            let found = customers::get(self.store, self.publication, &self.fired.customer_id)
                .await?
                .ok_or_else(|| AutomationError::CustomerNotFound(self.fired.customer_id.clone()))?;
            let held = &found.value;
            if held.lifecycle_stage_at.is_some_and(|t| t > self.fired.at) {
                tracing::info!(stage, held = ?held.lifecycle_stage, "a newer event set the lifecycle stage; kept");
                return Ok(());
            }
            let mut after = held.clone();
            after.lifecycle_stage = Some(stage.to_owned());
            after.lifecycle_stage_at = Some(self.fired.at);
            after.updated_at = self.now;
            match customers::update_with(self.store, held, &after, found.version, vec![marker.clone()]).await {
                Ok(_) => return Ok(()),
                // The marker exists: this very action ran before.
                Err(CustomerWriteError::Extra(0)) => return Ok(()),
                Err(CustomerWriteError::Store(e)) => return Err(e.into()),
                Err(_) => pause(round).await,
            }
        }
        Err(AutomationError::Contention)
    }

    async fn create_task(
        &self,
        index: usize,
        template: &TaskTemplate,
        customer: &Customer,
    ) -> Result<(), AutomationError> {
        let fired = self.fired;
        let mut title = render(&template.title, customer, fired);
        if title.trim().is_empty() {
            title = fired.summary.clone();
        }
        let task = Task {
            id: TaskId::derived(fired.at, &format!("{}:{}", self.publication, self.action_key(index))),
            customer_id: customer.id.clone(),
            title,
            assignee: template.assignee.clone(),
            due_at: template.due_in_days.map(|days| fired.at.saturating_add(i64::from(days) * 86_400)),
            status: TaskStatus::Open,
            created_at: self.now,
            closed_at: None,
            source: Some(TaskSource {
                rule: self.rule_key.to_owned(),
                trigger: fired.trigger,
                event_id: fired.event_id.clone(),
            }),
        };
        if !tasks::create(self.store, self.publication, &task).await? {
            tracing::info!(task = %task.id, "task exists already (a rerun)");
        }
        Ok(())
    }

    async fn log_activity(
        &self,
        index: usize,
        template: &ActivityTemplate,
        customer: &Customer,
    ) -> Result<(), AutomationError> {
        let fired = self.fired;
        let note = Activity {
            key: format!("automation:{}", self.action_key(index)),
            at: fired.at,
            kind: ActivityKind::Note,
            summary: render(&template.message, customer, fired),
            amount: fired.amount.clone(),
            provider: "crm".into(),
            account: None,
            object_id: None,
            event_id: Some(fired.event_id.clone()),
        };
        self.store.write(vec![activities::put(self.publication, &customer.id, &note)?]).await?;
        Ok(())
    }

    async fn notify(&self, index: usize, target: &NotifyTarget, customer: &Customer) -> Result<(), AutomationError> {
        let key = self.action_key(index);
        if self.store.get(&keys_of::event(self.publication, ACTION_LEDGER, &key)).await?.is_some() {
            tracing::info!(action = %key, "notification queued before (a rerun)");
            return Ok(());
        }
        let job = notify::job(self.publication, self.rule_key, self.fired, customer, target)?;
        let body = serde_json::to_string(&job).map_err(|e| AutomationError::Encode(e.to_string()))?;
        self.queue.send(FORWARD.name, &[OutMessage::new(body)]).await?;
        tracing::info!(target_host = %job.target(), "notification queued");
        // Queued: a failure to write the marker only risks a duplicate the receiver can dedupe.
        let marker = ledger::applied(self.publication, ACTION_LEDGER, &key, self.now)?;
        match self.store.write(vec![marker]).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => tracing::warn!(error = %e, action = %key, "notification queued but not marked"),
        }
        Ok(())
    }
}

/// A random pause before round `round` retries, so racing writers stop colliding (full jitter).
async fn pause(round: u32) {
    let cap_ms = (4u64 << round.min(6)).min(250);
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..=cap_ms))).await;
}
