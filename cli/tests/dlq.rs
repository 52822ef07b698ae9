//! `crm dlq list|redrive` as an operator runs them: the real binary against SQS on the emulator.

use std::process::{Command, Output};

use shared::queue::sqs::SqsQueue;
use shared::queue::{EVENTS, OutMessage, Queue};

fn crm(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_crm")).args(args).env("RUST_LOG", "warn").output().expect("run crm");
    eprintln!(
        "crm {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Fresh queues `{prefix}-*` for every queue of the product, as `crm tables create` makes them.
async fn queues(prefix: &str) -> SqsQueue {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is not set: run the suite with .ci/test");
    let sdk = shared::aws::sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    for def in shared::queue::ALL {
        shared::queue::sqs::create_queues(&client, prefix, def).await.expect("create queues");
    }
    SqsQueue::discover(client, prefix, shared::queue::ALL).await.expect("queue URLs")
}

#[tokio::test]
async fn dlq_list_shows_dead_letters_and_redrive_moves_them_back() {
    let prefix = format!("dlq-{}", ulid::Ulid::new().to_string().to_lowercase());
    let queue = queues(&prefix).await;
    let long = format!(r#"{{"id":"evt_long","pad":"{}"}}"#, "x".repeat(400));
    let bodies = [r#"{"id":"evt_1","type":"invoice.paid"}"#.to_owned(), long.clone()];
    queue.send(EVENTS.dlq_name, &bodies.clone().map(OutMessage::new)).await.unwrap();

    let list = crm(&["dlq", "list", "--dynamodb", "--queue-prefix", &prefix]);
    assert!(list.status.success());
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(out.contains(&format!("events-dlq ({prefix}-events-dlq, redrives to events): 2 messages")), "{out}");
    assert!(out.contains(&format!("forward-dlq ({prefix}-forward-dlq, redrives to forward): 0 messages")), "{out}");
    assert!(out.contains(r#"{"id":"evt_1","type":"invoice.paid"}"#), "{out}");
    let shown: String = long.chars().take(200).collect();
    assert!(out.contains(&format!("{shown}…")), "the first 200 characters of a long body: {out}");
    assert!(!out.contains(&long), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("received ")).count(), 2, "{out}");
    assert_eq!(queue.depth(EVENTS.dlq_name).await.unwrap(), 2, "listing leaves the messages");

    let one = crm(&["dlq", "redrive", "events", "--max", "1", "--dynamodb", "--queue-prefix", &prefix]);
    assert!(one.status.success());
    assert!(
        String::from_utf8_lossy(&one.stdout)
            .contains("moved 1 message from events-dlq to events (1 left in events-dlq)")
    );
    let rest = crm(&["dlq", "redrive", "events", "--dynamodb", "--queue-prefix", &prefix]);
    assert!(rest.status.success());
    assert!(
        String::from_utf8_lossy(&rest.stdout)
            .contains("moved 1 message from events-dlq to events (0 left in events-dlq)")
    );

    assert_eq!(queue.depth(EVENTS.dlq_name).await.unwrap(), 0);
    let mut back = Vec::new();
    for _ in 0..10 {
        back.extend(queue.receive(EVENTS.name, 10, std::time::Duration::from_secs(1)).await.unwrap());
        if back.len() >= 2 {
            break;
        }
    }
    let mut got: Vec<String> = back.into_iter().map(|m| m.body).collect();
    got.sort();
    let mut want = bodies.to_vec();
    want.sort();
    assert_eq!(got, want, "the same bodies, back on the events queue");
}

#[test]
fn dlq_refuses_the_embedded_queues_and_unknown_names() {
    let list = crm(&["dlq", "list"]);
    assert!(!list.status.success());
    assert!(
        String::from_utf8_lossy(&list.stderr).contains("not persisted")
            || String::from_utf8_lossy(&list.stderr).contains("in its own memory")
    );
    let unknown = crm(&["dlq", "redrive", "nope", "--dynamodb"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("one of events, forward"));
    let help = crm(&["dlq", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("not persisted"));
}
