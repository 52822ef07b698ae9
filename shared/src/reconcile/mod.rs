//! Reconciliation of a Stripe account with the CRM for a period (`crm reconcile`): Stripe's side read
//! through its list endpoints under a paced request rate, the CRM's from every record of the
//! publication, compared figure by figure and object by object (`Report`).
//!
//! What is compared (the period is `[from, to)`, Stripe's `created[gte]`/`created[lt]`):
//! - customers created at Stripe in the period (Stripe lists no deleted customers; the CRM's deleted
//!   ones are left out too);
//! - subscriptions as they stand now, whatever the period: every subscription of the account
//!   (`status=all`) by status, and the count of live ones (active, trialing, past_due, unpaid);
//! - invoices created in the period: status, amount due, amount paid and currency of each, and the sum
//!   paid per currency of those with status `paid` (an invoice counts in the period it was created in,
//!   the filter Stripe's list offers, even when it was paid later);
//! - refunds created in the period: status, amount and currency of each, and the count and sum per
//!   currency of the `succeeded` ones.

mod compare;
mod report;
mod sides;

use std::sync::Arc;

pub use compare::{Difference, Figure, LISTED, Listed, Mismatches};
pub use report::{Figures, Report};

use crate::domain::ids::{AccountKey, PublicationId};
use crate::store::Store;
use crate::store::repo::publications::{self, AccountError};
use crate::stripe::client::{Params, StripeApi, StripeAuth, StripeError};
use crate::stripe::list::Paced;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("Stripe API: {0}")]
    Stripe(#[from] StripeError),
    #[error("{0}: a date is YYYY-MM-DD")]
    BadDate(String),
    #[error("the period is empty: --from must come before --to")]
    EmptyPeriod,
}

/// The period objects were created in: `from` (inclusive, none: since the beginning) to `to` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Option<i64>,
    pub to: i64,
}

/// Midnight UTC starting `YYYY-MM-DD`, in epoch seconds.
fn day_start(text: &str) -> Result<i64, ReconcileError> {
    let bad = || ReconcileError::BadDate(text.to_owned());
    let mut parts = text.trim().splitn(3, '-').map(str::parse::<i32>);
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let month = u8::try_from(month).ok().and_then(|m| time::Month::try_from(m).ok()).ok_or_else(bad)?;
    let day = u8::try_from(day).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    Ok(date.midnight().assume_utc().unix_timestamp())
}

impl Period {
    /// From the first second of `from` to the end of `to` (both `YYYY-MM-DD`, UTC; `to` by default `now`).
    pub fn parse(from: Option<&str>, to: Option<&str>, now: i64) -> Result<Self, ReconcileError> {
        let from = from.map(day_start).transpose()?;
        let to = match to {
            Some(day) => day_start(day)? + 86_400,
            None => now,
        };
        if from.is_some_and(|f| f >= to) {
            return Err(ReconcileError::EmptyPeriod);
        }
        Ok(Self { from, to })
    }

    /// Whether an object created at `created` is in the period; one whose creation time is unknown is
    /// only when the period has no start.
    pub fn contains(&self, created: Option<i64>) -> bool {
        created.map_or(self.from.is_none(), |at| self.from.is_none_or(|from| at >= from) && at < self.to)
    }

    /// Stripe's list filters for the period.
    fn filters(&self) -> Params {
        let params = Params::new().set("created[lt]", self.to.to_string());
        match self.from {
            Some(from) => params.set("created[gte]", from.to_string()),
            None => params,
        }
    }
}

/// Compares Stripe account `key` of `publication` with the CRM's records for `period`, reading Stripe
/// at the key's default request rate (`list::default_rate`).
pub async fn run(
    store: &dyn Store,
    stripe: Arc<dyn StripeApi>,
    publication: &PublicationId,
    key: &AccountKey,
    period: Period,
) -> Result<Report, ReconcileError> {
    let (_, account) = publications::stripe_account(store, publication, key).await?;
    let api = Paced::for_key(stripe, &account.secret_key);
    let theirs = sides::stripe(&api, &StripeAuth::from(&account), &period).await?;
    let mut ours = sides::crm(store, publication, key).await?;
    ours.date_from(&theirs);
    Ok(Report::new(publication, key, period, &theirs, &ours))
}
