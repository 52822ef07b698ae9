//! Lambda `backfill`: the jobs queue's consumer (batch size 1). A backfill message runs a slice of a
//! Stripe account's backfill (or of the Piano history import) until a minute before the invocation's
//! deadline, then queues the next slice; a catch-up message lists the events an account missed and
//! queues them for webhook-worker.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{LambdaEvent, service_fn};
use shared::jobs::{DEADLINE_MARGIN, JobWorker};
use shared::queue::worker::{batch_response, received};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Backfill slices queue their next slice; catch-ups queue the missed events.
    let needs = shared::runtime::Needs { queues: &[shared::queue::JOBS, shared::queue::EVENTS], ..Default::default() };
    let state = shared::runtime::aws_state(needs).await?;
    let worker = Arc::new(JobWorker::for_state(&state, Duration::ZERO));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
        let worker = worker.clone();
        // The deadline is wall-clock milliseconds; the runner counts on the monotonic clock.
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let left = Duration::from_millis(event.context.deadline.saturating_sub(now_ms)).saturating_sub(DEADLINE_MARGIN);
        let deadline = tokio::time::Instant::now() + left;
        async move {
            let failed = worker.handle_until(&received(event.payload), deadline).await;
            Ok::<_, lambda_runtime::Error>(batch_response(failed))
        }
    }))
    .await
}
