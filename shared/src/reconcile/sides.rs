//! The two sides of a reconciliation: Stripe's objects read through its list endpoints (one page at a
//! time, keeping a summary per id), and the CRM's read from every customer record of the publication
//! (one page of records at a time).

use serde_json::Value;

use super::Period;
use super::compare::{Side, Summary};
use crate::domain::customer::Customer;
use crate::domain::ids::{AccountKey, PublicationId};
use crate::store::repo::{customers, payments};
use crate::store::{Store, StoreError};
use crate::stripe::client::{Params, StripeApi, StripeAuth, StripeError};
use crate::stripe::list;

/// The four kinds of object compared.
#[derive(Debug, Clone, Default)]
pub struct Sides {
    pub customers: Side,
    pub subscriptions: Side,
    pub invoices: Side,
    pub refunds: Side,
}

impl Sides {
    /// Gives CRM objects that lack a creation time (records written before it was kept) the one Stripe
    /// lists for them, so the period selects them as it selects Stripe's.
    pub fn date_from(&mut self, stripe: &Sides) {
        let pairs = [
            (&mut self.customers, &stripe.customers),
            (&mut self.subscriptions, &stripe.subscriptions),
            (&mut self.invoices, &stripe.invoices),
            (&mut self.refunds, &stripe.refunds),
        ];
        for (ours, theirs) in pairs {
            for (id, summary) in ours.iter_mut().filter(|(_, s)| s.created.is_none()) {
                summary.created = theirs.get(id).and_then(|s| s.created);
            }
        }
    }
}

/// Records read per page.
const RECORDS_PAGE: u32 = 200;

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn int(object: &Value, field: &str) -> i64 {
    object.get(field).and_then(Value::as_i64).unwrap_or_default()
}

/// Every page of `path` with `filters`, each object summarised into `side`.
async fn read_list(
    api: &dyn StripeApi,
    auth: &StripeAuth,
    path: &str,
    filters: &Params,
    side: &mut Side,
    summarise: impl Fn(&Value) -> Summary,
) -> Result<(), StripeError> {
    let mut cursor = None;
    loop {
        let page = list::page(api, auth, path, filters, cursor.as_deref()).await?;
        for object in &page.data {
            // `list::page` answers only objects with an id.
            side.insert(text(object, "id").to_owned(), summarise(object));
        }
        cursor = page.next_cursor();
        if cursor.is_none() {
            return Ok(());
        }
    }
}

/// Stripe's side: the customers, invoices and refunds created in `period`, and every subscription
/// (of any status: they are compared as they stand now).
pub async fn stripe(api: &dyn StripeApi, auth: &StripeAuth, period: &Period) -> Result<Sides, StripeError> {
    let mut sides = Sides::default();
    let created = |o: &Value| o.get("created").and_then(Value::as_i64);
    let in_period = period.filters();
    read_list(api, auth, "/v1/customers", &in_period, &mut sides.customers, |o| Summary::customer(created(o))).await?;
    let all = Params::new().set("status", "all");
    read_list(api, auth, "/v1/subscriptions", &all, &mut sides.subscriptions, |o| {
        Summary::subscription(created(o), text(o, "status"))
    })
    .await?;
    read_list(api, auth, "/v1/invoices", &in_period, &mut sides.invoices, |o| {
        let currency = o.get("currency").and_then(Value::as_str);
        Summary::invoice(created(o), text(o, "status"), int(o, "amount_due"), int(o, "amount_paid"), currency)
    })
    .await?;
    read_list(api, auth, "/v1/refunds", &in_period, &mut sides.refunds, |o| {
        Summary::refund(created(o), text(o, "status"), int(o, "amount"), o.get("currency").and_then(Value::as_str))
    })
    .await?;
    Ok(sides)
}

/// What one record holds of Stripe account `account`; deleted Stripe customers are not held.
fn add_record(sides: &mut Sides, account: &AccountKey, record: &Customer) {
    let stripe = &record.stripe;
    for (id, profile) in stripe.profiles.iter().filter(|(_, p)| &p.state.account == account && !p.state.deleted) {
        sides.customers.insert(id.clone(), Summary::customer(profile.state.created));
    }
    for (id, sub) in stripe.subscriptions.iter().filter(|(_, s)| &s.state.account == account) {
        sides.subscriptions.insert(id.clone(), Summary::subscription(sub.state.created, &sub.state.status));
    }
    for (id, invoice) in stripe.invoices.iter().filter(|(_, i)| &i.state.account == account) {
        let i = &invoice.state;
        let currency = i.currency.as_ref().map(|c| c.as_str());
        sides
            .invoices
            .insert(id.clone(), Summary::invoice(i.created, &i.status, i.amount_due, i.amount_paid, currency));
    }
    for (id, refund) in stripe.refunds.iter().filter(|(_, r)| &r.state.account == account) {
        let r = &refund.state;
        let currency = r.currency.as_ref().map(|c| c.as_str());
        sides.refunds.insert(id.clone(), Summary::refund(r.created, &r.status, r.amount, currency));
    }
}

/// The CRM's side: every object of `account` on any record of the publication (the period is applied
/// when comparing, so a Stripe object is found whatever creation time its copy holds).
pub async fn crm(store: &dyn Store, publication: &PublicationId, account: &AccountKey) -> Result<Sides, StoreError> {
    let mut sides = Sides::default();
    let mut after = None;
    loop {
        let (mut page, next) = customers::list(store, publication, RECORDS_PAGE, after).await?;
        payments::read_all_of(store, &mut page).await?;
        for record in &page {
            add_record(&mut sides, account, record);
        }
        match next {
            Some(cursor) => after = Some(cursor),
            None => return Ok(sides),
        }
    }
}
