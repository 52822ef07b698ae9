//! What the CRM knows of a customer's billing: every subscription, invoice, charge and refund, each
//! as the provider's latest state seen, stamped with that state's provider time (`as_of`), and the
//! figures derived from them (payment status, plan, billing cycle, lifetime value, MRR).
//! Pure: the sync decides what to merge with `Tracked::merge`, the views are computed on read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::AccountKey;
use super::money::{Currency, Money, Totals};
use super::payments::PaymentFigures;

/// A provider object's state and the provider time of that state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracked<T> {
    pub as_of: i64,
    pub state: T,
}

/// What merging an incoming state into a stored one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Stored (first state seen, or newer than the one held).
    Applied,
    /// Older than, or equal to, the state held: nothing changed.
    Kept,
    /// Same provider second, different content: the event cannot tell which is newer; ask the provider.
    Undecided,
}

/// States that can order two same-second versions themselves (an invoice never goes from paid back to open).
pub trait Progress {
    fn progress(&self) -> i64 {
        0
    }
}

impl<T: PartialEq + Progress> Tracked<T> {
    /// Merges `incoming` (at provider time `as_of`) into `slot`, never replacing a newer state.
    pub fn merge(slot: &mut Option<Tracked<T>>, incoming: T, as_of: i64) -> Merge {
        let Some(held) = slot else {
            *slot = Some(Tracked { as_of, state: incoming });
            return Merge::Applied;
        };
        if as_of > held.as_of || (as_of == held.as_of && incoming.progress() > held.state.progress()) {
            *held = Tracked { as_of, state: incoming };
            Merge::Applied
        } else if as_of < held.as_of || held.state == incoming || incoming.progress() < held.state.progress() {
            Merge::Kept
        } else {
            Merge::Undecided
        }
    }

