//! The operator key of the admin functions: from the Secrets Manager secret named by
//! `CRM_ADMIN_TOKEN_SECRET_ARN` (the emulator's, over TCP), else from `CRM_ADMIN_TOKEN`; trimmed either
//! way, and every refusal names the variable and never shows the value. The values are passed as
//! arguments, as `runtime::aws_state` passes what it read from the environment, so no test changes
//! the process's environment.

mod support;

use shared::runtime::{InitError, admin_token_from};

const TOKEN: &str = "operator-token-from-secrets-manager-0123";

async fn secrets() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&support::sdk().await)
}

/// A new secret holding `value`; answers its ARN.
async fn secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let created = client
        .create_secret()
        .name(support::unique("crm-admin-token"))
        .secret_string(value)
        .send()
        .await
        .expect("create a secret on the emulator");
    created.arn().expect("the new secret's ARN").to_owned()
}

#[tokio::test]
async fn the_secret_is_read_and_trimmed_and_wins_over_the_plain_variable() {
    let client = secrets().await;
    // As `aws secretsmanager create-secret --secret-string file://token` stores a file's last newline.
    let arn = secret(&client, &format!("{TOKEN}\n")).await;
    assert_eq!(admin_token_from(Some(&arn), None, &client).await.unwrap(), TOKEN);
    let plain = "plain-operator-token-0123456789";
    assert_eq!(admin_token_from(Some(&arn), Some(plain), &client).await.unwrap(), TOKEN);
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_is_named_with_the_aws_error_code() {
    let client = secrets().await;
    let arn = secret(&client, TOKEN).await;
    let wrong = format!("{arn}-gone");
    let error = admin_token_from(Some(&wrong), Some("plain-operator-token-0123456789"), &client).await.unwrap_err();
    assert!(matches!(error, InitError::Secret { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("CRM_ADMIN_TOKEN_SECRET_ARN"), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "the AWS error code: {message}");

    // A secret too short to be a key: refused as CRM_ADMIN_TOKEN is, without showing it.
    let short = secret(&client, "short-secret-value\n").await;
    let message = admin_token_from(Some(&short), None, &client).await.unwrap_err().to_string();
    assert!(message.contains("CRM_ADMIN_TOKEN_SECRET_ARN") && message.contains("at least 24"), "{message}");
    assert!(!message.contains("short-secret-value"), "{message}");
}

#[tokio::test]
async fn without_a_secret_the_plain_variable_is_used_trimmed() {
    let client = secrets().await;
    let plain = "plain-operator-token-0123456789";
    assert_eq!(admin_token_from(None, Some(&format!("{plain} \n")), &client).await.unwrap(), plain);
    let message = admin_token_from(None, Some("short  "), &client).await.unwrap_err().to_string();
    assert!(names_plain(&message) && !message.contains("_SECRET_ARN") && message.contains("at least 24"), "{message}");
    let message = admin_token_from(None, None, &client).await.unwrap_err().to_string();
    assert!(message.contains("CRM_ADMIN_TOKEN_SECRET_ARN") && names_plain(&message), "both variables: {message}");
}

/// Whether `message` names `CRM_ADMIN_TOKEN` itself (not only as the start of `..._SECRET_ARN`).
fn names_plain(message: &str) -> bool {
    message.replace("CRM_ADMIN_TOKEN_SECRET_ARN", "").contains("CRM_ADMIN_TOKEN")
}
