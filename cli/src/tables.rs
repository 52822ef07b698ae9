//! `crm tables create`: the DynamoDB table and SQS queues (with dead-letter queues), from the same
//! definitions as `template.yaml`, on an emulator (`AWS_ENDPOINT_URL`) or an AWS account. With
//! `--print-env`, stdout is then the environment every function needs, one `NAME=value` a line (what
//! `cargo lambda watch --env-file` reads), and the progress goes to stderr.

use anyhow::Context;
use clap::Subcommand;
use shared::queue::QueueDef;

#[derive(Subcommand)]
pub enum Command {
    /// Creates the table and queues; existing ones are left as they are.
    Create {
        #[arg(long, env = "CRM_TABLE_NAME", default_value = "crm")]
        table: String,
        #[arg(long, env = "CRM_QUEUE_PREFIX", default_value = "crm")]
        queue_prefix: String,
        /// Then prints every function's environment variables as NAME=value lines, nothing else on
        /// stdout: the table, each queue's and dead-letter queue's URL, the operator key and
        /// AWS_ENDPOINT_URL when set.
        #[arg(long)]
        print_env: bool,
        /// The operator key to print with --print-env (default: a new random one).
        #[arg(long, env = "CRM_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
}

impl Command {
    /// Whether stdout is data (then logs go to stderr).
    pub fn prints_env(&self) -> bool {
        matches!(self, Command::Create { print_env: true, .. })
    }
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Create { table, queue_prefix, print_env, admin_token } = command;
    // Only for the file (CRM_ADMIN_TOKEN may be set for other reasons), and checked before anything is
    // created: a key the functions would refuse is no use there.
    let admin_token = if print_env { Some(operator_key(admin_token.as_deref())?) } else { None };
    let say = |line: String| if print_env { eprintln!("{line}") } else { println!("{line}") };
    let sdk = shared::aws::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let created = shared::store::schema::create_table(&dynamo, &table).await.context("creating the table")?;
    say(format!("table {table}: {}", if created { "created" } else { "exists" }));
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut env = vec![("CRM_TABLE_NAME".to_owned(), table)];
    for def in shared::queue::ALL {
        let urls = shared::queue::sqs::create_queues(&sqs, &queue_prefix, def).await.context("creating queues")?;
        for (name, url) in &urls {
            say(format!("queue {name}: {url}"));
        }
        env.extend(queue_env(def, &urls)?);
    }
    let Some(admin_token) = admin_token else { return Ok(()) };
    env.push((shared::config::ADMIN_TOKEN.to_owned(), admin_token));
    if let Some(endpoint) = shared::config::optional("AWS_ENDPOINT_URL")? {
        env.push(("AWS_ENDPOINT_URL".to_owned(), endpoint));
    }
    let mut out = String::new();
    for (name, value) in env {
        // One variable a line: a value with a line break would read as two.
        anyhow::ensure!(!value.chars().any(char::is_control), "the value of {name} has a control character");
        out.push_str(&format!("{name}={value}\n"));
    }
    print!("{out}");
    Ok(())
}

/// The operator key given (`--admin-token` or `CRM_ADMIN_TOKEN`), trimmed and long enough, else a new one.
fn operator_key(given: Option<&str>) -> anyhow::Result<String> {
    Ok(match given.filter(|t| !t.trim().is_empty()) {
        Some(raw) => shared::config::checked_admin_token(shared::config::ADMIN_TOKEN, raw)?,
        None => shared::http::auth::new_operator_token(),
    })
}

/// `def`'s two variables (`url_env`, `dlq_url_env`) with the URLs `create_queues` answered by name.
fn queue_env(def: &QueueDef, urls: &[(String, String)]) -> anyhow::Result<[(String, String); 2]> {
    let url_of = |name: &str| {
        urls.iter()
            .find(|(n, _)| n == name)
            .map(|(_, url)| url.clone())
            .with_context(|| format!("no URL for queue {name}"))
    };
    Ok([(def.url_env.to_owned(), url_of(def.name)?), (def.dlq_url_env.to_owned(), url_of(def.dlq_name)?)])
}
