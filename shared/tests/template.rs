//! `template.yaml` must agree with the code: the table with `store::schema`, the queues with
//! `queue::ALL`, the functions with the crates under `functions/`, and every API route of a
//! function with the router its `main.rs` runs.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_yaml_ng::Value;
use shared::store::schema::{GSI1, KEY_ATTRIBUTES, attr};
use tower::ServiceExt;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

fn resources(t: &Value) -> &serde_yaml_ng::Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

fn by_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, r)| (name.as_str().unwrap_or_default(), r))
        .collect()
}

/// The literal suffix of a `!Sub "${AWS::StackName}-name"` queue name.
fn queue_name(resource: &Value) -> String {
    match &resource["Properties"]["QueueName"] {
        Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().replace("${AWS::StackName}-", ""),
        other => other.as_str().unwrap_or_default().to_owned(),
    }
}

#[test]
fn table_matches_the_schema() {
    let t = template();
    let tables = by_type(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let props = &tables[0].1["Properties"];
    let defined: BTreeSet<&str> = props["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a["AttributeName"].as_str().unwrap())
        .collect();
    assert_eq!(defined, KEY_ATTRIBUTES.into_iter().collect());
    let keys = |schema: &Value| -> Vec<(String, String)> {
        schema
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| (k["AttributeName"].as_str().unwrap().to_owned(), k["KeyType"].as_str().unwrap().to_owned()))
            .collect()
    };
    let pair = |a: &str, b: &str| vec![(a.to_owned(), "HASH".to_owned()), (b.to_owned(), "RANGE".to_owned())];
    assert_eq!(keys(&props["KeySchema"]), pair(attr::PK, attr::SK));
    let gsis = props["GlobalSecondaryIndexes"].as_sequence().unwrap();
    assert_eq!(gsis.len(), 1);
    assert_eq!(gsis[0]["IndexName"].as_str(), Some(GSI1));
    assert_eq!(keys(&gsis[0]["KeySchema"]), pair(attr::GSI1PK, attr::GSI1SK));
    assert_eq!(gsis[0]["Projection"]["ProjectionType"].as_str(), Some("ALL"));
    assert_eq!(props["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(attr::TTL));
    assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
}

#[test]
fn queues_match_their_definitions() {
    let t = template();
    let queues = by_type(&t, "AWS::SQS::Queue");
    assert_eq!(queues.len(), shared::queue::ALL.len() * 2, "each queue and its dead-letter queue");
    for def in shared::queue::ALL {
        let (_, main) =
            queues.iter().find(|(_, q)| queue_name(q) == def.name).unwrap_or_else(|| panic!("queue {}", def.name));
        let (dlq_resource, dlq) = queues
            .iter()
            .find(|(_, q)| queue_name(q) == def.dlq_name)
            .unwrap_or_else(|| panic!("queue {}", def.dlq_name));
        let props = &main["Properties"];
        assert_eq!(props["VisibilityTimeout"].as_u64(), Some(u64::from(def.visibility_timeout_secs)));
        assert_eq!(props["RedrivePolicy"]["maxReceiveCount"].as_u64(), Some(u64::from(def.max_receive_count)));
        match &props["RedrivePolicy"]["deadLetterTargetArn"] {
            Value::Tagged(tagged) => assert_eq!(tagged.value.as_str(), Some(format!("{dlq_resource}.Arn").as_str())),
            other => {
                panic!("redrive target must be !GetAtt of the dead-letter queue, got {other:?}")
            }
        }
        assert_eq!(
            dlq["Properties"]["MessageRetentionPeriod"].as_u64(),
            Some(u64::from(shared::queue::DLQ_RETENTION_SECS))
        );
    }
}

#[test]
fn queue_consumers_report_partial_batches_within_the_visibility_timeout() {
    let t = template();
    let mut consumers = 0;
    for (name, f) in by_type(&t, "AWS::Serverless::Function") {
        let Some(events) = f["Properties"]["Events"].as_mapping() else { continue };
        for (_, event) in events.iter().filter(|(_, e)| e["Type"].as_str() == Some("SQS")) {
            consumers += 1;
            let props = &event["Properties"];
            let types: Vec<&str> =
                props["FunctionResponseTypes"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
            assert_eq!(types, ["ReportBatchItemFailures"], "{name}");
            let timeout = f["Properties"]["Timeout"].as_u64().or(t["Globals"]["Function"]["Timeout"].as_u64()).unwrap();
            let queue = match &props["Queue"] {
                Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().trim_end_matches(".Arn").to_owned(),
                other => panic!("{name}: queue {other:?}"),
            };
            let visibility = resources(&t)[queue.as_str()]["Properties"]["VisibilityTimeout"].as_u64().unwrap();
            assert!(visibility >= 6 * timeout, "{name}: visibility {visibility} < 6 × timeout {timeout}");
        }
    }
    assert!(consumers > 0);
}

#[test]
fn every_function_crate_is_deployed_with_cargo_lambda() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    let mut binaries = BTreeSet::new();
    for (name, f) in by_type(&t, "AWS::Serverless::Function") {
        assert_eq!(f["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"), "{name}");
        binaries.insert(f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned());
        assert!(f["Properties"]["Policies"].is_sequence(), "{name} has its own least-privilege policy");
    }
    assert_eq!(binaries, support::function_crates());
}

#[tokio::test]
async fn every_api_route_reaches_its_function() {
    let t = template();
    let store = support::embedded_store();
    let state = support::app_state(store.store.clone());
    let mut checked = 0;
    for (name, f) in by_type(&t, "AWS::Serverless::Function") {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let Some(events) = f["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, event) in events.iter().filter(|(_, e)| e["Type"].as_str() == Some("HttpApi")) {
            let method = event["Properties"]["Method"].as_str().unwrap();
            let path = event["Properties"]["Path"].as_str().unwrap();
            let concrete =
                path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
            let request = Request::builder().method(method).uri(&concrete).body(Body::empty()).unwrap();
            let response = support::router_of(binary, state.clone()).oneshot(request).await.unwrap();
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED || body.as_ref() == br#"{"error":"no such route"}"#;
            assert!(!unrouted, "{name}: {method} {path} is not served by {binary} ({status})");
            checked += 1;
        }
    }
    assert!(checked > 0);
}
