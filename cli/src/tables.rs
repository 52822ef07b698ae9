//! `crm tables create`: the DynamoDB table and SQS queues (with dead-letter queues), from the same
//! definitions as `template.yaml`, on an emulator (`AWS_ENDPOINT_URL`) or an AWS account.

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Creates the table and queues; existing ones are left as they are.
    Create {
        #[arg(long, env = "CRM_TABLE_NAME", default_value = "crm")]
        table: String,
        #[arg(long, env = "CRM_QUEUE_PREFIX", default_value = "crm")]
        queue_prefix: String,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Create { table, queue_prefix } = command;
    let sdk = shared::aws::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let created = shared::store::schema::create_table(&dynamo, &table).await.context("creating the table")?;
    println!("table {table}: {}", if created { "created" } else { "exists" });
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for def in shared::queue::ALL {
        for (name, url) in
            shared::queue::sqs::create_queues(&sqs, &queue_prefix, def).await.context("creating queues")?
        {
            println!("queue {name}: {url}");
        }
    }
    Ok(())
}
