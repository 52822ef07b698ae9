//! Task titles and notes from rule templates: `{customer.email}`, `{customer.name}`, `{event.type}`
//! (the trigger's name) and `{amount}` (e.g. `15.00 USD`), replaced in one pass, so a customer's name
//! that looks like a placeholder stays as written. Unknown placeholders stay as they are.

use super::fired::Fired;
use crate::domain::customer::Customer;

/// Longest rendered text kept (characters); templates are at most 500, emails and names add to them.
pub const MAX_RENDERED: usize = 1000;

pub fn render(template: &str, customer: &Customer, fired: &Fired) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let value = tail.find('}').and_then(|end| {
            let value = match &tail[1..end] {
                "customer.email" => customer.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                "customer.name" => customer.name.clone().unwrap_or_default(),
                "event.type" => fired.trigger.as_str().to_owned(),
                "amount" => fired.amount.as_ref().map(|m| m.display()).unwrap_or_default(),
                _ => return None,
            };
            Some((value, end + 1))
        });
        match value {
            Some((value, used)) => {
                out.push_str(&value);
                rest = &tail[used..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    crate::domain::ids::truncate(&out, MAX_RENDERED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::automation::Trigger;
    use crate::domain::ids::{CustomerId, Email, PublicationId};
    use crate::domain::money::{Currency, Money};

    #[test]
    fn placeholders_are_replaced_once() {
        let mut customer = Customer::new(PublicationId::parse("daily").unwrap(), 0);
        customer.email = Some(Email::parse("ann@example.com").unwrap());
        customer.name = Some("{amount} Ann".into());
        let fired = Fired {
            trigger: Trigger::PaymentFailed,
            customer_id: CustomerId::generate(),
            event_id: "evt_1".into(),
            at: 0,
            amount: Some(Money::new(1500, Currency::parse("usd").unwrap())),
            product_ids: Vec::new(),
            price_ids: Vec::new(),
            summary: String::new(),
            provider: "stripe".into(),
            fact: None,
        };
        let text =
            render("{event.type}: call {customer.name} <{customer.email}> about {amount} {other} {", &customer, &fired);
        assert_eq!(text, "payment_failed: call {amount} Ann <ann@example.com> about 15.00 USD {other} {");
        customer.email = None;
        assert_eq!(render("x{customer.email}y", &customer, &Fired { amount: None, ..fired }), "xy");
    }
}
