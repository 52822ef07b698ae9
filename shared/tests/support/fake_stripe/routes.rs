//! The fake's request handling: recording, injected failures, bearer keys, form parsing, idempotent
//! replay (in `handle`), then the Stripe routes themselves (in `route`: webhook endpoints and generic
//! retrieval here, lists in `lists`, customers in `customers`, subscriptions in `subscriptions`, subscription schedules in
//! `schedules`), and the
//! error JSON and parameter helpers they share.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::{
    RecordedRequest, Shared, State as Inner, StoredAnswer, customers, fixture, lists, lock, pairs_to_json, schedules,
    subscriptions,
};

/// An answer before headers: status and JSON body.
pub(super) type Reply = (u16, Value);

/// Resources that `GET /v1/{resource}/{id}` serves, with their `object` type.
const RETRIEVABLE: &[(&str, &str)] = &[
    ("customers", "customer"),
    ("subscriptions", "subscription"),
    ("invoices", "invoice"),
    ("charges", "charge"),
    ("refunds", "refund"),
    ("products", "product"),
    ("prices", "price"),
    ("subscription_schedules", "subscription_schedule"),
    ("webhook_endpoints", "webhook_endpoint"),
];

pub(super) async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = header("content-type");
    let json_body = content_type.as_deref().is_some_and(|t| t.contains("json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'{' || *b == b'[');
    let raw: &[u8] = if method == Method::POST { &body } else { uri.query().unwrap_or("").as_bytes() };
    let params: Vec<(String, String)> =
        if json_body { Vec::new() } else { url::form_urlencoded::parse(raw).into_owned().collect() };
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        params,
        idempotency_key: header("idempotency-key"),
        stripe_account: header("stripe-account"),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
        content_type,
    };

    let mut state = lock(&shared);
    state.requests.push(recorded.clone());

    let failure = state
        .failures
        .pop_front()
        .or_else(|| state.path_failure(&recorded.method, &recorded.path))
        .or_else(|| state.periodic_rate_limit());
    if let Some(failure) = failure {
        let mut response = respond(failure.status, failure.body);
        if let Some(retry) = failure.should_retry {
            response.headers_mut().insert("stripe-should-retry", retry.to_string().parse().expect("header value"));
        }
        if let Some(seconds) = failure.retry_after {
            response.headers_mut().insert("retry-after", seconds.to_string().parse().expect("header value"));
        }
        return response;
    }
    if let Err((status, body)) = authenticate(&state, recorded.authorization.as_deref()) {
        return respond(status, body);
    }
    if json_body && method == Method::POST {
        return respond(
            400,
            error(
                "Invalid request (check that your POST content type is application/x-www-form-urlencoded). \
             If you have any questions, we can help at https://support.stripe.com/.",
            ),
        );
    }
    let params = match pairs_to_json(&recorded.params) {
        Ok(params) => params,
        Err(message) => return respond(400, error(&format!("Invalid parameters: {message}"))),
    };

    // Stripe keeps the first answer of a write per key and account and replays it.
    let idempotency = match (&method, &recorded.idempotency_key) {
        (&Method::POST, Some(key)) => Some((recorded.stripe_account.clone().unwrap_or_default(), key.clone())),
        _ => None,
    };
    let fingerprint = format!("{} {} {:?}", recorded.method, recorded.path, recorded.params);
    if let Some(slot) = &idempotency
        && let Some(stored) = state.idempotency.get(slot)
    {
        if stored.fingerprint != fingerprint {
            let message = format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                 Try using a key other than '{}' if you meant to execute a different request.",
                slot.1
            );
            return respond(400, json!({"error": {"type": "idempotency_error", "message": message}}));
        }
        let mut response = respond(stored.status, stored.body.clone());
        response.headers_mut().insert("idempotent-replayed", "true".parse().expect("header value"));
        return response;
    }

    let (status, body) = route(&mut state, &method, uri.path(), &params);
    // Only requests that ran are kept (Stripe saves no result for a request that failed validation).
    if let Some(slot) = idempotency
        && (200..300).contains(&status)
    {
        state.idempotency.insert(slot, StoredAnswer { fingerprint, status, body: body.clone() });
    }
    respond(status, body)
}

