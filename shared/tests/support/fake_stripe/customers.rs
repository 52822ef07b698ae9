//! Customer creation and update as Stripe does them: `POST /v1/customers` (email, name, metadata,
//! description) answers a fixture-shaped customer with a fresh `cus_` id; `POST /v1/customers/{id}`
//! changes the fields given (metadata merged, empty values unset).

use serde_json::{Map, Value, json};

use super::State as Inner;
use super::fixture;
use super::routes::{Reply, invalid_param, merge_metadata, no_such, now, only_known, random_id};

const KNOWN: &[&str] = &["email", "name", "description", "metadata", "phone", "expand"];

pub(super) fn create(state: &mut Inner, params: &Value) -> Result<Reply, Reply> {
    only_known(params, KNOWN)?;
    let mut customer = fixture("customer");
    customer["id"] = json!(format!("cus_{}", random_id(14)));
    customer["created"] = json!(now());
    customer["livemode"] = json!(false);
    customer["metadata"] = json!({});
    for field in ["email", "name", "description", "phone"] {
        customer[field] = Value::Null;
    }
    apply(&mut customer, params)?;
    state.insert(customer.clone());
    Ok((200, customer))
}

pub(super) fn update(state: &mut Inner, id: &str, params: &Value) -> Result<Reply, Reply> {
    only_known(params, KNOWN)?;
    let Some(mut customer) = state.objects.get(id).filter(|o| o["object"] == "customer").cloned() else {
        return Err(no_such("customer", id));
    };
    apply(&mut customer, params)?;
    state.insert(customer.clone());
    Ok((200, customer))
}

fn apply(customer: &mut Value, params: &Value) -> Result<(), Reply> {
    for field in ["email", "name", "description", "phone"] {
        match params.get(field) {
            None => {}
            Some(Value::String(s)) if s.is_empty() => customer[field] = Value::Null,
            Some(Value::String(s)) => customer[field] = json!(s),
            Some(_) => return Err((400, invalid_param(field, "Invalid string"))),
        }
    }
    if let Some(update) = params.get("metadata") {
        let current = customer["metadata"].as_object().cloned().unwrap_or_else(Map::new);
        customer["metadata"] = Value::Object(merge_metadata(&current, update)?);
    }
    Ok(())
}