    /// Stores a state read from the provider's API: it is the latest, whatever `as_of` says.
    pub fn replace(slot: &mut Option<Tracked<T>>, fetched: T, as_of: i64) {
        let as_of = slot.as_ref().map_or(as_of, |held| held.as_of.max(as_of));
        *slot = Some(Tracked { as_of, state: fetched });
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceState {
    pub price_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Per unit and per interval, in minor units; `None` for tiered or custom prices.
    pub unit_amount: Option<i64>,
    pub currency: Option<Currency>,
    /// `day | week | month | year`; `None` for one-off prices.
    pub interval: Option<String>,
    pub interval_count: u32,
    #[serde(default)]
    pub metered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemState {
    pub price: PriceState,
    pub quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountState {
    /// Percentage off in hundredths of a percent (2550 = 25.5 %), so no floats are stored.
    #[serde(default)]
    pub percent_off_bp: Option<u32>,
    #[serde(default)]
    pub amount_off: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionState {
    pub account: AccountKey,
    pub id: String,
    pub status: String,
    pub items: Vec<ItemState>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub created: Option<i64>,
    pub schedule_id: Option<String>,
    #[serde(default)]
    pub discounts: Vec<DiscountState>,
}

impl Progress for SubscriptionState {
    fn progress(&self) -> i64 {
        // Only the end is final: an ended subscription never comes back.
        i64::from(matches!(self.status.as_str(), "canceled" | "incomplete_expired"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceState {
    pub account: AccountKey,
    pub id: String,
    pub number: Option<String>,
    /// Stripe's status: `draft | open | paid | void | uncollectible` (`deleted` drafts are removed).
    pub status: String,
    pub currency: Option<Currency>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub attempt_count: u32,
    pub created: Option<i64>,
    pub due_date: Option<i64>,
    pub paid_at: Option<i64>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub subscription_id: Option<String>,
    pub hosted_invoice_url: Option<String>,
}

impl Progress for InvoiceState {
    fn progress(&self) -> i64 {
        match self.status.as_str() {
            "draft" => 0,
            "open" => 1 + i64::from(self.attempt_count > 0),
            "uncollectible" => 3,
            "paid" | "void" => 4,
            _ => 0,
        }
    }
}

impl InvoiceState {
    /// The status shown on the customer record: an open invoice whose payment was attempted and failed is past due.
    pub fn display_status(&self) -> &str {
        match self.status.as_str() {
            "open" if self.attempt_count > 0 => "past_due",
            other => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeState {
    pub account: AccountKey,
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: Option<Currency>,
    pub created: Option<i64>,
    pub invoice_id: Option<String>,
}

impl Progress for ChargeState {
    fn progress(&self) -> i64 {
        // Refunds only grow, and a charge leaves `pending` once: a later state is never behind on either.
        self.amount_refunded.saturating_mul(2).saturating_add(i64::from(self.status != "pending"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundState {
    pub account: AccountKey,
    pub id: String,
    pub charge_id: Option<String>,
    pub status: String,
    pub amount: i64,
    pub currency: Option<Currency>,
    pub created: Option<i64>,
}

impl Progress for RefundState {
    fn progress(&self) -> i64 {
        match self.status.as_str() {
            "pending" | "requires_action" => 0,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileState {
    pub account: AccountKey,
    pub customer_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The billing address's postal code (possible duplicates compare name and postcode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// When Stripe created the customer (reconciliation compares the customers created in a period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    pub deleted: bool,
}

impl Progress for ProfileState {
    fn progress(&self) -> i64 {
        i64::from(self.deleted)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleState {
    pub account: AccountKey,
    pub id: String,
    pub subscription_id: Option<String>,
    /// `not_started | active | completed | released | canceled`.
    pub status: String,
}

impl Progress for ScheduleState {
    fn progress(&self) -> i64 {
        match self.status.as_str() {
            "not_started" => 0,
            "active" => 1,
            _ => 2,
        }
    }
}

/// A product of a Stripe account's catalogue, kept to name plans on customer records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductState {
    pub id: String,
    pub name: Option<String>,
    pub active: bool,
    pub deleted: bool,
}

impl Progress for ProductState {
    fn progress(&self) -> i64 {
        i64::from(self.deleted)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CataloguePrice {
    pub price: PriceState,
    pub active: bool,
    pub deleted: bool,
}

impl Progress for CataloguePrice {
    fn progress(&self) -> i64 {
        i64::from(self.deleted)
    }
}

/// The Stripe side of a customer, across every Stripe account of the publication.
/// Keys are Stripe ids, unique across accounts. Invoices, charges and refunds are stored in items of
/// their own (`domain::payments`): the maps hold those an operation read, `rest` the figures of the others.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "StoredBilling")]
pub struct StripeBilling {
    pub profiles: BTreeMap<String, Tracked<ProfileState>>,
    pub subscriptions: BTreeMap<String, Tracked<SubscriptionState>>,
    pub schedules: BTreeMap<String, Tracked<ScheduleState>>,
    pub invoices: BTreeMap<String, Tracked<InvoiceState>>,
    pub charges: BTreeMap<String, Tracked<ChargeState>>,
    pub refunds: BTreeMap<String, Tracked<RefundState>>,
    /// The figures of the invoices and charge groups not in the maps.
    pub rest: PaymentFigures,
    /// Read from a customer item written before payments had items of their own: the maps came from
    /// that item, and the next write stores each state in its own item.
    pub inline: bool,
}

/// `StripeBilling` as the customer item holds it. Older items hold the invoices, charges and refunds
/// themselves and no `payments`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredBilling {
    #[serde(default)]
    profiles: BTreeMap<String, Tracked<ProfileState>>,
    #[serde(default)]
    subscriptions: BTreeMap<String, Tracked<SubscriptionState>>,
    #[serde(default)]
    schedules: BTreeMap<String, Tracked<ScheduleState>>,
    #[serde(default)]
    invoices: BTreeMap<String, Tracked<InvoiceState>>,
    #[serde(default)]
    charges: BTreeMap<String, Tracked<ChargeState>>,
    #[serde(default)]
    refunds: BTreeMap<String, Tracked<RefundState>>,
    #[serde(default)]
    payments: Option<PaymentFigures>,
}

impl From<StoredBilling> for StripeBilling {
    fn from(s: StoredBilling) -> Self {
        Self {
            profiles: s.profiles,
            subscriptions: s.subscriptions,
            schedules: s.schedules,
            invoices: s.invoices,
            charges: s.charges,
            refunds: s.refunds,
            inline: s.payments.is_none(),
            rest: s.payments.unwrap_or_default(),
        }
    }
}

impl Serialize for StripeBilling {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Stored<'a> {
            #[serde(skip_serializing_if = "empty_map")]
            profiles: &'a BTreeMap<String, Tracked<ProfileState>>,
            #[serde(skip_serializing_if = "empty_map")]
            subscriptions: &'a BTreeMap<String, Tracked<SubscriptionState>>,
            #[serde(skip_serializing_if = "empty_map")]
            schedules: &'a BTreeMap<String, Tracked<ScheduleState>>,
            payments: PaymentFigures,
        }
        Stored {
            profiles: &self.profiles,
            subscriptions: &self.subscriptions,
            schedules: &self.schedules,
            payments: self.payment_figures(),
        }
        .serialize(serializer)
    }
}

/// For `skip_serializing_if` on a borrowed map of a stored form.
pub(crate) fn empty_map<V>(map: &&BTreeMap<String, V>) -> bool {
    map.is_empty()
}

/// `current | overdue | cancelled | none`, as API.md names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Current,
    Overdue,
    Cancelled,
    None,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] =
        [PaymentStatus::Current, PaymentStatus::Overdue, PaymentStatus::Cancelled, PaymentStatus::None];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Current => "current",
            PaymentStatus::Overdue => "overdue",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// The monthly-normalised value of one subscription item, Stripe's way: `amount × quantity`
/// scaled from its interval to a month, less its discounts; metered and one-off prices count nothing.
fn item_mrr(item: &ItemState) -> Option<(Currency, i128)> {
    let price = &item.price;
    let (Some(amount), Some(currency), Some(interval)) = (price.unit_amount, price.currency, &price.interval) else {
        return None;
    };
    if price.metered {
        return None;
    }
    let per_year: i128 = match interval.as_str() {
        "day" => 365,
        "week" => 52,
        "month" => 12,
        "year" => 1,
        _ => return None,
    };
    let count = i128::from(price.interval_count.max(1));
    let numerator = i128::from(amount) * i128::from(item.quantity) * per_year;
    let denominator = 12 * count;
    // Round half up on the final integer, once.
    Some((currency, (2 * numerator + denominator) / (2 * denominator)))
}

/// A subscription that has neither ended nor still awaits its first payment: active, in trial, or
/// behind on payments.
pub fn is_live_status(status: &str) -> bool {
    matches!(status, "active" | "trialing" | "past_due" | "unpaid")
}

impl SubscriptionState {
    /// Counts towards MRR: active or past due, not in trial (Stripe's definition).
    pub fn is_revenue(&self) -> bool {
        matches!(self.status.as_str(), "active" | "past_due")
    }

    pub fn is_live(&self) -> bool {
        is_live_status(&self.status)
    }

    /// Monthly recurring revenue per currency (usually one), after discounts.
    pub fn mrr(&self) -> Totals {
        let mut by_currency: BTreeMap<Currency, i128> = BTreeMap::new();
        if self.is_revenue() {
            for (currency, amount) in self.items.iter().filter_map(item_mrr) {
                *by_currency.entry(currency).or_default() += amount;
            }
        }
        let mut totals = Totals::default();
        for (currency, mut amount) in by_currency {
            for discount in &self.discounts {
                if let Some(bp) = discount.percent_off_bp {
                    amount -= (amount * i128::from(bp.min(10_000)) + 5_000) / 10_000;
                }
                if let Some(off) = discount.amount_off.as_ref().filter(|m| m.currency == currency) {
                    // A fixed amount comes off each invoice; normalise it like the interval of the
                    // items it applies to (those of its currency).
                    let billed = self.items.iter().find(|i| i.price.currency.as_ref() == Some(&currency));
                    let monthly = billed.and_then(|item| {
                        item_mrr(&ItemState {
                            price: PriceState { unit_amount: Some(off.amount), ..item.price.clone() },
                            quantity: 1,
                        })
                    });
                    amount -= monthly.map_or(0, |(_, m)| m);
                }
            }
            totals.add(&currency, i64::try_from(amount.max(0)).unwrap_or(i64::MAX));
        }
        totals
    }
}

impl StripeBilling {
    pub fn payment_status(&self) -> PaymentStatus {
        let subs: Vec<&SubscriptionState> = self.subscriptions.values().map(|t| &t.state).collect();
        let payments = self.payment_figures();
        if !payments.past_due.is_empty() || subs.iter().any(|s| matches!(s.status.as_str(), "past_due" | "unpaid")) {
            PaymentStatus::Overdue
        } else if subs.iter().any(|s| matches!(s.status.as_str(), "active" | "trialing")) {
            PaymentStatus::Current
        } else if !subs.is_empty() {
            PaymentStatus::Cancelled
        } else if payments.count > 0 {
            PaymentStatus::Current
        } else {
            PaymentStatus::None
        }
    }

    /// The subscription that names the customer's plan: the live one worth most, the newest on a tie.
    pub fn main_subscription(&self) -> Option<&SubscriptionState> {
        let rank = |s: &SubscriptionState| match s.status.as_str() {
            "active" => 3,
            "past_due" | "unpaid" => 2,
            "trialing" => 1,
            _ => 0,
        };
        let worth = |s: &SubscriptionState| s.mrr().iter().map(|(_, a)| a).sum::<i64>();
        self.subscriptions
            .values()
            .map(|t| &t.state)
            .filter(|s| s.is_live())
            .max_by_key(|s| (rank(s), worth(s), s.created.unwrap_or(0), s.id.clone()))
    }

    pub fn mrr(&self) -> Totals {
        let mut totals = Totals::default();
        for sub in self.subscriptions.values() {
            totals.add_all(&sub.state.mrr());
        }
        totals
    }

    /// Paid invoices minus refunds, per currency (`PaymentFigures`).
    pub fn lifetime_value(&self) -> Totals {
        self.payment_figures().value
    }
}

/// States for unit tests of this crate.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A one-item subscription in usd.
    pub(crate) fn subscription(
        id: &str,
        status: &str,
        amount: i64,
        interval: &str,
        count: u32,
        quantity: u64,
    ) -> SubscriptionState {
        SubscriptionState {
            account: AccountKey::parse("main").expect("key"),
            id: id.into(),
            status: status.into(),
            items: vec![ItemState {
                price: PriceState {
                    price_id: "price_1".into(),
                    product_id: None,
                    nickname: None,
                    unit_amount: Some(amount),
                    currency: Some(Currency::parse("usd").expect("usd")),
                    interval: Some(interval.into()),
                    interval_count: count,
                    metered: false,
                },
                quantity,
            }],
            current_period_start: None,
            current_period_end: None,
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_end: None,
            created: None,
            schedule_id: None,
            discounts: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    fn sub(status: &str, amount: i64, interval: &str, count: u32, quantity: u64) -> SubscriptionState {
        fixtures::subscription(&format!("sub_{status}_{amount}"), status, amount, interval, count, quantity)
    }

    #[test]
    fn mrr_normalises_intervals_and_quantities() {
        assert_eq!(sub("active", 1500, "month", 1, 1).mrr().get(&usd()), 1500);
        assert_eq!(sub("active", 1500, "month", 3, 2).mrr().get(&usd()), 1000);
        assert_eq!(sub("active", 12000, "year", 1, 1).mrr().get(&usd()), 1000);
        assert_eq!(sub("active", 300, "week", 1, 1).mrr().get(&usd()), 1300);
        assert_eq!(sub("active", 100, "day", 1, 1).mrr().get(&usd()), 3042);
        assert_eq!(sub("trialing", 1500, "month", 1, 1).mrr().get(&usd()), 0);
        assert_eq!(sub("canceled", 1500, "month", 1, 1).mrr().get(&usd()), 0);
        assert_eq!(sub("past_due", 1500, "month", 1, 1).mrr().get(&usd()), 1500);
    }

    fn priced(currency: &str, amount: i64, interval: &str, count: u32, quantity: u64) -> ItemState {
        ItemState {
            price: PriceState {
                price_id: format!("price_{currency}_{amount}"),
                product_id: None,
                nickname: None,
                unit_amount: Some(amount),
                currency: Some(Currency::parse(currency).unwrap()),
                interval: Some(interval.into()),
                interval_count: count,
                metered: false,
            },
            quantity,
        }
    }

    #[test]
    fn mrr_normalises_every_interval_count() {
        // (amount, interval, count, quantity) → monthly, rounded half up once.
        let cases = [
            (700, "day", 7, 1, 3042),   // 700 × 365 / 12 / 7
            (100, "day", 1, 3, 9125),   // 3 × 100 × 365 / 12
            (1000, "week", 2, 1, 2167), // 1000 × 52 / 12 / 2 = 2166.67
            (999, "month", 1, 2, 1998),
            (2999, "month", 6, 1, 500),  // 499.83
            (10000, "year", 1, 1, 833),  // 833.33
            (25000, "year", 2, 1, 1042), // 1041.67
            (1, "month", 2, 1, 1),       // 0.5 rounds up
            (0, "month", 1, 5, 0),
        ];
        for (amount, interval, count, quantity, monthly) in cases {
            let mut s = sub("active", amount, interval, count, quantity);
            s.items = vec![priced("usd", amount, interval, count, quantity)];
            assert_eq!(s.mrr().get(&usd()), monthly, "{amount} per {count} {interval} × {quantity}");
        }
    }

    #[test]
    fn mrr_keeps_currencies_apart_and_honours_zero_decimal_ones() {
        let jpy = Currency::parse("jpy").unwrap();
        let eur = Currency::parse("eur").unwrap();
        let mut s = sub("active", 0, "month", 1, 1);
        s.items = vec![
            priced("jpy", 12000, "year", 1, 1),
            priced("jpy", 980, "month", 1, 2),
            priced("eur", 499, "month", 1, 1),
        ];
        let mrr = s.mrr();
        assert_eq!(mrr.get(&jpy), 1000 + 1960, "yen have no minor unit: 12000 / 12 + 2 × 980");
        assert_eq!(mrr.get(&eur), 499);
        assert_eq!(mrr.get(&usd()), 0);
        // A fixed discount in one currency leaves the others alone; a percentage applies to each.
        s.discounts = vec![DiscountState { percent_off_bp: None, amount_off: Some(Money::new(100, eur)) }];
        assert_eq!((s.mrr().get(&eur), s.mrr().get(&jpy)), (399, 2960));
        s.discounts = vec![DiscountState { percent_off_bp: Some(1000), amount_off: None }];
        assert_eq!((s.mrr().get(&eur), s.mrr().get(&jpy)), (449, 2664));
    }

    #[test]
    fn mrr_ignores_metered_one_off_and_trials_and_never_goes_negative() {
        let mut s = sub("active", 1500, "month", 1, 1);
        s.items[0].price.metered = true;
        assert_eq!(s.mrr().get(&usd()), 0);
        let mut s = sub("active", 1500, "month", 1, 1);
        s.items[0].price.interval = None;
        assert_eq!(s.mrr().get(&usd()), 0, "a one-off price");
        assert_eq!(sub("trialing", 1500, "month", 1, 1).mrr().get(&usd()), 0);
        assert_eq!(sub("incomplete", 1500, "month", 1, 1).mrr().get(&usd()), 0);
        assert_eq!(sub("unpaid", 1500, "month", 1, 1).mrr().get(&usd()), 0);
        let mut s = sub("active", 1500, "month", 1, 1);
        s.discounts = vec![DiscountState { percent_off_bp: None, amount_off: Some(Money::new(5000, usd())) }];
        assert_eq!(s.mrr().get(&usd()), 0);
        // A yearly fixed discount is spread over the months like the price.
        let mut s = sub("active", 12000, "year", 1, 1);
        s.discounts = vec![DiscountState { percent_off_bp: Some(2550), amount_off: None }];
        assert_eq!(s.mrr().get(&usd()), 745, "1000 less 25.5 %");
        s.discounts = vec![DiscountState { percent_off_bp: None, amount_off: Some(Money::new(1200, usd())) }];
        assert_eq!(s.mrr().get(&usd()), 900);
    }

    #[test]
    fn mrr_applies_discounts() {
        let mut s = sub("active", 2000, "month", 1, 1);
        s.discounts = vec![DiscountState { percent_off_bp: Some(2500), amount_off: None }];
        assert_eq!(s.mrr().get(&usd()), 1500);
        s.discounts = vec![DiscountState { percent_off_bp: None, amount_off: Some(Money::new(500, usd())) }];
        assert_eq!(s.mrr().get(&usd()), 1500);
    }

    #[test]
    fn merge_never_goes_back_in_time() {
        let mut slot = None;
        assert_eq!(Tracked::merge(&mut slot, sub("active", 1, "month", 1, 1), 10), Merge::Applied);
        assert_eq!(Tracked::merge(&mut slot, sub("past_due", 1, "month", 1, 1), 9), Merge::Kept);
        assert_eq!(Tracked::merge(&mut slot, sub("past_due", 1, "month", 1, 1), 10), Merge::Undecided);
        assert_eq!(Tracked::merge(&mut slot, sub("active", 1, "month", 1, 1), 10), Merge::Kept);
        assert_eq!(Tracked::merge(&mut slot, sub("canceled", 1, "month", 1, 1), 10), Merge::Applied);
        assert_eq!(slot.unwrap().state.status, "canceled");
    }
}
