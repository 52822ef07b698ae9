//! The pure part of reconciliation: what is kept of each object on either side (`Summary`), the
//! objects one side has and the other lacks or holds differently (`compare`), and the figures
//! (counts, sums per currency) of each side.

use std::collections::BTreeMap;

use serde::Serialize;

/// Differences listed per kind and per way of differing; all of them are counted.
pub const LISTED: usize = 100;

/// What reconciliation keeps of one object, read from Stripe or from a CRM record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Stripe's creation time (what the period selects on); `None` when the CRM never learnt it.
    pub created: Option<i64>,
    pub status: String,
    pub currency: Option<String>,
    /// The amount figures add up: an invoice's amount paid, a refund's amount.
    pub amount: i64,
    /// Everything that must be equal on both sides, as a mismatch shows it (`paid · due 999 · paid 999 usd`).
    pub detail: String,
}

impl Summary {
    pub fn customer(created: Option<i64>) -> Self {
        Self { created, status: String::new(), currency: None, amount: 0, detail: "present".into() }
    }

    pub fn subscription(created: Option<i64>, status: &str) -> Self {
        Self { created, status: status.to_owned(), currency: None, amount: 0, detail: status.to_owned() }
    }

    pub fn invoice(created: Option<i64>, status: &str, due: i64, paid: i64, currency: Option<&str>) -> Self {
        let currency = currency.map(str::to_ascii_lowercase);
        let detail = format!("{status} · due {due} · paid {paid} {}", currency.as_deref().unwrap_or("?"));
        Self { created, status: status.to_owned(), currency, amount: paid, detail }
    }

    pub fn refund(created: Option<i64>, status: &str, amount: i64, currency: Option<&str>) -> Self {
        let currency = currency.map(str::to_ascii_lowercase);
        let detail = format!("{status} · {amount} {}", currency.as_deref().unwrap_or("?"));
        Self { created, status: status.to_owned(), currency, amount, detail }
    }
}

/// One side's objects of one kind, by id (in id order, so listed differences are stable).
pub type Side = BTreeMap<String, Summary>;

/// One object that differs: what each side holds (`None`: it holds nothing under that id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub id: String,
    pub stripe: Option<String>,
    pub crm: Option<String>,
}

/// Differences of one way, counted in full and listed up to `LISTED`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub count: u64,
    pub items: Vec<Difference>,
}

impl Listed {
    fn push(&mut self, difference: Difference) {
        self.count += 1;
        if self.items.len() < LISTED {
            self.items.push(difference);
        }
    }
}

/// How the two sides differ for one kind of object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatches {
    /// At Stripe (in the period), absent from every CRM record.
    pub missing_in_crm: Listed,
    /// In a CRM record (created in the period), not listed by Stripe.
    pub not_at_stripe: Listed,
    /// On both sides, with a different status, amount or currency.
    pub different: Listed,
}

impl Mismatches {
    pub fn count(&self) -> u64 {
        self.missing_in_crm.count + self.not_at_stripe.count + self.different.count
    }
}

/// Compares Stripe's objects of the period with every object the CRM holds. A Stripe object is found
/// whatever creation time its CRM copy has; only the CRM objects `in_scope` (created in the period)
/// are looked for at Stripe.
pub fn compare(stripe: &Side, crm: &Side, in_scope: impl Fn(&Summary) -> bool) -> Mismatches {
    let mut out = Mismatches::default();
    for (id, theirs) in stripe {
        let difference = |crm: Option<&Summary>| Difference {
            id: id.clone(),
            stripe: Some(theirs.detail.clone()),
            crm: crm.map(|s| s.detail.clone()),
        };
        match crm.get(id) {
            None => out.missing_in_crm.push(difference(None)),
            Some(ours) if ours.detail != theirs.detail => out.different.push(difference(Some(ours))),
            Some(_) => {}
        }
    }
    for (id, ours) in crm.iter().filter(|(id, s)| in_scope(s) && !stripe.contains_key(*id)) {
        out.not_at_stripe.push(Difference { id: id.clone(), stripe: None, crm: Some(ours.detail.clone()) });
    }
    out
}

