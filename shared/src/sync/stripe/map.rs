//! Stripe objects (either API shape) to the states the customer record keeps.

use crate::domain::billing::{
    CataloguePrice, ChargeState, DiscountState, InvoiceState, ItemState, PriceState, ProductState, ProfileState,
    RefundState, SubscriptionState,
};
use crate::domain::ids::AccountKey;
use crate::domain::money::{Currency, Money};
use crate::stripe::objects::{
    Charge, Coupon, Customer, DiscountRef, Invoice, Price, Product, Refund, Subscription, SubscriptionItem,
};

fn currency(code: Option<&String>) -> Option<Currency> {
    code.and_then(|c| Currency::parse(c).ok())
}

pub fn price(price: &Price) -> PriceState {
    let recurring = price.recurring.as_ref();
    PriceState {
        price_id: price.id.clone(),
        product_id: price.product.as_ref().map(|p| p.0.clone()),
        nickname: price.nickname.clone(),
        unit_amount: price.unit_amount,
        currency: currency(price.currency.as_ref()),
        interval: recurring.map(|r| r.interval.clone()),
        interval_count: recurring.map_or(1, |r| r.interval_count.max(1)),
        metered: recurring.and_then(|r| r.usage_type.as_deref()) == Some("metered"),
    }
}

pub fn catalogue_price(value: &Price) -> CataloguePrice {
    CataloguePrice {
        price: price(value),
        active: value.active.unwrap_or(true),
        deleted: value.deleted.unwrap_or(false),
    }
}

pub fn product(product: &Product) -> ProductState {
    ProductState {
        id: product.id.clone(),
        name: product.name.clone(),
        active: product.active.unwrap_or(true),
        deleted: product.deleted.unwrap_or(false),
    }
}

pub fn profile(account: &AccountKey, customer: &Customer) -> ProfileState {
    ProfileState {
        account: account.clone(),
        customer_id: customer.id.clone(),
        email: customer.email.clone().filter(|e| !e.is_empty()),
        name: customer.name.clone().filter(|n| !n.is_empty()),
        postcode: customer.address.as_ref().and_then(|a| a.postal_code.clone()).filter(|p| !p.trim().is_empty()),
        created: customer.created,
        deleted: customer.deleted.unwrap_or(false),
    }
}

fn item(item: &SubscriptionItem, fallback_quantity: Option<u64>) -> Option<ItemState> {
    Some(ItemState { price: price(&item.price()?), quantity: item.quantity.or(fallback_quantity).unwrap_or(1) })
}

fn discount(coupon: &Coupon) -> DiscountState {
    DiscountState {
        // Basis points, rounded: coupons carry at most two decimals of a percent.
        percent_off_bp: coupon
            .percent_off
            .filter(|p| p.is_finite() && *p > 0.0)
            .map(|p| (p.min(100.0) * 100.0).round() as u32),
        amount_off: coupon
            .amount_off
            .zip(currency(coupon.currency.as_ref()))
            .map(|(amount, currency)| Money::new(amount, currency)),
    }
}

pub fn subscription(account: &AccountKey, sub: &Subscription) -> SubscriptionState {
    let mut items: Vec<ItemState> = sub.items.data.iter().filter_map(|i| item(i, sub.quantity)).collect();
    if items.is_empty() {
        // Old single-plan subscriptions carry the plan on the subscription itself.
        if let Some(plan) = &sub.plan {
            items.push(ItemState { price: price(&plan.clone().into_price()), quantity: sub.quantity.unwrap_or(1) });
        }
    }
    let expanded = sub.discounts.iter().filter_map(|d| match d {
        DiscountRef::Object(d) => d.coupon(),
        DiscountRef::Id(_) => None,
    });
    let discounts = sub.discount.iter().filter_map(|d| d.coupon()).chain(expanded).map(discount).collect();
    let (start, end) = sub.period();
    SubscriptionState {
        account: account.clone(),
        id: sub.id.clone(),
        status: sub.status.clone().unwrap_or_else(|| "unknown".into()),
        items,
        current_period_start: start,
        current_period_end: end,
        cancel_at_period_end: sub.cancel_at_period_end.unwrap_or(false),
        cancel_at: sub.cancel_at,
        canceled_at: sub.canceled_at,
        ended_at: sub.ended_at,
        trial_end: sub.trial_end,
        created: sub.created.or(sub.start_date),
        schedule_id: sub.schedule.as_ref().map(|s| s.0.clone()),
        discounts,
    }
}

pub fn invoice(account: &AccountKey, invoice: &Invoice) -> InvoiceState {
    InvoiceState {
        account: account.clone(),
        id: invoice.id.clone(),
        number: invoice.number.clone(),
        status: invoice.status.clone().unwrap_or_else(|| "draft".into()),
        currency: currency(invoice.currency.as_ref()),
        amount_due: invoice.amount_due.or(invoice.total).unwrap_or(0),
        amount_paid: invoice.amount_paid.unwrap_or(0),
        amount_remaining: invoice.amount_remaining.unwrap_or(0),
        attempt_count: invoice.attempt_count.unwrap_or(0),
        created: invoice.created,
        due_date: invoice.due_date,
        paid_at: invoice.status_transitions.paid_at,
        period_start: invoice.period_start,
        period_end: invoice.period_end,
        subscription_id: invoice.subscription_id().map(str::to_owned),
        hosted_invoice_url: invoice.hosted_invoice_url.clone(),
    }
}

pub fn charge(account: &AccountKey, charge: &Charge) -> ChargeState {
    ChargeState {
        account: account.clone(),
        id: charge.id.clone(),
        status: charge.status.clone().unwrap_or_else(|| "pending".into()),
        amount: charge.amount.unwrap_or(0),
        amount_refunded: charge.amount_refunded.unwrap_or(0),
        currency: currency(charge.currency.as_ref()),
        created: charge.created,
        invoice_id: charge.invoice.as_ref().map(|i| i.0.clone()),
    }
}

pub fn refund(account: &AccountKey, refund: &Refund) -> RefundState {
    RefundState {
        account: account.clone(),
        id: refund.id.clone(),
        charge_id: refund.charge.as_ref().map(|c| c.id.clone()),
        status: refund.status.clone().unwrap_or_else(|| "pending".into()),
        amount: refund.amount.unwrap_or(0),
        currency: currency(refund.currency.as_ref()),
        created: refund.created,
    }
}
