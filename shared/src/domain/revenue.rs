//! Revenue from billing data (definitions in docs/metrics.md). Every applied event that changes a
//! customer's MRR or lifetime value leaves one movement per currency: the customer's MRR before and
//! after, its revenue subscriptions before and after, the cash the event added (payments) or took back
//! (refunds), and what kind of MRR movement it is. Movements fold into monthly aggregates (`Summary`);
//! a report reads figures for a range of months from them. Pure: the store keeps movements and the
//! folded summary, `store::repo::revenue` feeds them here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::customer::Customer;
use super::ids::CustomerId;
use super::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// MRR from zero, the first time in this currency.
    New,
    Expansion,
    Contraction,
    /// MRR to zero.
    Churn,
    /// MRR from zero again, after a churn.
    Reactivation,
}

/// What one event did to one customer's revenue in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Movement {
    /// Provider time of the event, epoch seconds.
    pub at: i64,
    pub customer: CustomerId,
    pub currency: Currency,
    pub mrr_before: i64,
    pub mrr_after: i64,
    pub subscriptions_before: u32,
    pub subscriptions_after: u32,
    /// Lifetime value added (payments, positive) or taken back (refunds, negative).
    pub cash: i64,
    /// `None`: the MRR did not change (a payment, a refund, a new subscription of zero value).
    pub kind: Option<MovementKind>,
    pub event_id: String,
}

/// Revenue subscriptions (counted in MRR) of the customer per currency.
fn subscriptions_by_currency(customer: &Customer) -> BTreeMap<Currency, u32> {
    let mut out = BTreeMap::new();
    for sub in customer.stripe.subscriptions.values() {
        for (currency, amount) in sub.state.mrr().iter() {
            if amount > 0 {
                *out.entry(*currency).or_default() += 1;
            }
        }
    }
    out
}

/// The movements between two states of a customer, and the currencies `after` has ever had MRR in
/// (to keep on the customer, so a later return is a reactivation, not new business).
pub fn movements(before: &Customer, after: &Customer, at: i64, event_id: &str) -> (Vec<Movement>, BTreeSet<Currency>) {
    let (mrr_before, mrr_after) = (before.stripe.mrr(), after.stripe.mrr());
    let (ltv_before, ltv_after) = (before.lifetime_value(), after.lifetime_value());
    let (subs_before, subs_after) = (subscriptions_by_currency(before), subscriptions_by_currency(after));
    let currencies: BTreeSet<Currency> = [&mrr_before, &mrr_after, &ltv_before, &ltv_after]
        .iter()
        .flat_map(|t| t.iter().map(|(c, _)| *c))
        .chain(subs_before.keys().copied())
        .chain(subs_after.keys().copied())
        .collect();
    let mut ever = before.mrr_currencies.clone();
    let mut out = Vec::new();
    for currency in currencies {
        let (b, a) = (mrr_before.get(&currency), mrr_after.get(&currency));
        let cash = ltv_after.get(&currency) - ltv_before.get(&currency);
        let (sb, sa) =
            (subs_before.get(&currency).copied().unwrap_or(0), subs_after.get(&currency).copied().unwrap_or(0));
        let kind = match (b, a) {
            (0, a) if a > 0 && ever.contains(&currency) => Some(MovementKind::Reactivation),
            (0, a) if a > 0 => Some(MovementKind::New),
            (b, 0) if b > 0 => Some(MovementKind::Churn),
            (b, a) if a > b => Some(MovementKind::Expansion),
            (b, a) if a < b => Some(MovementKind::Contraction),
            _ => None,
        };
        if a > 0 {
            ever.insert(currency);
        }
        if kind.is_none() && cash == 0 && sb == sa {
            continue;
        }
        out.push(Movement {
            at,
            customer: after.id.clone(),
            currency,
            mrr_before: b,
            mrr_after: a,
            subscriptions_before: sb,
            subscriptions_after: sa,
            cash,
            kind,
            event_id: event_id.to_owned(),
        });
    }
    (out, ever)
}

/// `YYYY-MM` of an epoch second (UTC).
pub fn month_of(epoch: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// One currency's movements within one month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MonthFigures {
    pub new_mrr: i64,
    pub expansion_mrr: i64,
    /// Positive amounts: MRR lost.
    pub contraction_mrr: i64,
    pub churned_mrr: i64,
    pub reactivation_mrr: i64,
    pub new_customers: i64,
    pub churned_customers: i64,
    pub reactivated_customers: i64,
    /// Change in revenue subscriptions.
    pub subscriptions_delta: i64,
    pub payments: i64,
    /// Positive amounts: refunded.
    pub refunds: i64,
}

