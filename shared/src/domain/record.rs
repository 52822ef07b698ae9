//! The customer record as API.md shows it: the stored customer plus its derived figures
//! (payment status, plan, billing cycle, lifetime value, MRR), lists newest first, times in RFC 3339.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::access::EntitlementStatus;
use super::activity::{Activity, ActivityKind};
use super::billing::{InvoiceState, ItemState, PaymentStatus, StripeBilling, SubscriptionState};
use super::customer::Customer;
use super::ids::{AccountKey, CustomerId};
use super::money::{Currency, Money, Totals};
use super::piano::PianoSubscription;
use super::settings::CatalogueEntry;
use super::task::TaskView;

/// RFC 3339 for an epoch second; `None` for times out of range.
pub fn rfc3339(epoch: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
}

fn at(epoch: Option<i64>) -> Option<String> {
    epoch.and_then(rfc3339)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub price_id: String,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub interval: Option<String>,
    pub interval_count: u32,
    /// Per billing interval, all units: `unit amount × quantity`.
    pub amount: Option<i64>,
    pub currency: Option<Currency>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingCycle {
    pub current_period_start: Option<String>,
    pub current_period_end: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub provider: &'static str,
    /// The Stripe account; `None` for Piano.
    pub account: Option<AccountKey>,
    pub status: String,
    pub items: Vec<Plan>,
    pub mrr: Totals,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<String>,
    pub canceled_at: Option<String>,
    pub ended_at: Option<String>,
    pub trial_end: Option<String>,
    pub current_period_start: Option<String>,
    pub current_period_end: Option<String>,
    pub created: Option<String>,
    pub schedule: Option<Value>,
    /// Piano's term and resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceView {
    pub id: String,
    pub account: AccountKey,
    pub number: Option<String>,
    /// `draft | open | paid | past_due | void | uncollectible`.
    pub status: String,
    pub currency: Option<Currency>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub created: Option<String>,
    pub due_date: Option<String>,
    pub paid_at: Option<String>,
    pub subscription_id: Option<String>,
    pub hosted_invoice_url: Option<String>,
}

/// A timeline entry as shown: its time in RFC 3339 (stored as epoch seconds).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityView {
    pub key: String,
    pub at: Option<String>,
    pub kind: ActivityKind,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl From<Activity> for ActivityView {
    fn from(a: Activity) -> Self {
        Self {
            at: rfc3339(a.at),
            key: a.key,
            kind: a.kind,
            summary: a.summary,
            amount: a.amount,
            provider: a.provider,
            account: a.account,
            object_id: a.object_id,
            event_id: a.event_id,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRecord {
    pub id: CustomerId,
    pub email: Option<String>,
    pub name: Option<String>,
    pub stripe_customer_ids: BTreeMap<AccountKey, String>,
    /// Further Stripe customers of the same person (duplicates in one account).
    pub additional_stripe_customer_ids: Vec<Value>,
    pub piano_uid: Option<String>,
    pub payment_status: PaymentStatus,
    /// Set by automation rules (`setStatus`), e.g. "Active Customer".
    pub lifecycle_stage: Option<String>,
    pub plan: Option<Plan>,
    pub billing_cycle: Option<BillingCycle>,
    pub lifetime_value: Totals,
    pub mrr: Totals,
    pub subscriptions: Vec<SubscriptionView>,
    pub invoices: Vec<InvoiceView>,
    pub entitlements: Vec<Value>,
    /// Catalogue products the customer holds now, through either provider.
    pub products: Vec<ProductView>,
    pub activities: Vec<ActivityView>,
    /// Cursor of the next page of activities (`?activitiesCursor=`), when there is one.
    pub activities_next: Option<String>,
    /// The customer's open follow-up tasks, oldest first (`with_open_tasks`).
    pub open_tasks: Vec<TaskView>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A line of the customer listing: the record without its lists.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerSummary {
    pub id: CustomerId,
    pub email: Option<String>,
    pub name: Option<String>,
    pub payment_status: PaymentStatus,
    pub plan: Option<Plan>,
    pub lifetime_value: Totals,
    pub mrr: Totals,
    pub created_at: Option<String>,
}

/// A catalogue product the customer holds, and through which providers (one SKU, whichever sold it).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    pub sku: String,
    pub name: String,
    /// `stripe` (a live subscription to one of its products), `piano` (active access to one of its resources).
    pub via: Vec<&'static str>,
}

/// The catalogue entries `customer` holds at `now`.
pub fn products_of(customer: &Customer, catalogue: &[CatalogueEntry], now: i64) -> Vec<ProductView> {
    let stripe_products: Vec<&str> = customer
        .stripe
        .subscriptions
        .values()
        .filter(|s| s.state.is_live())
        .flat_map(|s| s.state.items.iter().filter_map(|i| i.price.product_id.as_deref()))
        .collect();
    let piano_resources: Vec<&str> = customer
        .piano
        .entitlements
        .values()
        .map(|t| &t.state)
        .filter(|e| e.status == EntitlementStatus::Active && e.expires_at.is_none_or(|t| t > now))
        .map(|e| e.resource_id.as_str())
        .collect();
    catalogue
        .iter()
        .filter_map(|entry| {
            let mut via = Vec::new();
            if entry.stripe_product_ids.iter().any(|p| stripe_products.contains(&p.as_str())) {
                via.push("stripe");
            }
            if entry.piano_resource_ids.iter().any(|r| piano_resources.contains(&r.as_str())) {
                via.push("piano");
            }
            (!via.is_empty()).then(|| ProductView { sku: entry.sku.clone(), name: entry.name.clone(), via })
        })
        .collect()
}

/// Product names by product id, looked up by the caller.
pub type ProductNames = BTreeMap<String, String>;

fn plan_of(item: &ItemState, names: &ProductNames) -> Plan {
    let price = &item.price;
    let product_name = price.product_id.as_ref().and_then(|p| names.get(p).cloned()).or_else(|| price.nickname.clone());
    Plan {
        price_id: price.price_id.clone(),
        product_id: price.product_id.clone(),
        product_name,
        interval: price.interval.clone(),
        interval_count: price.interval_count,
        amount: price.unit_amount.map(|a| a.saturating_mul(i64::try_from(item.quantity).unwrap_or(i64::MAX))),
        currency: price.currency,
    }
}

fn subscription_view(s: &SubscriptionState, billing: &StripeBilling, names: &ProductNames) -> SubscriptionView {
    let schedule = s.schedule_id.as_ref().map(|id| {
        let status = billing.schedules.get(id).map(|t| t.state.status.clone());
        serde_json::json!({ "id": id, "status": status })
    });
    SubscriptionView {
        id: s.id.clone(),
        provider: "stripe",
        account: Some(s.account.clone()),
        status: s.status.clone(),
        items: s.items.iter().map(|i| plan_of(i, names)).collect(),
        mrr: s.mrr(),
        cancel_at_period_end: s.cancel_at_period_end,
        cancel_at: at(s.cancel_at),
        canceled_at: at(s.canceled_at),
        ended_at: at(s.ended_at),
        trial_end: at(s.trial_end),
        current_period_start: at(s.current_period_start),
        current_period_end: at(s.current_period_end),
        created: at(s.created),
        schedule,
        term_id: None,
        resource_id: None,
    }
}

fn piano_subscription_view(s: &PianoSubscription) -> SubscriptionView {
    SubscriptionView {
        id: s.id.clone(),
        provider: "piano",
        account: None,
        status: s.status.clone(),
        items: Vec::new(),
        mrr: Totals::default(),
        cancel_at_period_end: s.status == "canceled",
        cancel_at: None,
        canceled_at: None,
        ended_at: None,
        trial_end: None,
        current_period_start: None,
        current_period_end: at(s.expires_at),
        created: None,
        schedule: None,
        term_id: s.term_id.clone(),
        resource_id: s.resource_id.clone(),
    }
}

fn invoice_view(i: &InvoiceState) -> InvoiceView {
    InvoiceView {
        id: i.id.clone(),
        account: i.account.clone(),
        number: i.number.clone(),
        status: i.display_status().to_owned(),
        currency: i.currency,
        amount_due: i.amount_due,
        amount_paid: i.amount_paid,
        amount_remaining: i.amount_remaining,
        created: at(i.created),
        due_date: at(i.due_date),
        paid_at: at(i.paid_at),
        subscription_id: i.subscription_id.clone(),
        hosted_invoice_url: i.hosted_invoice_url.clone(),
    }
}

/// The product ids whose names a record shows.
pub fn product_ids(customer: &Customer) -> Vec<(AccountKey, String)> {
    let mut ids: Vec<(AccountKey, String)> = customer
        .stripe
        .subscriptions
        .values()
        .flat_map(|s| s.state.items.iter().filter_map(|i| Some((s.state.account.clone(), i.price.product_id.clone()?))))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

impl CustomerSummary {
    pub fn build(customer: &Customer) -> Self {
        let billing = &customer.stripe;
        Self {
            id: customer.id.clone(),
            email: customer.email.as_ref().map(|e| e.to_string()),
            name: customer.name.clone(),
            payment_status: customer.payment_status(),
            plan: billing.main_subscription().and_then(|s| s.items.first()).map(|i| plan_of(i, &ProductNames::new())),
            lifetime_value: customer.lifetime_value(),
            mrr: billing.mrr(),
            created_at: rfc3339(customer.created_at),
        }
    }
}

impl CustomerRecord {
    pub fn build(
        customer: &Customer,
        activities: Vec<Activity>,
        activities_next: Option<String>,
        names: &ProductNames,
        products: Vec<ProductView>,
    ) -> Self {
        let billing = &customer.stripe;
        let main = billing.main_subscription();
        let mut subscriptions: Vec<&SubscriptionState> = billing.subscriptions.values().map(|t| &t.state).collect();
        subscriptions.sort_by_key(|s| std::cmp::Reverse((s.created, s.id.clone())));
        let mut invoices: Vec<&InvoiceState> = billing.invoices.values().map(|t| &t.state).collect();
        invoices.sort_by_key(|i| std::cmp::Reverse((i.created, i.id.clone())));
        let primary: Vec<&String> = customer.stripe_customer_ids.values().collect();
        let additional = billing
            .profiles
            .iter()
            .filter(|(id, _)| !primary.contains(id))
            .map(|(id, p)| serde_json::json!({ "account": p.state.account, "id": id }))
            .collect();
        Self {
            id: customer.id.clone(),
            email: customer.email.as_ref().map(|e| e.to_string()),
            name: customer.name.clone(),
            stripe_customer_ids: customer.stripe_customer_ids.clone(),
            additional_stripe_customer_ids: additional,
            piano_uid: customer.piano_uid.clone(),
            payment_status: customer.payment_status(),
            lifecycle_stage: customer.lifecycle_stage.clone(),
            plan: main.and_then(|s| s.items.first()).map(|i| plan_of(i, names)),
            billing_cycle: main.map(|s| BillingCycle {
                current_period_start: at(s.current_period_start),
                current_period_end: at(s.current_period_end),
            }),
            lifetime_value: customer.lifetime_value(),
            mrr: billing.mrr(),
            subscriptions: subscriptions
                .into_iter()
                .map(|s| subscription_view(s, billing, names))
                .chain(customer.piano.subscriptions.values().map(|t| piano_subscription_view(&t.state)))
                .collect(),
            invoices: invoices.into_iter().map(invoice_view).collect(),
            entitlements: customer
                .piano
                .entitlements
                .values()
                .map(|t| {
                    let e = &t.state;
                    serde_json::json!({
                        "provider": "piano", "resourceId": e.resource_id, "termId": e.term_id,
                        "expiresAt": at(e.expires_at), "status": e.status,
                    })
                })
                .collect(),
            products,
            activities: activities.into_iter().map(ActivityView::from).collect(),
            activities_next,
            open_tasks: Vec::new(),
            created_at: rfc3339(customer.created_at),
            updated_at: rfc3339(customer.updated_at),
        }
    }

    /// The record with its open tasks (read apart from the customer item).
    pub fn with_open_tasks(mut self, tasks: Vec<TaskView>) -> Self {
        self.open_tasks = tasks;
        self
    }
}
