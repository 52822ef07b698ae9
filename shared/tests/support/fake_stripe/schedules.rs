//! The fake's subscription schedule routes: `POST /v1/subscription_schedules` (`from_subscription`
//! only), `POST /v1/subscription_schedules/{id}` (phases, end and proration behaviour, metadata) and
//! `POST /v1/subscription_schedules/{id}/release`, with the checks Stripe makes. Schedules are
//! Stripe's fixture object with its fields overwritten; retrieval is the generic `GET` of `routes`.

use serde_json::{Map, Value, json};
use time::{Date, Month, OffsetDateTime};

use super::State as Inner;
use super::routes::{Reply, boolean, error, invalid_param, merge_metadata, missing, no_such, now, random_id};
use super::subscriptions::{
    Answer, apply_phase_items, expand_fields, expansions, fake_limit, missing_object, nested_integer, one_of,
    only_known_nested, only_supported, period, recurring_price, schedule_id, subscription,
};

/// Schedule fields that hold an id Stripe can expand.
const EXPANDABLE: &[&str] = &["application", "customer", "subscription", "test_clock"];

/// The statuses in which a schedule can still be changed or released.
const OPEN: &[&str] = &["not_started", "active"];

const PRORATION: &[&str] = &["create_prorations", "none", "always_invoice"];

/// `POST /v1/subscription_schedules` with `from_subscription`: a schedule of one phase, the
/// subscription's current period with its items, now managing that subscription.
pub(super) fn create(state: &mut Inner, params: &Value) -> Answer {
    let known = ["from_subscription", "metadata", "expand", "customer", "phases", "start_date", "end_behavior"];
    only_supported(params, &known, &["default_settings", "billing_mode"])?;
    let expand = expansions(params)?;
    let Some(from) = params.get("from_subscription") else {
        return Err(fake_limit("creating a schedule without from_subscription"));
    };
    for other in ["customer", "phases", "start_date", "end_behavior"] {
        if params.get(other).is_some() {
            return Err((
                400,
                invalid_param(other, &format!("You cannot set `{other}` if `from_subscription` is set.")),
            ));
        }
    }
    let Some(from) = from.as_str().filter(|id| !id.is_empty()) else {
        return Err((400, invalid_param("from_subscription", "Invalid string")));
    };
    let Some(mut subscription) = subscription(state, from) else {
        return Err(missing_object("subscription", from, "from_subscription"));
    };
    if let Some(attached) = schedule_id(&subscription) {
        return Err((
            400,
            error(&format!("You cannot migrate a subscription that is already attached to a schedule: `{attached}`.")),
        ));
    }
    let status = subscription["status"].as_str().unwrap_or_default().to_owned();
    if status == "canceled" || status == "incomplete_expired" {
        let message = format!("You cannot migrate a subscription that is in the `{status}` status.");
        return Err((400, invalid_param("from_subscription", &message)));
    }
    let metadata = match params.get("metadata") {
        None => Map::new(),
        Some(update) => merge_metadata(&Map::new(), update)?,
    };

    let (start, end) = period(&subscription);
    let items: Vec<Value> = super::subscriptions::items(&subscription)
        .iter()
        .map(|item| phase_item(item["price"]["id"].as_str().unwrap_or_default(), &item["quantity"], &json!({})))
        .collect();
    let mut first = phase(start, end, items, &subscription["currency"]);
    first["default_payment_method"] = subscription["default_payment_method"].clone();

    let mut schedule = super::fixture("subscription_schedule");
    let id = format!("sub_sched_{}", random_id(24));
    schedule["id"] = json!(id);
    schedule["created"] = json!(now());
    schedule["customer"] = customer_id(&subscription);
    schedule["subscription"] = json!(from);
    schedule["status"] = json!("active");
    schedule["current_phase"] = json!({"start_date": first["start_date"], "end_date": first["end_date"]});
    schedule["phases"] = json!([first]);
    schedule["end_behavior"] = json!("release");
    schedule["metadata"] = Value::Object(metadata);
    for field in ["canceled_at", "completed_at", "released_at", "released_subscription", "application"] {
        schedule[field] = Value::Null;
    }
    schedule["livemode"] = subscription["livemode"].clone();
    schedule["test_clock"] = subscription["test_clock"].clone();
    if subscription.get("billing_mode").is_some() {
        schedule["billing_mode"] = subscription["billing_mode"].clone();
    }
    let defaults = &mut schedule["default_settings"];
    defaults["collection_method"] = subscription["collection_method"].clone();
    defaults["default_payment_method"] = subscription["default_payment_method"].clone();
    defaults["description"] = subscription["description"].clone();
    defaults["automatic_tax"] = subscription["automatic_tax"].clone();
    defaults["on_behalf_of"] = subscription["on_behalf_of"].clone();
    defaults["application_fee_percent"] = subscription["application_fee_percent"].clone();
    defaults["invoice_settings"]["days_until_due"] = subscription["days_until_due"].clone();
    for field in ["transfer_data", "billing_thresholds"] {
        defaults[field] = Value::Null;
    }

    subscription["schedule"] = json!(id);
    state.insert(subscription);
    state.insert(schedule.clone());
    Ok((200, expand_fields(state, schedule, &expand, "", EXPANDABLE)?))
}

