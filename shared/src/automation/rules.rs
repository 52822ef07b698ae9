//! Which of a publication's rules a fired trigger runs, and the key each rule is known by.

use super::fired::Fired;
use crate::domain::automation::{Automation, Conditions};
use crate::domain::settings::PublicationSettings;

/// A rule's key: its `id`, or `rule{index}` (its place in `automations`) when it has none.
pub fn rule_key(rule: &Automation, index: usize) -> String {
    rule.id.clone().unwrap_or_else(|| format!("rule{index}"))
}

/// Whether `rule` runs for `fired`: same trigger, and every condition given holds.
pub fn matches(rule: &Automation, fired: &Fired) -> bool {
    rule.on == fired.trigger && rule.conditions.as_ref().is_none_or(|c| conditions_hold(c, fired))
}

fn conditions_hold(conditions: &Conditions, fired: &Fired) -> bool {
    let overlaps = |wanted: &[String], held: &[String]| wanted.is_empty() || wanted.iter().any(|w| held.contains(w));
    overlaps(&conditions.product_ids, &fired.product_ids)
        && overlaps(&conditions.price_ids, &fired.price_ids)
        && conditions.min_amount.is_none_or(|min| fired.amount.as_ref().is_some_and(|a| a.amount >= min))
}

/// The rules `fired` runs, in settings order, each with its key.
pub fn matching<'a>(settings: &'a PublicationSettings, fired: &Fired) -> Vec<(String, &'a Automation)> {
    settings
        .automations
        .iter()
        .enumerate()
        .filter(|(_, rule)| matches(rule, fired))
        .map(|(index, rule)| (rule_key(rule, index), rule))
        .collect()
}