fn route(state: &mut Inner, method: &Method, path: &str, params: &Value) -> Reply {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "webhook_endpoints"]) => create_webhook_endpoint(state, params),
        ("POST", ["v1", "webhook_endpoints", id]) => update_webhook_endpoint(state, id, params),
        ("DELETE", ["v1", "webhook_endpoints", id]) => delete_webhook_endpoint(state, id),
        ("POST", ["v1", "customers"]) => customers::create(state, params).unwrap_or_else(|e| e),
        ("POST", ["v1", "customers", id]) => customers::update(state, id, params).unwrap_or_else(|e| e),
        ("GET", ["v1", "subscriptions"]) => subscriptions::list(state, params).unwrap_or_else(|e| e),
        ("GET", ["v1", "account"]) => lists::account(state),
        ("GET", ["v1", resource]) if lists::is_list(resource) => {
            lists::list(state, resource, params).unwrap_or_else(|e| e)
        }
        ("GET", ["v1", "subscriptions", id]) => subscriptions::retrieve(state, id, params).unwrap_or_else(|e| e),
        ("POST", ["v1", "subscriptions", id]) => subscriptions::update(state, id, params).unwrap_or_else(|e| e),
        ("POST", ["v1", "subscription_schedules"]) => schedules::create(state, params).unwrap_or_else(|e| e),
        ("POST", ["v1", "subscription_schedules", id]) => schedules::update(state, id, params).unwrap_or_else(|e| e),
        ("POST", ["v1", "subscription_schedules", id, "release"]) => {
            schedules::release(state, id, params).unwrap_or_else(|e| e)
        }
        ("GET", ["v1", resource, id]) => match RETRIEVABLE.iter().find(|(r, _)| r == resource) {
            Some((_, object_type)) => retrieve(state, object_type, id),
            None => unrecognized(method, path),
        },
        _ => unrecognized(method, path),
    }
}

fn retrieve(state: &Inner, object_type: &str, id: &str) -> Reply {
    match state.objects.get(id).filter(|o| o["object"] == object_type) {
        Some(object) => (200, object.clone()),
        None => no_such(object_type, id),
    }
}

fn create_webhook_endpoint(state: &mut Inner, params: &Value) -> Reply {
    let known = ["url", "enabled_events", "api_version", "connect", "description", "metadata", "expand"];
    if let Err(reply) = only_known(params, &known) {
        return reply;
    }
    let url = match params.get("url").and_then(Value::as_str) {
        Some(url) if !url.is_empty() => url,
        _ => return (400, missing("url")),
    };
    let events = match params.get("enabled_events") {
        None => return (400, missing("enabled_events")),
        Some(events) => match string_array(events) {
            Some(events) if !events.is_empty() => events,
            _ => return (400, invalid_param("enabled_events", "Invalid array")),
        },
    };
    if let Some(connect) = params.get("connect")
        && boolean(connect).is_none()
    {
        return (400, invalid_param("connect", "Invalid boolean"));
    }
    let metadata = match params.get("metadata").map(|m| merge_metadata(&Map::new(), m)) {
        None => Map::new(),
        Some(Ok(metadata)) => metadata,
        Some(Err(reply)) => return reply,
    };
    let mut endpoint = fixture("webhook_endpoint");
    endpoint["id"] = json!(format!("we_{}", random_id(24)));
    endpoint["created"] = json!(now());
    endpoint["url"] = json!(url);
    endpoint["enabled_events"] = json!(events);
    endpoint["description"] = params.get("description").cloned().unwrap_or(Value::Null);
    endpoint["metadata"] = Value::Object(metadata);
    endpoint["api_version"] = params.get("api_version").cloned().unwrap_or(Value::Null);
    endpoint["application"] = Value::Null;
    endpoint["livemode"] = json!(false);
    endpoint["status"] = json!("enabled");
    state.insert(endpoint.clone());
    // The signing secret is shown on creation only.
    endpoint["secret"] = json!(format!("whsec_{}", random_id(32)));
    (200, endpoint)
}

fn update_webhook_endpoint(state: &mut Inner, id: &str, params: &Value) -> Reply {
    if let Err(reply) = only_known(params, &["url", "enabled_events", "description", "disabled", "metadata", "expand"])
    {
        return reply;
    }
    let Some(mut endpoint) = state.objects.get(id).filter(|o| o["object"] == "webhook_endpoint").cloned() else {
        return no_such("webhook_endpoint", id);
    };
    if let Some(url) = params.get("url") {
        match url.as_str() {
            Some(url) if !url.is_empty() => endpoint["url"] = json!(url),
            _ => return (400, invalid_param("url", "Invalid URL")),
        }
    }
    if let Some(events) = params.get("enabled_events") {
        match string_array(events) {
            Some(events) if !events.is_empty() => endpoint["enabled_events"] = json!(events),
            _ => return (400, invalid_param("enabled_events", "Invalid array")),
        }
    }
    if let Some(description) = params.get("description") {
        endpoint["description"] = if description == "" { Value::Null } else { description.clone() };
    }
    if let Some(disabled) = params.get("disabled") {
        match boolean(disabled) {
            Some(disabled) => endpoint["status"] = json!(if disabled { "disabled" } else { "enabled" }),
            None => return (400, invalid_param("disabled", "Invalid boolean")),
        }
    }
    if let Some(metadata) = params.get("metadata") {
        let current = endpoint["metadata"].as_object().cloned().unwrap_or_default();
        match merge_metadata(&current, metadata) {
            Ok(merged) => endpoint["metadata"] = Value::Object(merged),
            Err(reply) => return reply,
        }
    }
    state.insert(endpoint.clone());
    (200, endpoint)
}