/// `POST /v1/subscription_schedules/{id}`: `phases` replaces every phase (the first one keeps the
/// current phase's start while the schedule is active), and the first phase's items become the
/// subscription's; `end_behavior`, `proration_behavior`, `metadata`.
pub(super) fn update(state: &mut Inner, id: &str, params: &Value) -> Answer {
    let known = ["phases", "end_behavior", "proration_behavior", "metadata", "expand"];
    only_supported(params, &known, &["default_settings"])?;
    let expand = expansions(params)?;
    let Some(mut schedule) = schedule(state, id) else { return Err(no_such("subscription_schedule", id)) };
    let status = schedule["status"].as_str().unwrap_or_default().to_owned();
    if !OPEN.contains(&status.as_str()) {
        return Err((400, error(&not_open("update", &status))));
    }
    if let Some(behavior) = params.get("end_behavior") {
        one_of(behavior, "end_behavior", &["release", "cancel", "none", "renew"])?;
    }
    if let Some(behavior) = params.get("proration_behavior") {
        one_of(behavior, "proration_behavior", PRORATION)?;
    }
    let phases = match params.get("phases") {
        None => None,
        Some(phases) => Some(parse_phases(state, &schedule, phases)?),
    };
    if let Some(metadata) = params.get("metadata") {
        let current = schedule["metadata"].as_object().cloned().unwrap_or_default();
        schedule["metadata"] = Value::Object(merge_metadata(&current, metadata)?);
    }
    if let Some(behavior) = params.get("end_behavior") {
        schedule["end_behavior"] = behavior.clone();
    }
    if let Some(phases) = phases {
        if status == "active" {
            schedule["current_phase"] =
                json!({"start_date": phases[0]["start_date"], "end_date": phases[0]["end_date"]});
            // The current phase applies to the subscription at once.
            if let Some(sub_id) = attached_subscription(&schedule)
                && let Some(mut subscription) = subscription(state, &sub_id)
            {
                let items = phases[0]["items"].as_array().cloned().unwrap_or_default();
                apply_phase_items(state, &mut subscription, &items);
                state.insert(subscription);
            }
        }
        schedule["phases"] = Value::Array(phases);
    }
    state.insert(schedule.clone());
    Ok((200, expand_fields(state, schedule, &expand, "", EXPANDABLE)?))
}

/// `POST /v1/subscription_schedules/{id}/release`: the schedule lets go of its subscription, which
/// keeps its items and (unless `preserve_cancel_date=false`) its cancel date.
pub(super) fn release(state: &mut Inner, id: &str, params: &Value) -> Answer {
    only_supported(params, &["preserve_cancel_date", "expand"], &[])?;
    let expand = expansions(params)?;
    let preserve = match params.get("preserve_cancel_date") {
        None => true,
        Some(value) => match boolean(value) {
            Some(preserve) => preserve,
            None => return Err((400, invalid_param("preserve_cancel_date", "Invalid boolean"))),
        },
    };
    let Some(mut schedule) = schedule(state, id) else { return Err(no_such("subscription_schedule", id)) };
    let status = schedule["status"].as_str().unwrap_or_default().to_owned();
    if !OPEN.contains(&status.as_str()) {
        return Err((400, error(&not_open("release", &status))));
    }
    let released = attached_subscription(&schedule);
    schedule["status"] = json!("released");
    schedule["released_at"] = json!(now());
    schedule["released_subscription"] = released.as_deref().map_or(Value::Null, |s| json!(s));
    schedule["subscription"] = Value::Null;
    schedule["current_phase"] = Value::Null;
    if let Some(sub_id) = released
        && let Some(mut subscription) = subscription(state, &sub_id)
    {
        subscription["schedule"] = Value::Null;
        if !preserve {
            subscription["cancel_at"] = Value::Null;
            subscription["cancel_at_period_end"] = json!(false);
            subscription["canceled_at"] = Value::Null;
        }
        state.insert(subscription);
    }
    state.insert(schedule.clone());
    Ok((200, expand_fields(state, schedule, &expand, "", EXPANDABLE)?))
}