/// One figure on both sides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub stripe: i64,
    pub crm: i64,
}

impl Figure {
    pub fn matches(&self) -> bool {
        self.stripe == self.crm
    }
}

/// How many objects of `side` (in scope) pass `keep`.
pub fn count(side: &Side, in_scope: impl Fn(&Summary) -> bool, keep: impl Fn(&Summary) -> bool) -> i64 {
    side.values().filter(|s| in_scope(s) && keep(s)).count() as i64
}

/// The amounts of the objects that pass `keep`, per currency, on both sides (currencies either side has).
pub fn sums(
    stripe: &Side,
    crm: &Side,
    in_scope: impl Fn(&Summary) -> bool,
    keep: impl Fn(&Summary) -> bool,
) -> BTreeMap<String, Figure> {
    let mut out: BTreeMap<String, Figure> = BTreeMap::new();
    for (summary, is_stripe) in stripe.values().map(|s| (s, true)).chain(crm.values().map(|s| (s, false))) {
        if !keep(summary) || !(is_stripe || in_scope(summary)) {
            continue;
        }
        let figure = out.entry(summary.currency.clone().unwrap_or_else(|| "?".into())).or_default();
        if is_stripe {
            figure.stripe += summary.amount;
        } else {
            figure.crm += summary.amount;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(entries: &[(&str, Summary)]) -> Side {
        entries.iter().map(|(id, s)| ((*id).to_owned(), s.clone())).collect()
    }

    #[test]
    fn finds_each_way_of_differing_and_only_those() {
        let paid = |created| Summary::invoice(Some(created), "paid", 999, 999, Some("USD"));
        let stripe = side(&[("in_1", paid(10)), ("in_2", paid(10)), ("in_3", paid(10))]);
        let crm = side(&[
            ("in_1", paid(10)),
            ("in_2", Summary::invoice(Some(10), "open", 999, 0, Some("usd"))),
            ("in_4", paid(10)),
            // Outside the period: not looked for at Stripe.
            ("in_5", paid(99)),
        ]);
        let found = compare(&stripe, &crm, |s| s.created < Some(50));
        let ids = |l: &Listed| l.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&found.missing_in_crm), ["in_3"]);
        assert_eq!(ids(&found.not_at_stripe), ["in_4"]);
        assert_eq!(found.different.items[0].crm.as_deref(), Some("open · due 999 · paid 0 usd"));
        assert_eq!(found.different.items[0].stripe.as_deref(), Some("paid · due 999 · paid 999 usd"));
        assert_eq!(found.count(), 3);
    }

    #[test]
    fn lists_a_hundred_and_counts_all() {
        let stripe: Side = (0..250).map(|i| (format!("cus_{i:03}"), Summary::customer(Some(1)))).collect();
        let found = compare(&stripe, &Side::new(), |_| true);
        assert_eq!((found.missing_in_crm.count, found.missing_in_crm.items.len()), (250, LISTED));
    }

    #[test]
    fn sums_per_currency_on_both_sides() {
        let stripe = side(&[
            ("re_1", Summary::refund(Some(1), "succeeded", 250, Some("usd"))),
            ("re_2", Summary::refund(Some(1), "succeeded", 100, Some("eur"))),
            ("re_3", Summary::refund(Some(1), "failed", 900, Some("eur"))),
        ]);
        let crm = side(&[
            ("re_1", Summary::refund(Some(1), "succeeded", 250, Some("usd"))),
            ("re_9", Summary::refund(Some(500), "succeeded", 700, Some("usd"))),
        ]);
        let figures = sums(&stripe, &crm, |s| s.created == Some(1), |s| s.status == "succeeded");
        assert_eq!(figures["usd"], Figure { stripe: 250, crm: 250 });
        assert_eq!(figures["eur"], Figure { stripe: 100, crm: 0 });
        assert_eq!(count(&crm, |_| true, |s| s.amount > 300), 1);
    }
}
