//! The fake's subscription routes: `GET /v1/subscriptions` (list by customer and status, with
//! `expand[]=data.schedule`), `GET /v1/subscriptions/{id}` and `POST /v1/subscriptions/{id}` (cancel at
//! period end, item price and quantity, metadata), with the checks Stripe makes; and the helpers the
//! schedule routes share with them (expansion, price look-up, item reconciliation, integer parameters).

use serde_json::{Map, Value, json};

use super::State as Inner;
use super::routes::{Reply, error, invalid_param, merge_metadata, missing, no_such, now, only_known, random_id};

/// Statuses `status=` filters on; `all` and `ended` are Stripe's groupings.
/// A route's answer: success or Stripe's error, both as status and JSON (`?` works on the checks).
pub(super) type Answer = Result<Reply, Reply>;

const STATUSES: &[&str] = &[
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "trialing",
    "paused",
    "all",
    "ended",
];

/// Subscription fields that hold an id Stripe can expand (`expand[]=schedule`, `data.schedule` in lists).
pub(super) const EXPANDABLE: &[&str] = &[
    "application",
    "customer",
    "default_payment_method",
    "default_source",
    "latest_invoice",
    "on_behalf_of",
    "pending_setup_intent",
    "schedule",
    "test_clock",
];

/// `GET /v1/subscriptions`: newest `created` first; without `status` the canceled and
/// incomplete_expired ones are left out, `status=all` keeps every one, `status=ended` the canceled and
/// incomplete_expired ones, any other status only that one.
pub(super) fn list(state: &Inner, params: &Value) -> Answer {
    let known = ["customer", "price", "status", "limit", "starting_after", "ending_before", "expand"];
    let real =
        ["automatic_tax", "collection_method", "created", "current_period_end", "current_period_start", "test_clock"];
    only_supported(params, &known, &real)?;
    let limit = page_limit(params)?;
    let status = match params.get("status") {
        None => None,
        Some(value) => match value.as_str().filter(|s| STATUSES.contains(s)) {
            Some(status) => Some(status),
            None => {
                let message = format!("Invalid status: must be one of {}", STATUSES.join(", "));
                return Err((400, invalid_param("status", &message)));
            }
        },
    };
    let customer = string_param(params, "customer")?;
    let price = string_param(params, "price")?;
    let expand = expansions(params)?;

    let ended = |s: &Value| s["status"] == "canceled" || s["status"] == "incomplete_expired";
    let mut subscriptions: Vec<&Value> = state
        .newest_first("subscription")
        .filter(|s| customer.is_none_or(|c| customer_id(s) == Some(c)))
        .filter(|s| price.is_none_or(|p| items(s).iter().any(|i| i["price"]["id"] == p)))
        .filter(|s| match status {
            None => !ended(s),
            Some("all") => true,
            Some("ended") => ended(s),
            Some(status) => s["status"] == status,
        })
        .collect();
    // Newest first; among equal `created`, the last stored first (the sort is stable).
    subscriptions.sort_by_cached_key(|s| std::cmp::Reverse(s["created"].as_i64().unwrap_or(0)));

    let (page, has_more) = page(subscriptions, params, limit, "subscription")?;
    let mut data = Vec::with_capacity(page.len());
    for subscription in page {
        data.push(expand_fields(state, subscription.clone(), &expand, "data.", EXPANDABLE)?);
    }
    Ok((200, json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/subscriptions"})))
}

/// `GET /v1/subscriptions/{id}`, with `expand[]`.
pub(super) fn retrieve(state: &Inner, id: &str, params: &Value) -> Answer {
    only_known(params, &["expand"])?;
    let expand = expansions(params)?;
    let Some(subscription) = subscription(state, id) else { return Err(no_such("subscription", id)) };
    Ok((200, expand_fields(state, subscription, &expand, "", EXPANDABLE)?))
}

/// `POST /v1/subscriptions/{id}`: `cancel_at_period_end`, `items[i][id|price|quantity|metadata]`,
/// `metadata`, `cancellation_details`, `proration_behavior`, `proration_date`, `payment_behavior`.
pub(super) fn update(state: &mut Inner, id: &str, params: &Value) -> Answer {
    let known = [
        "cancel_at_period_end",
        "cancellation_details",
        "items",
        "metadata",
        "proration_behavior",
        "proration_date",
        "payment_behavior",
        "expand",
    ];
    let real = [
        "add_invoice_items",
        "application_fee_percent",
        "automatic_tax",
        "billing_cycle_anchor",
        "billing_thresholds",
        "cancel_at",
        "collection_method",
        "days_until_due",
        "default_payment_method",
        "default_source",
        "default_tax_rates",
        "description",
        "discounts",
        "invoice_settings",
        "off_session",
        "on_behalf_of",
        "pause_collection",
        "payment_settings",
        "pending_invoice_item_interval",
        "transfer_data",
        "trial_end",
        "trial_from_plan",
        "trial_settings",
    ];
    only_supported(params, &known, &real)?;
    let expand = expansions(params)?;
    let Some(mut subscription) = subscription(state, id) else { return Err(no_such("subscription", id)) };

    let object = params.as_object().cloned().unwrap_or_default();
    let status = subscription["status"].as_str().unwrap_or_default();
    if (status == "canceled" || status == "incomplete_expired")
        && object.keys().any(|k| !["metadata", "cancellation_details", "expand"].contains(&k.as_str()))
    {
        return Err((400, error("A canceled subscription can only update its cancellation_details and metadata.")));
    }
    if let Some(behavior) = params.get("proration_behavior") {
        one_of(behavior, "proration_behavior", &["create_prorations", "none", "always_invoice"])?;
    }
    if let Some(behavior) = params.get("payment_behavior") {
        let allowed = ["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"];
        one_of(behavior, "payment_behavior", &allowed)?;
    }
    if params.get("proration_date").is_some() {
        integer(params, "proration_date")?;
    }

    if let Some(cancel) = params.get("cancel_at_period_end") {
        let Some(cancel) = super::routes::boolean(cancel) else {
            return Err((400, invalid_param("cancel_at_period_end", "Invalid boolean")));
        };
        if let Some(schedule) = schedule_id(&subscription) {
            return Err((
                400,
                error(&format!(
                    "The subscription is managed by the subscription schedule `{schedule}`, and updating any \
                     cancelation behavior directly is not allowed. Please update the schedule instead."
                )),
            ));
        }
        subscription["cancel_at_period_end"] = json!(cancel);
        if cancel {
            subscription["cancel_at"] = period(&subscription).1.map_or(Value::Null, |end| json!(end));
            subscription["canceled_at"] = json!(now());
            subscription["cancellation_details"]["reason"] = json!("cancellation_requested");
        } else {
            subscription["cancel_at"] = Value::Null;
            subscription["canceled_at"] = Value::Null;
            subscription["cancellation_details"]["reason"] = Value::Null;
        }
    }
    if let Some(details) = params.get("cancellation_details") {
        let Some(details) = details.as_object() else {
            return Err((400, invalid_param("cancellation_details", "Invalid hash")));
        };
        only_known_nested(details, "cancellation_details", &["comment", "feedback"], &[])?;
        if let Some(comment) = details.get("comment") {
            subscription["cancellation_details"]["comment"] = if comment == "" { Value::Null } else { comment.clone() };
        }
        if let Some(feedback) = details.get("feedback") {
            let allowed = [
                "customer_service",
                "low_quality",
                "missing_features",
                "other",
                "switched_service",
                "too_complex",
                "too_expensive",
                "unused",
            ];
            if feedback != "" {
                one_of(feedback, "cancellation_details[feedback]", &allowed)?;
            }
            subscription["cancellation_details"]["feedback"] =
                if feedback == "" { Value::Null } else { feedback.clone() };
        }
    }
    if let Some(updates) = params.get("items") {
        let Some(updates) = updates.as_array() else { return Err((400, invalid_param("items", "Invalid array"))) };
        let mut items = items(&subscription);
        for (i, update) in updates.iter().enumerate() {
            let name = format!("items[{i}]");
            let Some(update) = update.as_object() else { return Err((400, invalid_param(&name, "Invalid hash"))) };
            let real = ["billing_thresholds", "clear_usage", "deleted", "discounts", "plan", "price_data", "tax_rates"];
            only_known_nested(update, &name, &["id", "price", "quantity", "metadata"], &real)?;
            let index = match update.get("id") {
                Some(item_id) => match items.iter().position(|item| item["id"] == *item_id) {
                    Some(index) => index,
                    None => {
                        let item_id = item_id.as_str().unwrap_or_default();
                        return Err(missing_object("subscription item", item_id, &format!("{name}[id]")));
                    }
                },
                None => {
                    if update.get("price").is_none() {
                        return Err((400, missing(&format!("{name}[price]"))));
                    }
                    items.push(new_item(&subscription, id));
                    items.len() - 1
                }
            };
            let item = &mut items[index];
            if let Some(price) = update.get("price") {
                let price = recurring_price(state, price, &format!("{name}[price]"))?;
                set_item_price(item, price);
            }
            if update.contains_key("quantity") {
                item["quantity"] = json!(nested_integer(update, "quantity", &format!("{name}[quantity]"))?);
            }
            if let Some(metadata) = update.get("metadata") {
                let current = item["metadata"].as_object().cloned().unwrap_or_default();
                item["metadata"] = Value::Object(merge_metadata(&current, metadata)?);
            }
        }
        subscription["items"]["data"] = Value::Array(items);
    }
    if let Some(metadata) = params.get("metadata") {
        let current = subscription["metadata"].as_object().cloned().unwrap_or_default();
        subscription["metadata"] = Value::Object(merge_metadata(&current, metadata)?);
    }
    state.insert(subscription.clone());
    Ok((200, expand_fields(state, subscription, &expand, "", EXPANDABLE)?))
}

// ---- helpers shared with the schedule routes ----

pub(super) fn subscription(state: &Inner, id: &str) -> Option<Value> {
    state.objects.get(id).filter(|o| o["object"] == "subscription").cloned()
}

/// The subscription's items (`items.data`).
pub(super) fn items(subscription: &Value) -> Vec<Value> {
    subscription["items"]["data"].as_array().cloned().unwrap_or_default()
}

/// The current billing period: on the first item (current API) or on the subscription (older API).
pub(super) fn period(subscription: &Value) -> (Option<i64>, Option<i64>) {
    let item = &subscription["items"]["data"][0];
    let field = |name: &str| item[name].as_i64().or_else(|| subscription[name].as_i64());
    (field("current_period_start"), field("current_period_end"))
}

/// The id of the schedule attached to a subscription, whether or not it was expanded.
pub(super) fn schedule_id(subscription: &Value) -> Option<String> {
    match &subscription["schedule"] {
        Value::String(id) => Some(id.clone()),
        Value::Object(schedule) => schedule.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn customer_id(subscription: &Value) -> Option<&str> {
    subscription["customer"].as_str().or_else(|| subscription["customer"]["id"].as_str())
}

/// The stored price a parameter names, refused like Stripe when it does not exist, is inactive or is
/// not recurring.
pub(super) fn recurring_price(state: &Inner, price: &Value, param: &str) -> Result<Value, Reply> {
    let Some(id) = price.as_str().filter(|id| !id.is_empty()) else {
        return Err((400, invalid_param(param, "Invalid string")));
    };
    let Some(price) = state.objects.get(id).filter(|o| o["object"] == "price") else {
        return Err(missing_object("price", id, param));
    };
    if price["active"] == false {
        return Err((
            400,
            invalid_param(param, "The price specified is inactive. This field only accepts active prices."),
        ));
    }
    if price["type"] == "one_time" {
        let message = "The price specified is set to `type=one_time` but this field only accepts prices with \
                       `type=recurring`.";
        return Err((400, invalid_param(param, message)));
    }
    Ok(price.clone())
}

/// Puts a price on a subscription item; the legacy `plan` mirror, when the item has one, follows it.
pub(super) fn set_item_price(item: &mut Value, price: Value) {
    if item["plan"].is_object() {
        let plan = &mut item["plan"];
        plan["id"] = price["id"].clone();
        plan["active"] = price["active"].clone();
        plan["amount"] = price["unit_amount"].clone();
        plan["amount_decimal"] = price["unit_amount_decimal"].clone();
        plan["billing_scheme"] = price["billing_scheme"].clone();
        plan["created"] = price["created"].clone();
        plan["currency"] = price["currency"].clone();
        plan["interval"] = price["recurring"]["interval"].clone();
        plan["interval_count"] = price["recurring"]["interval_count"].clone();
        plan["livemode"] = price["livemode"].clone();
        plan["metadata"] = price["metadata"].clone();
        plan["nickname"] = price["nickname"].clone();
        plan["product"] = price["product"].clone();
        plan["tiers_mode"] = price["tiers_mode"].clone();
        plan["trial_period_days"] = price["recurring"]["trial_period_days"].clone();
        plan["usage_type"] = price["recurring"]["usage_type"].clone();
    }
    item["price"] = price;
}

/// A new item for a subscription, shaped like its first item (or Stripe's fixture), in its period.
pub(super) fn new_item(subscription: &Value, subscription_id: &str) -> Value {
    let (start, end) = period(subscription);
    let mut item = subscription["items"]["data"][0].clone();
    if !item.is_object() {
        item = super::fixture("subscription_item");
    }
    item["id"] = json!(format!("si_{}", random_id(14)));
    item["created"] = json!(now());
    item["metadata"] = json!({});
    item["quantity"] = json!(1);
    item["discounts"] = json!([]);
    item["tax_rates"] = json!([]);
    item["subscription"] = json!(subscription_id);
    item["current_period_start"] = start.map_or(Value::Null, |s| json!(s));
    item["current_period_end"] = end.map_or(Value::Null, |e| json!(e));
    item
}

/// The subscription's items made to match a schedule phase's (`[{price: id, quantity}]`), as Stripe
/// does when a phase starts or the current phase changes: items of a kept price stay (with the
/// phase's quantity), new prices get new items, the others go.
pub(super) fn apply_phase_items(state: &Inner, subscription: &mut Value, phase_items: &[Value]) {
    let id = subscription["id"].as_str().unwrap_or_default().to_owned();
    let current = items(subscription);
    let mut next = Vec::with_capacity(phase_items.len());
    for phase_item in phase_items {
        let price_id = phase_item["price"].as_str().unwrap_or_default();
        let mut item = match current.iter().find(|i| i["price"]["id"] == price_id) {
            Some(item) => item.clone(),
            None => {
                let mut item = new_item(subscription, &id);
                if let Some(price) = state.objects.get(price_id) {
                    set_item_price(&mut item, price.clone());
                }
                item
            }
        };
        item["quantity"] = phase_item["quantity"].clone();
        next.push(item);
    }
    subscription["items"]["data"] = Value::Array(next);
}

/// The `expand[]` paths asked for.
pub(super) fn expansions(params: &Value) -> Result<Vec<String>, Reply> {
    match params.get("expand") {
        None => Ok(Vec::new()),
        Some(Value::Array(paths)) => paths
            .iter()
            .map(|p| p.as_str().map(str::to_owned).ok_or_else(|| (400, invalid_param("expand", "Invalid array"))))
            .collect(),
        Some(_) => Err((400, invalid_param("expand", "Invalid array"))),
    }
}

/// Replaces the ids that `paths` (each `{prefix}{field}`, `field` one of `expandable`) name with the
/// stored objects; an id whose
/// object the fake does not hold stays an id, a null stays null.
pub(super) fn expand_fields(
    state: &Inner,
    mut object: Value,
    paths: &[String],
    prefix: &str,
    expandable: &[&str],
) -> Result<Value, Reply> {
    for path in paths {
        let Some(field) = path.strip_prefix(prefix) else {
            let hint = if prefix.is_empty() {
                String::new()
            } else {
                format!(" You may want to try expanding '{prefix}{path}' instead.")
            };
            return Err((400, invalid_param("expand", &format!("This property cannot be expanded ({path}).{hint}"))));
        };
        if field.contains('.') {
            return Err(fake_limit(&format!("expand[]={path} (nested expansion)")));
        }
        if !expandable.contains(&field) || object.get(field).is_none() {
            return Err((400, invalid_param("expand", &format!("This property cannot be expanded ({field})."))));
        }
        if let Some(id) = object[field].as_str()
            && let Some(target) = state.objects.get(id)
        {
            object[field] = target.clone();
        }
    }
    Ok(object)
}

/// A list's `limit`: 10 when absent, 1 to 100.
pub(super) fn page_limit(params: &Value) -> Result<usize, Reply> {
    match params.get("limit") {
        None => Ok(10),
        Some(value) => match value.as_str().map(str::parse::<usize>) {
            Some(Ok(limit)) if (1..=100).contains(&limit) => Ok(limit),
            _ => Err((400, invalid_param("limit", "Invalid integer: limit must be between 1 and 100."))),
        },
    }
}

/// A page of a list, newest first: `starting_after` / `ending_before` cursors and `limit`.
pub(super) fn page<'a>(
    all: Vec<&'a Value>,
    params: &Value,
    limit: usize,
    object_type: &str,
) -> Result<(Vec<&'a Value>, bool), Reply> {
    let position = |cursor: &str| all.iter().position(|o| o["id"] == cursor);
    match (params.get("starting_after").and_then(Value::as_str), params.get("ending_before").and_then(Value::as_str)) {
        (Some(_), Some(_)) => {
            Err((400, error("You may only specify one of these parameters: ending_before, starting_after.")))
        }
        (Some(after), None) => {
            let Some(i) = position(after) else { return Err(no_such(object_type, after)) };
            let rest = &all[i + 1..];
            Ok((rest.iter().take(limit).copied().collect(), rest.len() > limit))
        }
        (None, Some(before)) => {
            let Some(i) = position(before) else { return Err(no_such(object_type, before)) };
            let earlier = &all[..i];
            let from = earlier.len().saturating_sub(limit);
            Ok((earlier[from..].to_vec(), from > 0))
        }
        (None, None) => Ok((all.iter().take(limit).copied().collect(), all.len() > limit)),
    }
}

/// Unknown parameters are Stripe's `parameter_unknown`; real Stripe parameters this fake does not
/// implement are refused with a message saying so, so that a test never passes on an ignored one.
pub(super) fn only_supported(params: &Value, known: &[&str], real: &[&str]) -> Result<(), Reply> {
    let object = params.as_object().cloned().unwrap_or_default();
    only_known_nested(&object, "", known, real)
}

/// `only_supported` on a nested hash whose parameter name is `name` (`items[0]`).
pub(super) fn only_known_nested(
    object: &Map<String, Value>,
    name: &str,
    known: &[&str],
    real: &[&str],
) -> Result<(), Reply> {
    for key in object.keys() {
        let full = if name.is_empty() { key.clone() } else { format!("{name}[{key}]") };
        if real.contains(&key.as_str()) {
            return Err(fake_limit(&full));
        }
        if !known.contains(&key.as_str()) {
            return Err((
                400,
                json!({"error": {
                    "type": "invalid_request_error",
                    "code": "parameter_unknown",
                    "message": format!("Received unknown parameter: {full}"),
                    "param": full,
                }}),
            ));
        }
    }
    Ok(())
}

/// A real Stripe parameter or feature the fake does not implement.
pub(super) fn fake_limit(what: &str) -> (u16, Value) {
    (
        400,
        json!({"error": {
            "type": "invalid_request_error",
            "code": "fake_stripe_unsupported",
            "message": format!("The fake Stripe does not implement {what}: add it to tests/support/fake_stripe."),
        }}),
    )
}

/// Stripe's 400 for an id parameter naming an object that does not exist.
pub(super) fn missing_object(object_type: &str, id: &str, param: &str) -> (u16, Value) {
    (
        400,
        json!({"error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": format!("No such {object_type}: '{id}'"),
            "param": param,
        }}),
    )
}

pub(super) fn one_of(value: &Value, param: &str, allowed: &[&str]) -> Result<(), Reply> {
    if value.as_str().is_some_and(|v| allowed.contains(&v)) {
        return Ok(());
    }
    let list = match allowed.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{}, or {last}", rest.join(", ")),
        _ => allowed.join(""),
    };
    Err((400, invalid_param(param, &format!("Invalid {param}: must be one of {list}"))))
}

/// A top-level integer parameter.
pub(super) fn integer(params: &Value, name: &str) -> Result<i64, Reply> {
    let object = params.as_object().cloned().unwrap_or_default();
    nested_integer(&object, name, name)
}

/// An integer in a nested hash; `param` is its full bracket name for the error.
pub(super) fn nested_integer(object: &Map<String, Value>, key: &str, param: &str) -> Result<i64, Reply> {
    let value = object.get(key).and_then(Value::as_str).unwrap_or_default();
    value.parse::<i64>().map_err(|_| (400, invalid_param(param, &format!("Invalid integer: {value}"))))
}

fn string_param<'a>(params: &'a Value, name: &str) -> Result<Option<&'a str>, Reply> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err((400, invalid_param(name, "Invalid string"))),
    }
}