fn delete_webhook_endpoint(state: &mut Inner, id: &str) -> Reply {
    if state.objects.get(id).is_none_or(|o| o["object"] != "webhook_endpoint") {
        return no_such("webhook_endpoint", id);
    }
    state.remove(id);
    let mut deleted = fixture("deleted_webhook_endpoint");
    deleted["id"] = json!(id);
    (200, deleted)
}

/// `metadata[k]=v` sets a key, `metadata[k]=` removes it, `metadata=` removes them all.
pub(super) fn merge_metadata(current: &Map<String, Value>, update: &Value) -> Result<Map<String, Value>, Reply> {
    match update {
        Value::String(s) if s.is_empty() => Ok(Map::new()),
        Value::Object(update) => {
            let mut merged = current.clone();
            for (key, value) in update {
                match value.as_str() {
                    Some("") => {
                        merged.remove(key);
                    }
                    Some(text) => {
                        merged.insert(key.clone(), json!(text));
                    }
                    None => return Err((400, invalid_param(&format!("metadata[{key}]"), "Invalid string"))),
                }
            }
            Ok(merged)
        }
        _ => Err((400, invalid_param("metadata", "Invalid hash"))),
    }
}

pub(super) fn only_known(params: &Value, known: &[&str]) -> Result<(), Reply> {
    let unknown = params.as_object().and_then(|p| p.keys().find(|k| !known.contains(&k.as_str())));
    match unknown {
        Some(name) => Err((
            400,
            json!({"error": {
                "type": "invalid_request_error",
                "code": "parameter_unknown",
                "message": format!("Received unknown parameter: {name}"),
                "param": name,
            }}),
        )),
        None => Ok(()),
    }
}

fn string_array(value: &Value) -> Option<Vec<String>> {
    value.as_array()?.iter().map(|v| v.as_str().map(str::to_owned)).collect()
}

pub(super) fn boolean(value: &Value) -> Option<bool> {
    match value.as_str()? {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn authenticate(state: &Inner, authorization: Option<&str>) -> Result<(), Reply> {
    let Some(key) = authorization.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim) else {
        return Err((
            401,
            error(
                "You did not provide an API key. You need to provide your API key in the Authorization header, \
                 using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            ),
        ));
    };
    let accepted = match &state.valid_key {
        Some(valid) => key == valid,
        None => key.starts_with("sk_") || key.starts_with("rk_"),
    };
    if accepted { Ok(()) } else { Err((401, error(&format!("Invalid API Key provided: {}", stripe_masked(key))))) }
}

/// How Stripe shows a key in its messages: `sk_test_****1234`.
fn stripe_masked(key: &str) -> String {
    let prefix_len = key.match_indices('_').nth(1).map(|(i, _)| i + 1).unwrap_or(0);
    let chars: Vec<char> = key[prefix_len..].chars().collect();
    let tail: String = if chars.len() > 8 { chars[chars.len() - 4..].iter().collect() } else { String::new() };
    format!("{}****{tail}", &key[..prefix_len])
}

pub(super) fn no_such(object_type: &str, id: &str) -> Reply {
    (
        404,
        json!({"error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": format!("No such {}: '{id}'", object_type.replace('_', " ")),
            "param": "id",
        }}),
    )
}

fn unrecognized(method: &Method, path: &str) -> Reply {
    (
        404,
        error(&format!(
            "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at \
             https://support.stripe.com/."
        )),
    )
}

pub(super) fn missing(param: &str) -> Value {
    json!({"error": {
        "type": "invalid_request_error",
        "code": "parameter_missing",
        "message": format!("Missing required param: {param}."),
        "param": param,
    }})
}

pub(super) fn invalid_param(param: &str, message: &str) -> Value {
    json!({"error": {"type": "invalid_request_error", "code": "parameter_invalid", "message": message, "param": param}})
}

pub(super) fn error(message: &str) -> Value {
    json!({"error": {"type": "invalid_request_error", "message": message}})
}

fn respond(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    let request_id = format!("req_{}", random_id(14));
    response.headers_mut().insert("request-id", request_id.parse().expect("header value"));
    response
}

pub(super) fn random_id(len: usize) -> String {
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(len).map(char::from).collect()
}

pub(super) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