impl MonthFigures {
    pub fn net_new_mrr(&self) -> i64 {
        self.new_mrr + self.expansion_mrr + self.reactivation_mrr - self.contraction_mrr - self.churned_mrr
    }

    pub fn paying_customers_delta(&self) -> i64 {
        self.new_customers + self.reactivated_customers - self.churned_customers
    }

    fn add(&mut self, m: &Movement) {
        let delta = m.mrr_after - m.mrr_before;
        match m.kind {
            Some(MovementKind::New) => {
                self.new_mrr += delta;
                self.new_customers += 1;
            }
            Some(MovementKind::Reactivation) => {
                self.reactivation_mrr += delta;
                self.reactivated_customers += 1;
            }
            Some(MovementKind::Churn) => {
                self.churned_mrr -= delta;
                self.churned_customers += 1;
            }
            Some(MovementKind::Expansion) => self.expansion_mrr += delta,
            Some(MovementKind::Contraction) => self.contraction_mrr -= delta,
            None => {}
        }
        self.subscriptions_delta += i64::from(m.subscriptions_after) - i64::from(m.subscriptions_before);
        if m.cash > 0 {
            self.payments += m.cash;
        } else {
            self.refunds -= m.cash;
        }
    }
}

/// Movements folded by month (`YYYY-MM`) and currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Summary {
    pub months: BTreeMap<String, BTreeMap<Currency, MonthFigures>>,
}

impl Summary {
    pub fn fold(&mut self, m: &Movement) {
        self.months.entry(month_of(m.at)).or_default().entry(m.currency).or_default().add(m);
    }
}

/// One month of one currency, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthReport {
    pub month: String,
    pub opening_mrr: i64,
    pub closing_mrr: i64,
    #[serde(flatten)]
    pub figures: MonthFigures,
    pub net_new_mrr: i64,
    pub paying_customers_at_start: i64,
    pub paying_customers_at_end: i64,
    /// Churned customers ÷ paying customers at the start of the month; `None` without any.
    pub customer_churn_rate: Option<f64>,
    /// (Churned + contraction MRR) ÷ opening MRR; `None` without opening MRR.
    pub mrr_churn_rate: Option<f64>,
    /// Paid invoices and payments minus refunds, in the month.
    pub actual_revenue: i64,
    /// What the opening MRR promised for the month.
    pub projected_revenue: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrencyReport {
    pub currency: Currency,
    /// At the end of the report's last month.
    pub mrr: i64,
    pub active_subscriptions: i64,
    pub paying_customers: i64,
    /// MRR ÷ paying customers, rounded half up; `None` without paying customers.
    pub arpc: Option<i64>,
    /// Expansion MRR over the report's months.
    pub expansion_mrr: i64,
    pub actual_revenue: i64,
    pub projected_revenue: i64,
    pub months: Vec<MonthReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub from: String,
    pub to: String,
    pub currencies: Vec<CurrencyReport>,
}

/// A rate rounded to four decimals, `None` when the base is zero.
fn rate(part: i64, base: i64) -> Option<f64> {
    (base > 0).then(|| (part as f64 / base as f64 * 10_000.0).round() / 10_000.0)
}