fn schedule(state: &Inner, id: &str) -> Option<Value> {
    state.objects.get(id).filter(|o| o["object"] == "subscription_schedule").cloned()
}

fn attached_subscription(schedule: &Value) -> Option<String> {
    match &schedule["subscription"] {
        Value::String(id) => Some(id.clone()),
        Value::Object(subscription) => subscription.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn customer_id(subscription: &Value) -> Value {
    match &subscription["customer"] {
        Value::Object(customer) => customer.get("id").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    }
}

fn not_open(action: &str, status: &str) -> String {
    format!(
        "You cannot {action} a subscription schedule that is currently in the `{status}` status. It must be in one \
         of the following statuses: `not_started`, `active`."
    )
}

/// The `phases` parameter read into Stripe's phase objects, each with its `start_date` and `end_date`
/// (from `end_date`, or `iterations` of the first price's interval, one by default).
fn parse_phases(state: &Inner, schedule: &Value, phases: &Value) -> Result<Vec<Value>, Reply> {
    let Some(phases) = phases.as_array().filter(|p| !p.is_empty()) else {
        return Err((400, invalid_param("phases", "Invalid array")));
    };
    let current_start =
        schedule["current_phase"]["start_date"].as_i64().or_else(|| schedule["phases"][0]["start_date"].as_i64());
    let active = schedule["status"] == "active";
    let mut parsed: Vec<Value> = Vec::with_capacity(phases.len());
    for (i, given) in phases.iter().enumerate() {
        let name = format!("phases[{i}]");
        let Some(given) = given.as_object() else { return Err((400, invalid_param(&name, "Invalid hash"))) };
        let real = [
            "add_invoice_items",
            "application_fee_percent",
            "automatic_tax",
            "billing_cycle_anchor",
            "billing_thresholds",
            "collection_method",
            "coupon",
            "currency",
            "default_payment_method",
            "default_tax_rates",
            "description",
            "discounts",
            "duration",
            "invoice_settings",
            "on_behalf_of",
            "transfer_data",
            "trial",
            "trial_end",
        ];
        let known = ["items", "start_date", "end_date", "iterations", "proration_behavior", "metadata"];
        only_known_nested(given, &name, &known, &real)?;

        let Some(items) = given.get("items") else { return Err((400, missing(&format!("{name}[items]")))) };
        let Some(items) = items.as_array().filter(|items| !items.is_empty()) else {
            return Err((400, invalid_param(&format!("{name}[items]"), "Invalid array")));
        };
        let mut phase_items = Vec::with_capacity(items.len());
        let mut first_price: Option<Value> = None;
        for (j, item) in items.iter().enumerate() {
            let item_name = format!("{name}[items][{j}]");
            let Some(item) = item.as_object() else { return Err((400, invalid_param(&item_name, "Invalid hash"))) };
            let real = ["billing_thresholds", "discounts", "plan", "price_data", "tax_rates"];
            only_known_nested(item, &item_name, &["price", "quantity", "metadata"], &real)?;
            let Some(price) = item.get("price") else { return Err((400, missing(&format!("{item_name}[price]")))) };
            let price = recurring_price(state, price, &format!("{item_name}[price]"))?;
            let quantity = match item.get("quantity") {
                None => 1,
                Some(_) => match nested_integer(item, "quantity", &format!("{item_name}[quantity]"))? {
                    q if q >= 0 => q,
                    q => {
                        return Err((
                            400,
                            invalid_param(&format!("{item_name}[quantity]"), &format!("Invalid integer: {q}")),
                        ));
                    }
                },
            };
            let metadata = match item.get("metadata") {
                None => Map::new(),
                Some(update) => merge_metadata(&Map::new(), update)?,
            };
            phase_items.push(phase_item(
                price["id"].as_str().unwrap_or_default(),
                &json!(quantity),
                &Value::Object(metadata),
            ));
            first_price.get_or_insert(price);
        }
        let first_price = first_price.expect("a phase has items");

        let start = match (i, given.get("start_date")) {
            (0, None) => return Err((400, missing(&format!("{name}[start_date]")))),
            (_, Some(Value::String(s))) if s == "now" => now() as i64,
            (_, Some(_)) => nested_integer(given, "start_date", &format!("{name}[start_date]"))?,
            (_, None) => parsed[i - 1]["end_date"].as_i64().unwrap_or_default(),
        };
        if i == 0 && active && Some(start) != current_start {
            return Err((
                400,
                invalid_param(
                    &format!("{name}[start_date]"),
                    "You can not modify the start date of the current phase.",
                ),
            ));
        }
        if i > 0 && Some(start) != parsed[i - 1]["end_date"].as_i64() {
            let message = format!("The start_date of {name} must be the end_date of the phase before it.");
            return Err((400, invalid_param(&format!("{name}[start_date]"), &message)));
        }
        let end = match (given.get("end_date"), given.get("iterations")) {
            (Some(_), Some(_)) => {
                return Err((
                    400,
                    invalid_param(&name, "You may only specify one of these parameters: end_date, iterations."),
                ));
            }
            (Some(_), None) => nested_integer(given, "end_date", &format!("{name}[end_date]"))?,
            (None, iterations) => {
                let iterations = match iterations {
                    None => 1,
                    Some(_) => nested_integer(given, "iterations", &format!("{name}[iterations]"))?,
                };
                if iterations < 1 {
                    let message = format!("Invalid integer: {iterations}");
                    return Err((400, invalid_param(&format!("{name}[iterations]"), &message)));
                }
                let recurring = &first_price["recurring"];
                let count = recurring["interval_count"].as_i64().unwrap_or(1) * iterations;
                match add_interval(start, recurring["interval"].as_str().unwrap_or("month"), count) {
                    Some(end) => end,
                    None => return Err(fake_limit(&format!("{name}: the interval of price {}", first_price["id"]))),
                }
            }
        };
        if end <= start {
            let message = format!("The end_date of {name} must be after its start_date.");
            return Err((400, invalid_param(&format!("{name}[end_date]"), &message)));
        }
        let mut phase = phase(Some(start), Some(end), phase_items, &first_price["currency"]);
        if let Some(behavior) = given.get("proration_behavior") {
            one_of(behavior, &format!("{name}[proration_behavior]"), PRORATION)?;
            phase["proration_behavior"] = behavior.clone();
        }
        if let Some(metadata) = given.get("metadata") {
            phase["metadata"] = Value::Object(merge_metadata(&Map::new(), metadata)?);
        }
        parsed.push(phase);
    }
    Ok(parsed)
}

/// A phase object: Stripe's fixture phase with the dates, items and currency set and the optional
/// settings unset.
fn phase(start: Option<i64>, end: Option<i64>, items: Vec<Value>, currency: &Value) -> Value {
    let mut phase = super::fixture("subscription_schedule")["phases"][0].clone();
    phase["start_date"] = start.map_or(Value::Null, |s| json!(s));
    phase["end_date"] = end.map_or(Value::Null, |e| json!(e));
    phase["items"] = Value::Array(items);
    phase["currency"] = currency.clone();
    phase["proration_behavior"] = json!("create_prorations");
    phase["metadata"] = json!({});
    phase["add_invoice_items"] = json!([]);
    phase["default_tax_rates"] = json!([]);
    phase["discounts"] = json!([]);
    for field in [
        "application_fee_percent",
        "billing_cycle_anchor",
        "billing_thresholds",
        "collection_method",
        "default_payment_method",
        "description",
        "invoice_settings",
        "on_behalf_of",
        "transfer_data",
        "trial_end",
    ] {
        phase[field] = Value::Null;
    }
    phase
}

/// A phase item as Stripe stores it: the price (and legacy plan) by id, and the quantity.
fn phase_item(price: &str, quantity: &Value, metadata: &Value) -> Value {
    let mut item = super::fixture("subscription_schedule")["phases"][0]["items"][0].clone();
    item["price"] = json!(price);
    item["plan"] = json!(price);
    item["quantity"] = quantity.clone();
    item["metadata"] = metadata.clone();
    item["discounts"] = json!([]);
    item["tax_rates"] = json!([]);
    item["billing_thresholds"] = Value::Null;
    item
}

/// `start` plus `count` intervals, months on the calendar (a day past the month's end is its last day).
fn add_interval(start: i64, interval: &str, count: i64) -> Option<i64> {
    const DAY: i64 = 86_400;
    let months = match interval {
        "day" => return Some(start + count * DAY),
        "week" => return Some(start + count * 7 * DAY),
        "month" => count,
        "year" => count * 12,
        _ => return None,
    };
    let at = OffsetDateTime::from_unix_timestamp(start).ok()?;
    let index = at.year() as i64 * 12 + (at.month() as i64 - 1) + months;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let day = at.day().min(month.length(year));
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(at.replace_date(date).unix_timestamp())
}
