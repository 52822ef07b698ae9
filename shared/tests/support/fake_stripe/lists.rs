//! The fake's list routes besides subscriptions: `GET /v1/{customers|invoices|charges|refunds|products|
//! prices|events|webhook_endpoints}`, newest `created` first, with `limit`, `starting_after`/`ending_before`, `created[gt|gte|lt|lte]`,
//! `customer` (invoices, charges), `expand[]=data.…` (a refund's charge, …), and for events `type`, `types[]` and `delivery_success` (an event is
//! undelivered while `pending_webhooks` > 0). `GET /v1/account` answers the fixture account.

use serde_json::{Value, json};

use super::routes::{Reply, invalid_param};
use super::subscriptions::{Answer, expand_fields, expansions, only_supported, page, page_limit};
use super::{State as Inner, fixture};

/// Fields each list expands (`expand[]=data.{field}`).
const EXPANDABLE: &[(&str, &[&str])] =
    &[("refunds", &["charge"]), ("charges", &["customer", "invoice"]), ("invoices", &["customer", "subscription"])];

/// Resources listed here, with their `object` type, the filters this fake implements beyond paging,
/// and the real ones it does not.
const LISTS: &[(&str, &str, &[&str], &[&str])] = &[
    ("customers", "customer", &["email"], &["test_clock"]),
    ("invoices", "invoice", &["customer", "status"], &["collection_method", "due_date", "subscription"]),
    ("charges", "charge", &["customer"], &["payment_intent", "transfer_group"]),
    ("refunds", "refund", &["charge"], &["payment_intent"]),
    ("products", "product", &["active"], &["ids", "shippable", "url"]),
    ("prices", "price", &["active", "product"], &["currency", "lookup_keys", "recurring", "type"]),
    ("events", "event", &["type", "types", "delivery_success"], &[]),
    ("webhook_endpoints", "webhook_endpoint", &[], &[]),
];

pub(super) fn is_list(resource: &str) -> bool {
    LISTS.iter().any(|(r, ..)| *r == resource)
}

pub(super) fn account(state: &Inner) -> Reply {
    let mut account = fixture("account");
    if let Some(created) = state.account_created {
        account["created"] = json!(created);
    }
    (200, account)
}

pub(super) fn list(state: &Inner, resource: &str, params: &Value) -> Answer {
    let Some(&(_, object_type, filters, real)) = LISTS.iter().find(|(r, ..)| *r == resource) else {
        return Err((404, invalid_param("url", "Unrecognized request URL")));
    };
    let mut known = vec!["limit", "starting_after", "ending_before", "expand", "created"];
    known.extend_from_slice(filters);
    only_supported(params, &known, real)?;
    let limit = page_limit(params)?;
    let created = created_range(params)?;
    let matches = |o: &Value| -> bool {
        let field = |name: &str| params.get(name).and_then(Value::as_str);
        let text = |o: &Value, name: &str| o[name].as_str().or_else(|| o[name]["id"].as_str()).map(str::to_owned);
        let created_at = o["created"].as_i64().unwrap_or(0);
        created.iter().all(|(op, bound)| match *op {
            "gt" => created_at > *bound,
            "gte" => created_at >= *bound,
            "lt" => created_at < *bound,
            _ => created_at <= *bound,
        }) && ["customer", "charge", "product", "email", "status"]
            .iter()
            .all(|name| field(name).is_none_or(|want| text(o, name).as_deref() == Some(want)))
            && field("active").is_none_or(|want| o["active"].as_bool().map(|b| b.to_string()).as_deref() == Some(want))
            && field("type").is_none_or(|want| o["type"] == want)
            && params.get("types").and_then(Value::as_array).is_none_or(|types| types.contains(&o["type"]))
            && field("delivery_success").is_none_or(|want| {
                let delivered = o["pending_webhooks"].as_i64().unwrap_or(0) == 0;
                delivered.to_string() == want
            })
    };
    let mut all: Vec<&Value> = state.newest_first(object_type).filter(|o| matches(o)).collect();
    all.sort_by_cached_key(|o| std::cmp::Reverse(o["created"].as_i64().unwrap_or(0)));
    let expand = expansions(params)?;
    let expandable = EXPANDABLE.iter().find(|(r, _)| *r == resource).map_or(&[][..], |(_, fields)| *fields);
    let (data, has_more) = page(all, params, limit, object_type)?;
    let data = data
        .into_iter()
        .map(|o| expand_fields(state, o.clone(), &expand, "data.", expandable))
        .collect::<Result<Vec<Value>, Reply>>()?;
    Ok((200, json!({"object": "list", "data": data, "has_more": has_more, "url": format!("/v1/{resource}")})))
}

/// `created[gt]=…` and the like, or `created=…` (equal).
fn created_range(params: &Value) -> Result<Vec<(&'static str, i64)>, Reply> {
    let parse = |name: &str, v: &Value| {
        v.as_str().and_then(|s| s.parse::<i64>().ok()).ok_or_else(|| (400, invalid_param(name, "Invalid integer")))
    };
    match params.get("created") {
        None => Ok(Vec::new()),
        Some(Value::Object(range)) => {
            let mut out = Vec::new();
            for (op, value) in range {
                let op = ["gt", "gte", "lt", "lte"]
                    .into_iter()
                    .find(|k| k == op)
                    .ok_or_else(|| (400, invalid_param(&format!("created[{op}]"), "Received unknown parameter")))?;
                out.push((op, parse(&format!("created[{op}]"), value)?));
            }
            Ok(out)
        }
        Some(value) => {
            let at = parse("created", value)?;
            Ok(vec![("gte", at), ("lte", at)])
        }
    }
}
