//! The Stripe objects the sync reads, typed loosely on purpose: every field the CRM does not need is
//! ignored, every field it reads may be missing or null (`#[serde(default)]` on each struct; an
//! event's object must still carry an id, which `Event::payload` checks), and both ends of the API-version range parse
//! (`current_period_*` on the subscription or on its items, `invoice.subscription` or
//! `invoice.parent.subscription_details.subscription`, `plan` or `price`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Treats `null` as the type's default (Stripe sends `"metadata": null`, `"discounts": null`, …).
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An expandable field: an id, or the object it names (of which only the id is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(String),
            Object { id: String },
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Id(id) | Raw::Object { id } => Id(id),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct List<T> {
    #[serde(default = "Vec::new", deserialize_with = "nullable")]
    pub data: Vec<T>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        Self { data: Vec::new() }
    }
}

pub type Metadata = BTreeMap<String, String>;

fn metadata<'de, D: Deserializer<'de>>(d: D) -> Result<Metadata, D::Error> {
    // Metadata values are strings in Stripe, but a hand-made event may carry numbers; keep them as text.
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Null => None,
            other => Some((k, other.to_string())),
        })
        .collect())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub address: Option<Address>,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
    pub deleted: Option<bool>,
    pub created: Option<i64>,
}

/// A customer's billing address; only what the CRM keeps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Address {
    pub postal_code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Recurring {
    pub interval: String,
    pub interval_count: u32,
    pub usage_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Price {
    pub id: String,
    pub product: Option<Id>,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub recurring: Option<Recurring>,
    pub nickname: Option<String>,
    pub active: Option<bool>,
    pub deleted: Option<bool>,
}

/// The older name of a price, still on subscriptions of old API versions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Plan {
    pub id: String,
    pub product: Option<Id>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<String>,
    pub interval_count: Option<u32>,
    pub usage_type: Option<String>,
    pub nickname: Option<String>,
    pub active: Option<bool>,
    pub deleted: Option<bool>,
}

impl Plan {
    /// A plan is a price of the old API: the same fields under older names.
    pub fn into_price(self) -> Price {
        Price {
            id: self.id,
            product: self.product,
            unit_amount: self.amount,
            currency: self.currency,
            recurring: self.interval.map(|interval| Recurring {
                interval,
                interval_count: self.interval_count.unwrap_or(1),
                usage_type: self.usage_type,
            }),
            nickname: self.nickname,
            active: self.active,
            deleted: self.deleted,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Product {
    pub id: String,
    pub name: Option<String>,
    pub active: Option<bool>,
    pub deleted: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubscriptionItem {
    pub price: Option<Price>,
    pub plan: Option<Plan>,
    pub quantity: Option<u64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

impl SubscriptionItem {
    /// The item's price in either API shape.
    pub fn price(&self) -> Option<Price> {
        self.price.clone().or_else(|| self.plan.clone().map(Plan::into_price))
    }
}

/// A discount's coupon: percentage or fixed amount off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Coupon {
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub duration: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Discount {
    pub coupon: Option<Coupon>,
    pub source: Option<DiscountSource>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DiscountSource {
    pub coupon: Option<CouponRef>,
}

/// A coupon may be expanded or only named.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CouponRef {
    Object(Coupon),
    Id(String),
}

impl Discount {
    pub fn coupon(&self) -> Option<&Coupon> {
        self.coupon.as_ref().or(match self.source.as_ref()?.coupon.as_ref()? {
            CouponRef::Object(coupon) => Some(coupon),
            CouponRef::Id(_) => None,
        })
    }
}

/// `discounts[]` holds ids unless expanded; only expanded ones can be applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DiscountRef {
    Object(Discount),
    Id(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Subscription {
    pub id: String,
    pub customer: Option<Id>,
    pub status: Option<String>,
    pub created: Option<i64>,
    pub start_date: Option<i64>,
    pub cancel_at_period_end: Option<bool>,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub items: List<SubscriptionItem>,
    pub plan: Option<Plan>,
    pub quantity: Option<u64>,
    pub schedule: Option<Id>,
    pub discount: Option<Discount>,
    #[serde(deserialize_with = "nullable")]
    pub discounts: Vec<DiscountRef>,
    pub pause_collection: Option<serde_json::Value>,
    pub currency: Option<String>,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
}

impl Subscription {
    /// Billing period in either API shape: on the subscription (old) or on its items (new).
    pub fn period(&self) -> (Option<i64>, Option<i64>) {
        let item = self.items.data.first();
        (
            self.current_period_start.or_else(|| item.and_then(|i| i.current_period_start)),
            self.current_period_end.or_else(|| item.and_then(|i| i.current_period_end)),
        )
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StatusTransitions {
    pub finalized_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub voided_at: Option<i64>,
    pub marked_uncollectible_at: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubscriptionDetails {
    pub subscription: Option<Id>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InvoiceParent {
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Invoice {
    pub id: String,
    pub customer: Option<Id>,
    pub customer_email: Option<String>,
    pub status: Option<String>,
    pub number: Option<String>,
    pub currency: Option<String>,
    pub amount_due: Option<i64>,
    pub amount_paid: Option<i64>,
    pub amount_remaining: Option<i64>,
    pub total: Option<i64>,
    pub created: Option<i64>,
    pub due_date: Option<i64>,
    pub attempt_count: Option<u32>,
    pub next_payment_attempt: Option<i64>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub billing_reason: Option<String>,
    pub hosted_invoice_url: Option<String>,
    pub subscription: Option<Id>,
    pub parent: Option<InvoiceParent>,
    #[serde(deserialize_with = "nullable")]
    pub status_transitions: StatusTransitions,
    pub deleted: Option<bool>,
}

impl Invoice {
    /// The invoice's subscription in either API shape.
    pub fn subscription_id(&self) -> Option<&str> {
        let new =
            self.parent.as_ref().and_then(|p| p.subscription_details.as_ref()).and_then(|d| d.subscription.as_ref());
        self.subscription.as_ref().or(new).map(|id| id.0.as_str())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InvoicePayment {
    pub id: String,
    pub invoice: Option<Id>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BillingDetails {
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Charge {
    pub id: String,
    pub customer: Option<Id>,
    pub amount: Option<i64>,
    pub amount_refunded: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub invoice: Option<Id>,
    pub created: Option<i64>,
    pub failure_message: Option<String>,
    pub refunds: Option<List<Refund>>,
    pub billing_details: Option<BillingDetails>,
    pub receipt_email: Option<String>,
}

/// A refund's charge: its id, and its customer when the charge came expanded (`expand[]=data.charge`
/// on a list), which spares reading the charge to learn whose refund it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRef {
    pub id: String,
    pub customer: Option<String>,
}

impl<'de> Deserialize<'de> for ChargeRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(String),
            Object {
                id: String,
                #[serde(default)]
                customer: Option<Id>,
            },
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Id(id) => ChargeRef { id, customer: None },
            Raw::Object { id, customer } => ChargeRef { id, customer: customer.map(|c| c.0) },
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Refund {
    pub id: String,
    pub charge: Option<ChargeRef>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub created: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubscriptionSchedule {
    pub id: String,
    pub customer: Option<Id>,
    pub subscription: Option<Id>,
    pub released_subscription: Option<Id>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CustomerDetails {
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CheckoutSession {
    pub id: String,
    pub customer: Option<Id>,
    pub customer_email: Option<String>,
    pub customer_details: Option<CustomerDetails>,
    pub subscription: Option<Id>,
    pub mode: Option<String>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub client_reference_id: Option<String>,
    #[serde(deserialize_with = "metadata")]
    pub metadata: Metadata,
}
