//! A reconciliation's result: each figure on both sides and the objects that differ, as JSON
//! (`crm reconcile --json`) or as a table for a terminal.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::Period;
use super::compare::{self, Figure, Mismatches, Side, Summary};
use super::sides::Sides;
use crate::domain::billing::is_live_status;
use crate::domain::ids::{AccountKey, PublicationId};
use crate::domain::record::rfc3339;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Customers created in the period.
    pub customers: Figure,
    /// Subscriptions live now (active, trialing, past_due, unpaid).
    pub active_subscriptions: Figure,
    /// Amount paid per currency of the `paid` invoices created in the period.
    pub paid_invoices: BTreeMap<String, Figure>,
    /// `succeeded` refunds created in the period: how many, and their amount per currency.
    pub refunds: Figure,
    pub refunded: BTreeMap<String, Figure>,
}

impl Figures {
    fn matches(&self) -> bool {
        let sums = self.paid_invoices.values().chain(self.refunded.values());
        [self.customers, self.active_subscriptions, self.refunds].iter().chain(sums).all(Figure::matches)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub publication: String,
    pub account: String,
    /// RFC 3339; none: since the account began.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Every figure equal and no object differing.
    pub matches: bool,
    pub figures: Figures,
    pub customers: Mismatches,
    pub subscriptions: Mismatches,
    pub invoices: Mismatches,
    pub refunds: Mismatches,
}

/// How many objects pass `keep` on either side (Stripe's side holds only what is in scope).
fn both(stripe: &Side, crm: &Side, scope: &dyn Fn(&Summary) -> bool, keep: &dyn Fn(&Summary) -> bool) -> Figure {
    Figure { stripe: compare::count(stripe, |_| true, keep), crm: compare::count(crm, scope, keep) }
}

impl Report {
    pub(super) fn new(
        publication: &PublicationId,
        account: &AccountKey,
        period: Period,
        stripe: &Sides,
        crm: &Sides,
    ) -> Self {
        let in_period = |s: &Summary| period.contains(s.created);
        let always = |_: &Summary| true;
        let succeeded = |s: &Summary| s.status == "succeeded";
        let figures = Figures {
            customers: both(&stripe.customers, &crm.customers, &in_period, &always),
            active_subscriptions: both(&stripe.subscriptions, &crm.subscriptions, &always, &|s| {
                is_live_status(&s.status)
            }),
            paid_invoices: compare::sums(&stripe.invoices, &crm.invoices, in_period, |s| s.status == "paid"),
            refunds: both(&stripe.refunds, &crm.refunds, &in_period, &succeeded),
            refunded: compare::sums(&stripe.refunds, &crm.refunds, in_period, succeeded),
        };
        let customers = compare::compare(&stripe.customers, &crm.customers, in_period);
        let subscriptions = compare::compare(&stripe.subscriptions, &crm.subscriptions, always);
        let invoices = compare::compare(&stripe.invoices, &crm.invoices, in_period);
        let refunds = compare::compare(&stripe.refunds, &crm.refunds, in_period);
        let differing = [&customers, &subscriptions, &invoices, &refunds].iter().map(|m| m.count()).sum::<u64>();
        Self {
            publication: publication.to_string(),
            account: account.to_string(),
            from: period.from.and_then(rfc3339),
            to: rfc3339(period.to),
            matches: differing == 0 && figures.matches(),
            figures,
            customers,
            subscriptions,
            invoices,
            refunds,
        }
    }

    /// The report for a terminal: the figures, then each way objects differ with the ids listed.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let from = self.from.as_deref().unwrap_or("the beginning");
        let to = self.to.as_deref().unwrap_or("now");
        let _ = writeln!(out, "Stripe account {} of {}, created from {from} to {to}", self.account, self.publication);
        let _ = writeln!(out, "{:<32} {:>14} {:>14}", "", "Stripe", "CRM");
        let mut row = |label: String, f: &Figure| {
            let flag = if f.matches() { "" } else { "  ≠" };
            let _ = writeln!(out, "{label:<32} {:>14} {:>14}{flag}", f.stripe, f.crm);
        };
        let f = &self.figures;
        row("customers created".into(), &f.customers);
        row("active subscriptions (now)".into(), &f.active_subscriptions);
        for (currency, figure) in &f.paid_invoices {
            row(format!("paid invoices, {currency}"), figure);
        }
        row("refunds".into(), &f.refunds);
        for (currency, figure) in &f.refunded {
            row(format!("refunded, {currency}"), figure);
        }
        for (kind, m) in [
            ("customers", &self.customers),
            ("subscriptions", &self.subscriptions),
            ("invoices", &self.invoices),
            ("refunds", &self.refunds),
        ] {
            for (how, listed) in [
                ("missing in the CRM", &m.missing_in_crm),
                ("not at Stripe", &m.not_at_stripe),
                ("different", &m.different),
            ] {
                if listed.count == 0 {
                    continue;
                }
                let _ = writeln!(out, "\n{kind} {how}: {}", listed.count);
                for d in &listed.items {
                    let side = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
                    let _ = writeln!(out, "  {:<28} Stripe: {:<36} CRM: {}", d.id, side(&d.stripe), side(&d.crm));
                }
                if listed.count > listed.items.len() as u64 {
                    let _ = writeln!(out, "  … and {} more", listed.count - listed.items.len() as u64);
                }
            }
        }
        let verdict = if self.matches { "Stripe and the CRM match." } else { "Stripe and the CRM differ." };
        let _ = writeln!(out, "\n{verdict}");
        out
    }
}
