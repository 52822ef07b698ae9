//! `crm dlq list|redrive`: the dead-letter queues of the product's SQS queues (`queue::ALL`): how
//! many messages each holds, a look at some, and moving them back to their queue once the cause is
//! fixed. SQS only: `crm serve`'s in-process queues live in its process and are not persisted.

use anyhow::Context;
use clap::Subcommand;
use shared::queue::sqs::SqsQueue;
use shared::queue::{Queue, QueueDef};

const SQS_ONLY: &str = "`crm dlq` works on the SQS queues (`--dynamodb`, as `crm serve --dynamodb` uses them): \
the embedded `crm serve` keeps its queues in its own memory, not in the data directory, so there \
is nothing to list or redrive from another process";

#[derive(clap::Args)]
pub struct Target {
    /// The SQS queues of `crm serve --dynamodb` / the Lambdas (endpoint and credentials from the
    /// standard AWS environment). Required: the embedded `crm serve`'s in-process queues are not
    /// persisted and cannot be reached from this command.
    #[arg(long)]
    dynamodb: bool,
    #[arg(long, env = "CRM_QUEUE_PREFIX", default_value = "crm")]
    queue_prefix: String,
}

#[derive(Subcommand)]
pub enum Command {
    /// Each queue's dead-letter queue with its depth and a peek at its messages (SQS only).
    List {
        #[command(flatten)]
        target: Target,
        /// Messages shown per dead-letter queue (id, receive count, start of the body). Peeking
        /// is a receive on SQS: it raises the messages' receive counts.
        #[arg(long, default_value_t = 5)]
        peek: u32,
    },
    /// Moves messages of `<QUEUE>`'s dead-letter queue back to `<QUEUE>` (SQS only).
    Redrive {
        /// The queue (`events`, `forward`); its dead-letter queue is the source.
        queue: String,
        #[command(flatten)]
        target: Target,
        /// Messages to move at most.
        #[arg(long, default_value_t = 1000)]
        max: u64,
    },
}

/// Characters of a message body shown by `list`.
const BODY_CHARS: usize = 200;

async fn connect(target: &Target) -> anyhow::Result<SqsQueue> {
    anyhow::ensure!(target.dynamodb, "{SQS_ONLY}");
    let sdk = shared::aws::sdk_config().await;
    SqsQueue::discover(aws_sdk_sqs::Client::new(&sdk), &target.queue_prefix, shared::queue::ALL)
        .await
        .context("finding the SQS queues (run `crm tables create` first?)")
}

fn find(queue: &str) -> anyhow::Result<&'static QueueDef> {
    shared::queue::ALL.iter().find(|d| d.name == queue || d.dlq_name == queue).ok_or_else(|| {
        let names: Vec<&str> = shared::queue::ALL.iter().map(|d| d.name).collect();
        anyhow::anyhow!("unknown queue {queue:?}: one of {}", names.join(", "))
    })
}

/// The start of a body on one line.
fn excerpt(body: &str) -> String {
    let mut out: String = body.chars().take(BODY_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if body.chars().nth(BODY_CHARS).is_some() {
        out.push('…');
    }
    out
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { target, peek } => {
            let queue = connect(&target).await?;
            for def in shared::queue::ALL {
                let depth = queue.depth(def.dlq_name).await.with_context(|| format!("reading {}", def.dlq_name))?;
                println!(
                    "{} ({}-{}, redrives to {}): {depth} message{}",
                    def.dlq_name,
                    target.queue_prefix,
                    def.dlq_name,
                    def.name,
                    if depth == 1 { "" } else { "s" }
                );
                if depth == 0 || peek == 0 {
                    continue;
                }
                for m in queue.peek(def.dlq_name, peek).await.with_context(|| format!("peeking {}", def.dlq_name))? {
                    println!("  {}  received {}×  {}", m.id, m.receive_count, excerpt(&m.body));
                }
            }
            Ok(())
        }
        Command::Redrive { queue: name, target, max } => {
            let def = find(&name)?;
            let queue = connect(&target).await?;
            let moved = queue.redrive(def, max).await?;
            let left = queue.depth(def.dlq_name).await.unwrap_or(0);
            println!(
                "moved {moved} message{} from {} to {} ({left} left in {})",
                if moved == 1 { "" } else { "s" },
                def.dlq_name,
                def.name,
                def.dlq_name
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_line_and_bounded() {
        assert_eq!(excerpt("a\nb"), "a b");
        let long = "é".repeat(300);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), BODY_CHARS + 1);
        assert!(e.ends_with('…'));
    }

    #[test]
    fn queues_are_found_by_either_name() {
        assert_eq!(find("events").unwrap().name, "events");
        assert_eq!(find("forward-dlq").unwrap().name, "forward");
        assert!(find("nope").unwrap_err().to_string().contains("events, forward"));
    }
}
