//! `docs/openapi.yaml` must stay true: every operation it lists is served by the product's router, it
//! lists exactly the HTTP API routes of `template.yaml`, it names every error string of the public
//! subscription routes (`shared/src/api/subscriptions/errors.rs`) under the status the code answers
//! it with, and it is a well-formed OpenAPI 3.1 document (operations with responses, path
//! parameters declared, every `$ref` resolving).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_yaml_ng::Value;
use tower::ServiceExt;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn openapi() -> Value {
    serde_yaml_ng::from_str(&read("docs/openapi.yaml")).expect("docs/openapi.yaml is YAML")
}

/// (METHOD, path template) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_mapping().expect("paths is a mapping");
    let mut found = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path is a string");
        let item = item.as_mapping().unwrap_or_else(|| panic!("{path}: path item is a mapping"));
        for key in item.keys().filter_map(Value::as_str).filter(|k| METHODS.contains(k)) {
            found.insert((key.to_uppercase(), path.to_owned()));
        }
    }
    found
}

/// (METHOD, path) of every `HttpApi` event of a function in `template.yaml`.
fn template_routes() -> BTreeSet<(String, String)> {
    let t: Value = serde_yaml_ng::from_str(&read("template.yaml")).expect("template.yaml is YAML");
    let mut found = BTreeSet::new();
    for (_, resource) in t["Resources"].as_mapping().expect("Resources") {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else { continue };
        for (_, event) in events.iter().filter(|(_, e)| e["Type"].as_str() == Some("HttpApi")) {
            let method = event["Properties"]["Method"].as_str().expect("Method");
            let path = event["Properties"]["Path"].as_str().expect("Path");
            found.insert((method.to_uppercase(), path.to_owned()));
        }
    }
    found
}

/// The value a local `$ref` (`#/components/...`) points at.
fn pointer<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let rest = reference.strip_prefix("#/")?;
    rest.split('/').try_fold(doc, |node, part| {
        let part = part.replace("~1", "/").replace("~0", "~");
        node.as_mapping()?.get(part.as_str())
    })
}

/// `value`, or what its `$ref` points at (followed through chains of references).
fn resolved<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut current = value;
    for _ in 0..16 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                current = pointer(doc, reference).unwrap_or_else(|| panic!("unresolved $ref {reference}"));
            }
            None => return current,
        }
    }
    panic!("$ref chain too long at {value:?}")
}

/// Every string in an `enum` list under `value`, following `$ref`s.
fn enum_strings(doc: &Value, value: &Value, out: &mut BTreeSet<String>, depth: usize) {
    assert!(depth < 64, "schema nesting too deep (a $ref cycle?)");
    let value = resolved(doc, value);
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                if key.as_str() == Some("enum") {
                    out.extend(child.as_sequence().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
                } else {
                    enum_strings(doc, child, out, depth + 1);
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| enum_strings(doc, item, out, depth + 1)),
        _ => {}
    }
}

/// The operation's parameters with the path item's, references resolved: (in, name) → parameter.
fn parameters<'a>(doc: &'a Value, path: &str, method: &str) -> BTreeMap<(String, String), &'a Value> {
    let item = &doc["paths"][path];
    let operation = &item[method.to_lowercase().as_str()];
    let mut found = BTreeMap::new();
    for list in [&item["parameters"], &operation["parameters"]] {
        for parameter in list.as_sequence().into_iter().flatten() {
            let parameter = resolved(doc, parameter);
            let location =
                parameter["in"].as_str().unwrap_or_else(|| panic!("{method} {path}: parameter without `in`"));
            let name = parameter["name"].as_str().unwrap_or_else(|| panic!("{method} {path}: parameter without name"));
            found.insert((location.to_owned(), name.to_owned()), parameter);
        }
    }
    found
}

