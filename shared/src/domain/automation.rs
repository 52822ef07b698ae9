//! Automation rules from publication settings: on a trigger, when conditions hold, run actions.

use serde::{Deserialize, Serialize};

use super::settings::HttpUrl;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Automation {
    /// Stable name of the rule; actions run at most once per (event, rule id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub on: Trigger,
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
    #[serde(rename = "do")]
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    PaymentSucceeded,
    PaymentFailed,
    SubscriptionCanceled,
    SubscriptionUpgraded,
    SubscriptionDowngraded,
    TrialWillEnd,
    Refund,
    AccessRevoked,
}

impl Trigger {
    /// The name settings use (`"payment_failed"`), also `{event.type}` in templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::PaymentSucceeded => "payment_succeeded",
            Trigger::PaymentFailed => "payment_failed",
            Trigger::SubscriptionCanceled => "subscription_canceled",
            Trigger::SubscriptionUpgraded => "subscription_upgraded",
            Trigger::SubscriptionDowngraded => "subscription_downgraded",
            Trigger::TrialWillEnd => "trial_will_end",
            Trigger::Refund => "refund",
            Trigger::AccessRevoked => "access_revoked",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub product_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub price_ids: Vec<String>,
    /// Minor units; the rule applies when the event's amount is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Action {
    /// Sets the customer's lifecycle stage, e.g. "Active Customer".
    SetStatus(String),
    CreateTask(TaskTemplate),
    LogActivity(ActivityTemplate),
    Notify(NotifyTarget),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskTemplate {
    /// May use `{customer.email}`, `{customer.name}`, `{event.type}`, `{amount}`.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_in_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityTemplate {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyTarget {
    pub url: HttpUrl,
}

impl Automation {
    /// Checks what the types alone do not; the error is (field path inside the rule, message).
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if let Some(id) = &self.id
            && (id.is_empty() || id.len() > 64)
        {
            return Err(("id".into(), "must be 1 to 64 characters".into()));
        }
        if self.actions.is_empty() {
            return Err(("do".into(), "must list at least one action".into()));
        }
        if let Some(min) = self.conditions.as_ref().and_then(|c| c.min_amount)
            && min < 0
        {
            return Err(("if.minAmount".into(), "must not be negative".into()));
        }
        for (i, action) in self.actions.iter().enumerate() {
            let blank = |field: &str, value: &str| {
                if value.trim().is_empty() || value.len() > 500 {
                    Err((format!("do[{i}].{field}"), "must be 1 to 500 characters".to_owned()))
                } else {
                    Ok(())
                }
            };
            match action {
                Action::SetStatus(stage) => blank("setStatus", stage)?,
                Action::CreateTask(task) => {
                    blank("createTask.title", &task.title)?;
                    if task.due_in_days.is_some_and(|d| d > 365) {
                        return Err((format!("do[{i}].createTask.dueInDays"), "must be at most 365".into()));
                    }
                }
                Action::LogActivity(activity) => blank("logActivity.message", &activity.message)?,
                Action::Notify(_) => {}
            }
        }
        Ok(())
    }
}