/// The months `from..=to` (`YYYY-MM`, `from` ≤ `to`).
pub fn months_between(from: &str, to: &str) -> Vec<String> {
    let parse = |m: &str| -> Option<(i32, u32)> {
        let (y, mo) = m.split_once('-')?;
        Some((y.parse().ok()?, mo.parse().ok()?))
    };
    let (Some((mut y, mut m)), Some((ty, tm))) = (parse(from), parse(to)) else { return Vec::new() };
    let mut out = Vec::new();
    while (y, m) <= (ty, tm) && out.len() < 1200 {
        out.push(format!("{y:04}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

impl Summary {
    /// Figures of the months `from..=to`, per currency: opening values accumulate every earlier month.
    pub fn report(&self, from: &str, to: &str) -> Report {
        let currencies: BTreeSet<&Currency> = self.months.values().flat_map(|m| m.keys()).collect();
        let range = months_between(from, to);
        let mut out = Vec::new();
        for currency in currencies {
            let before = |month: &str| {
                self.months.range(..month.to_owned()).filter_map(|(_, by)| by.get(currency)).fold(
                    (0i64, 0i64, 0i64),
                    |(mrr, customers, subs), f| {
                        (mrr + f.net_new_mrr(), customers + f.paying_customers_delta(), subs + f.subscriptions_delta)
                    },
                )
            };
            let (mut mrr, mut customers, mut subs) = before(range.first().map_or(from, String::as_str));
            let mut months = Vec::new();
            for month in &range {
                let figures = self.months.get(month).and_then(|by| by.get(currency)).cloned().unwrap_or_default();
                let opening = mrr;
                let customers_at_start = customers;
                mrr += figures.net_new_mrr();
                customers += figures.paying_customers_delta();
                subs += figures.subscriptions_delta;
                months.push(MonthReport {
                    month: month.clone(),
                    opening_mrr: opening,
                    closing_mrr: mrr,
                    net_new_mrr: figures.net_new_mrr(),
                    paying_customers_at_start: customers_at_start,
                    paying_customers_at_end: customers,
                    customer_churn_rate: rate(figures.churned_customers, customers_at_start),
                    mrr_churn_rate: rate(figures.churned_mrr + figures.contraction_mrr, opening),
                    actual_revenue: figures.payments - figures.refunds,
                    projected_revenue: opening,
                    figures,
                });
            }
            let arpc = (customers > 0).then(|| (2 * mrr + customers) / (2 * customers));
            out.push(CurrencyReport {
                currency: *currency,
                mrr,
                active_subscriptions: subs,
                paying_customers: customers,
                arpc,
                expansion_mrr: months.iter().map(|m| m.figures.expansion_mrr).sum(),
                actual_revenue: months.iter().map(|m| m.actual_revenue).sum(),
                projected_revenue: months.iter().map(|m| m.projected_revenue).sum(),
                months,
            });
        }
        Report { from: from.to_owned(), to: to.to_owned(), currencies: out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::{Tracked, fixtures};
    use crate::domain::ids::PublicationId;

    fn with_sub(customer: &Customer, id: &str, status: &str, amount: i64) -> Customer {
        let mut c = customer.clone();
        let state = fixtures::subscription(id, status, amount, "month", 1, 1);
        c.stripe.subscriptions.insert(id.into(), Tracked { as_of: 1, state });
        c
    }

    fn kinds(before: &Customer, after: &Customer) -> (Vec<Option<MovementKind>>, Customer) {
        let (moves, ever) = movements(before, after, 1_767_225_600, "evt");
        let mut next = after.clone();
        next.mrr_currencies = ever;
        (moves.iter().map(|m| m.kind).collect(), next)
    }

    #[test]
    fn classifies_new_expansion_contraction_churn_and_reactivation() {
        let c0 = Customer::new(PublicationId::parse("p").unwrap(), 0);
        let (k, c1) = kinds(&c0, &with_sub(&c0, "s1", "trialing", 1000));
        assert_eq!(k, Vec::<Option<MovementKind>>::new(), "a trial is no MRR");
        let (k, c2) = kinds(&c1, &with_sub(&c1, "s1", "active", 1000));
        assert_eq!(k, [Some(MovementKind::New)]);
        let (k, c3) = kinds(&c2, &with_sub(&c2, "s1", "active", 2000));
        assert_eq!(k, [Some(MovementKind::Expansion)]);
        let (k, c4) = kinds(&c3, &with_sub(&c3, "s1", "active", 1500));
        assert_eq!(k, [Some(MovementKind::Contraction)]);
        let (k, c5) = kinds(&c4, &with_sub(&c4, "s1", "canceled", 1500));
        assert_eq!(k, [Some(MovementKind::Churn)]);
        let (k, _) = kinds(&c5, &with_sub(&c5, "s2", "active", 900));
        assert_eq!(k, [Some(MovementKind::Reactivation)]);
    }

    #[test]
    fn months_and_rates() {
        assert_eq!(month_of(1_767_225_600), "2026-01");
        assert_eq!(months_between("2025-11", "2026-02"), ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert!(months_between("2026-02", "2025-11").is_empty());
        assert_eq!(rate(1, 3), Some(0.3333));
        assert_eq!(rate(1, 0), None);
    }
}
