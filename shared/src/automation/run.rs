//! Runs the rules a list of fired triggers matches, each at most once per (occurrence, rule): a claim in
//! the processed-event ledger (provider `automation`) guards each, completed once its actions ran.

use super::AutomationError;
use super::actions::RuleRun;
use super::fired::Fired;
use super::rules::matching;
use crate::domain::automation::Automation;
use crate::domain::ids::PublicationId;
use crate::domain::settings::PublicationSettings;
use crate::queue::Queue;
use crate::store::repo::ledger::{self, Claim};
use crate::store::{Store, StoreError};

/// Ledger provider of rule claims.
pub const CLAIM_LEDGER: &str = "automation";

/// How long a claim holds before a crashed attempt's rule becomes claimable again (seconds).
pub const HOLD_SECONDS: i64 = 300;

/// The ledger id of one rule's run for one fired trigger: `{occurrence}:{rule}:{trigger}`, where the
/// occurrence is the event id (or the fact several events announce, see `Fired::fact`).
pub fn claim_id(fired: &Fired, rule_key: &str) -> String {
    format!("{}:{rule_key}:{}", fired.occurrence(), fired.trigger)
}

/// Runs every rule of `settings` that a `fired` entry matches. A rule already completed is skipped; one
/// another attempt holds is a transient error (retry later). A failing rule gives its claim up, so a
/// retry runs it again; the other rules still run, and the first error is returned.
pub async fn run(
    store: &dyn Store,
    queue: &dyn Queue,
    settings: &PublicationSettings,
    publication: &PublicationId,
    fired: &[Fired],
    now: i64,
) -> Result<(), AutomationError> {
    let mut first_error = None;
    for one in fired {
        for (rule_key, rule) in matching(settings, one) {
            let run = RuleRun { store, queue, publication, fired: one, rule_key: &rule_key, now };
            if let Err(e) = run_rule(&run, rule).await {
                tracing::warn!(
                    error = %e, rule = %rule_key, trigger = %one.trigger, event_id = %one.event_id,
                    customer = %one.customer_id, transient = e.is_transient(), "automation rule failed"
                );
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn run_rule(run: &RuleRun<'_>, rule: &Automation) -> Result<(), AutomationError> {
    let id = claim_id(run.fired, run.rule_key);
    let token = match ledger::claim(run.store, run.publication, CLAIM_LEDGER, &id, run.now + HOLD_SECONDS).await? {
        Claim::Completed => return Ok(()),
        Claim::InProgress => return Err(AutomationError::InProgress(id)),
        Claim::Claimed(token) => token,
    };
    match run.run(rule).await {
        Ok(()) => match ledger::complete(run.store, &token, run.now).await {
            Ok(()) => {
                tracing::info!(rule = %run.rule_key, trigger = %run.fired.trigger, event_id = %run.fired.event_id, "automation rule ran");
                Ok(())
            }
            // The claim expired and another attempt took it: it reruns the same keyed actions and completes.
            Err(StoreError::ConditionFailed { .. }) => {
                tracing::warn!(claim = %id, "automation claim was lost while running; the other attempt completes it");
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        Err(e) => {
            if let Err(release) = ledger::release(run.store, &token).await {
                tracing::warn!(error = %release, claim = %id, "could not release the claim; it expires");
            }
            Err(e)
        }
    }
}