fn placeholders(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

/// Answers "not routed" exactly as `template.rs` does: 405, or the fallback's `no such route`.
async fn routed(router: &axum::Router, method: &str, path: &str) -> (bool, StatusCode) {
    let concrete = path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
    let request = Request::builder().method(method).uri(&concrete).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let unrouted = status == StatusCode::METHOD_NOT_ALLOWED || body.as_ref() == br#"{"error":"no such route"}"#;
    (!unrouted, status)
}

#[test]
fn is_an_openapi_3_1_document() {
    let doc = openapi();
    let version = doc["openapi"].as_str().expect("openapi: version string");
    assert!(version.starts_with("3.1."), "openapi must be 3.1.x, got {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string(), "info needs title and version");
    let schemes = doc["components"]["securitySchemes"].as_mapping().expect("components.securitySchemes");
    let ops = operations(&doc);
    assert!(!ops.is_empty(), "paths lists no operation");

    let mut operation_ids = BTreeSet::new();
    for (method, path) in &ops {
        let operation = &doc["paths"][path.as_str()][method.to_lowercase().as_str()];
        let responses = operation["responses"].as_mapping();
        let responses = responses.unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(!responses.is_empty(), "{method} {path}: no responses");
        for (status, response) in responses {
            let status = status.as_str().unwrap_or_else(|| panic!("{method} {path}: status {status:?} must be quoted"));
            assert!(
                status == "default"
                    || (status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s))),
                "{method} {path}: status {status}"
            );
            let response = resolved(&doc, response);
            assert!(response["description"].is_string(), "{method} {path} {status}: response needs a description");
            // Every error answer is `{"error": "..."}`: its schema must require `error`.
            if status.starts_with('4') || status.starts_with('5') {
                let schema = resolved(&doc, &response["content"]["application/json"]["schema"]);
                let required: Vec<&str> =
                    schema["required"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
                assert!(required.contains(&"error"), "{method} {path} {status}: error schema must require `error`");
            }
        }
        if let Some(id) = operation["operationId"].as_str() {
            assert!(operation_ids.insert(id.to_owned()), "operationId {id} is used twice");
        }
        let security = operation.get("security").or(doc.get("security"));
        for requirement in security.and_then(Value::as_sequence).into_iter().flatten() {
            for name in requirement.as_mapping().into_iter().flat_map(|m| m.keys()).filter_map(Value::as_str) {
                assert!(schemes.contains_key(name), "{method} {path}: unknown security scheme {name}");
            }
        }
        let params = parameters(&doc, path, method);
        for name in placeholders(path) {
            let declared = params.get(&("path".to_owned(), name.to_owned()));
            let declared = declared.unwrap_or_else(|| panic!("{method} {path}: path parameter {name} is not declared"));
            assert_eq!(declared["required"].as_bool(), Some(true), "{method} {path}: path parameter {name}");
        }
        for ((location, name), _) in params.iter().filter(|((l, _), _)| l == "path") {
            assert!(
                placeholders(path).contains(&name.as_str()),
                "{method} {path}: {location} parameter {name} not in path"
            );
        }
    }

    // Every reference anywhere in the document resolves.
    fn refs(doc: &Value, value: &Value) {
        match value {
            Value::Mapping(map) => {
                for (key, child) in map {
                    if key.as_str() == Some("$ref") {
                        let reference = child.as_str().expect("$ref is a string");
                        assert!(pointer(doc, reference).is_some(), "unresolved $ref {reference}");
                    } else {
                        refs(doc, child);
                    }
                }
            }
            Value::Sequence(items) => items.iter().for_each(|item| refs(doc, item)),
            _ => {}
        }
    }
    refs(&doc, &doc);
}

#[test]
fn lists_exactly_the_http_api_routes_of_the_template() {
    let documented = operations(&openapi());
    let deployed = template_routes();
    assert!(!deployed.is_empty(), "template.yaml has no HttpApi route");
    let missing: Vec<_> = deployed.difference(&documented).collect();
    assert!(missing.is_empty(), "template.yaml routes missing from docs/openapi.yaml: {missing:?}");
    let extra: Vec<_> = documented.difference(&deployed).collect();
    assert!(extra.is_empty(), "docs/openapi.yaml routes API Gateway does not deploy (template.yaml): {extra:?}");
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let store = support::embedded_store();
    let router = shared::api::all_routes(support::app_state(store.store.clone()));
    // The probe itself tells a served route from one that is not.
    for (method, path) in
        [("GET", "/no/such/path"), ("PATCH", "/api/subscriptions"), ("GET", "/api/subscriptions/winback")]
    {
        assert!(!routed(&router, method, path).await.0, "probe: {method} {path} must count as not served");
    }
    let ops = operations(&openapi());
    for (method, path) in &ops {
        let (served, status) = routed(&router, method, path).await;
        assert!(served, "docs/openapi.yaml lists {method} {path}, which the router does not serve ({status})");
    }
}

/// `pub const NAME: &str = "message";` of a source file, as (NAME, message).
fn string_constants(source: &str) -> Vec<(String, String)> {
    source
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(':')?;
            let literal = rest.trim().strip_prefix("&str")?.trim().strip_prefix('=')?.trim().strip_suffix(';')?;
            let message = literal.strip_prefix('"')?.strip_suffix('"')?;
            assert!(!message.contains('\\'), "{name}: escapes are not read by this test");
            Some((name.trim().to_owned(), message.to_owned()))
        })
        .collect()
}

#[test]
fn names_every_error_string_of_the_public_routes_under_its_status() {
    let doc = openapi();
    let source = read("shared/src/api/subscriptions/errors.rs");
    let constants = string_constants(&source);
    assert!(constants.len() >= 11, "expected the seed's error strings in errors.rs, found {constants:?}");

    // Messages listed (as `enum` values) per status across the public subscription routes.
    let mut by_status: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let ops = operations(&doc);
    let public: Vec<_> = ops.iter().filter(|(m, p)| p.starts_with("/api/subscriptions") && m != "OPTIONS").collect();
    assert_eq!(public.len(), 3, "list, cancel and winback: {public:?}");
    for (method, path) in &public {
        let operation = &doc["paths"][path.as_str()][method.to_lowercase().as_str()];
        for (status, response) in operation["responses"].as_mapping().expect("responses") {
            let status = status.as_str().expect("status").to_owned();
            enum_strings(&doc, response, by_status.entry(status).or_default(), 0);
        }
        // Each public route takes the seed's `token` query and `Origin` header, both required.
        let params = parameters(&doc, path, method);
        for key in [("query", "token"), ("header", "Origin")] {
            let parameter = params.get(&(key.0.to_owned(), key.1.to_owned()));
            let parameter = parameter.unwrap_or_else(|| panic!("{method} {path}: no {} {}", key.0, key.1));
            assert_eq!(parameter["required"].as_bool(), Some(true), "{method} {path}: {} {}", key.0, key.1);
        }
    }

    for (name, message) in &constants {
        // `invalid_token()` answers its message as a refused token (401); `bad()` answers 400.
        let status = if source.contains(&format!("TokenRejected({name}")) { "401" } else { "400" };
        let listed = by_status.get(status).is_some_and(|messages| messages.contains(message));
        assert!(
            listed,
            "errors.rs {name} = {message:?} is not listed for {status} by any public route in docs/openapi.yaml"
        );
    }
}
