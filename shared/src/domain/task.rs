//! Follow-up tasks (automation `createTask`): a title for someone to act on, linked to a customer,
//! open until closed through `PATCH …/tasks/{id}`.

use serde::{Deserialize, Serialize};

use super::automation::Trigger;
use super::ids::{CustomerId, TaskId};
use super::record::rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Done,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 2] = [TaskStatus::Open, TaskStatus::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// What made a task: the automation rule and the event that fired it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSource {
    pub rule: String,
    pub trigger: Trigger,
    pub event_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: TaskId,
    pub customer_id: CustomerId,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    pub status: TaskStatus,
    pub created_at: i64,
    /// When it was last marked done (epoch seconds); `None` while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TaskSource>,
}

/// A task as the API shows it: times in RFC 3339.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub id: TaskId,
    pub customer_id: CustomerId,
    pub title: String,
    pub assignee: Option<String>,
    pub due_at: Option<String>,
    pub status: TaskStatus,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
    /// The automation rule that created it.
    pub rule: Option<String>,
    pub trigger: Option<Trigger>,
    pub event_id: Option<String>,
}

impl From<Task> for TaskView {
    fn from(t: Task) -> Self {
        let (rule, trigger, event_id) = match t.source {
            Some(s) => (Some(s.rule), Some(s.trigger), Some(s.event_id)),
            None => (None, None, None),
        };
        Self {
            id: t.id,
            customer_id: t.customer_id,
            title: t.title,
            assignee: t.assignee,
            due_at: t.due_at.and_then(rfc3339),
            status: t.status,
            created_at: rfc3339(t.created_at),
            closed_at: t.closed_at.and_then(rfc3339),
            rule,
            trigger,
            event_id,
        }
    }
}
