//! `crm tables create --print-env` against the emulator: stdout is exactly the functions' environment
//! (`NAME=value` lines, what `cargo lambda watch --env-file` reads), naming the table and every queue
//! and dead-letter queue of `shared::queue::ALL` with URLs that exist, plus the operator key.

use std::collections::BTreeMap;
use std::process::{Command, Output};

fn crm(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(args)
        .env_remove("CRM_ADMIN_TOKEN")
        // Info, so a log line written to stdout would break the parse below.
        .env("RUST_LOG", "info")
        .output()
        .expect("run crm");
    eprintln!("crm {}: stderr:\n{}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    output
}

/// The `NAME=value` lines of stdout; any other line fails the test.
fn parse_env(stdout: &[u8]) -> BTreeMap<String, String> {
    let text = std::str::from_utf8(stdout).expect("stdout is UTF-8");
    assert!(text.ends_with('\n'), "every line ends: {text:?}");
    let mut env = BTreeMap::new();
    for line in text.lines() {
        let (name, value) = line.split_once('=').unwrap_or_else(|| panic!("not NAME=value: {line:?}"));
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "not a variable name: {line:?}"
        );
        assert!(!value.is_empty() && value.trim() == value, "empty or padded value: {line:?}");
        assert!(env.insert(name.to_owned(), value.to_owned()).is_none(), "{name} printed twice");
    }
    env
}

#[tokio::test]
async fn print_env_names_every_variable_the_functions_need() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is not set: run the suite with .ci/test");
    let name = format!("env-{}", ulid::Ulid::new().to_string().to_lowercase());
    let output = crm(&["tables", "create", "--print-env", "--table", &name, "--queue-prefix", &name]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("table {name}: created")), "progress goes to stderr: {stderr}");
    let env = parse_env(&output.stdout);

    assert_eq!(env.get("CRM_TABLE_NAME"), Some(&name));
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    let mut expected = vec!["CRM_TABLE_NAME", "CRM_ADMIN_TOKEN", "AWS_ENDPOINT_URL"];
    for def in shared::queue::ALL {
        for (variable, queue) in [(def.url_env, def.name), (def.dlq_url_env, def.dlq_name)] {
            expected.push(variable);
            let url = env.get(variable).unwrap_or_else(|| panic!("{variable} missing: {env:?}"));
            assert!(url.ends_with(&format!("/{name}-{queue}")), "{variable}={url} is queue {queue}");
            let exists = sqs.get_queue_attributes().queue_url(url).send().await;
            assert!(exists.is_ok(), "{variable}={url} is a queue: {exists:?}");
        }
    }
    expected.sort_unstable();
    assert_eq!(env.keys().map(String::as_str).collect::<Vec<_>>(), expected, "no variable more or less");
    assert_eq!(env["AWS_ENDPOINT_URL"], endpoint);
    let token = &env["CRM_ADMIN_TOKEN"];
    assert!(token.len() >= 32, "a generated operator key is long: {} characters", token.len());

    // Run again over what exists, with a key given: the same URLs, the key trimmed.
    let given = "operator-token-for-tests-0123456789";
    let again = crm(&["tables", "create", "--print-env", "--table", &name, "--queue-prefix", &name, "--admin-token"]
        .into_iter()
        .chain([format!("  {given}\n").as_str()])
        .collect::<Vec<_>>());
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("table {name}: exists")));
    let second = parse_env(&again.stdout);
    assert_eq!(second["CRM_ADMIN_TOKEN"], given);
    let without_key = |e: &BTreeMap<String, String>| {
        e.iter().filter(|(k, _)| *k != "CRM_ADMIN_TOKEN").map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
    };
    assert_eq!(without_key(&second), without_key(&env));
}

#[tokio::test]
async fn a_short_admin_token_is_refused_before_anything_is_created() {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is not set: run the suite with .ci/test");
    let name = format!("env-{}", ulid::Ulid::new().to_string().to_lowercase());
    let output =
        crm(&["tables", "create", "--print-env", "--table", &name, "--queue-prefix", &name, "--admin-token", "short"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing for the env file: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CRM_ADMIN_TOKEN") && stderr.contains("at least 24"), "{stderr}");
    let dynamo = aws_sdk_dynamodb::Client::new(&shared::aws::sdk_config().await);
    assert!(dynamo.describe_table().table_name(&name).send().await.is_err(), "no table {name} was created");
}
