//! Lambda `webhook-worker`: the events queue's consumer, answering SQS partial batch responses; runs
//! the automations events fire (notifications go to the forward queue) and queues a catch-up when an
//! account's events show a gap (the jobs queue).

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use shared::queue::worker::lambda_batch;
use shared::sync::worker::EventWorker;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Automations queue their notifications on the forward queue; gaps in an account's events queue
    // their catch-up on the jobs queue.
    let needs = shared::runtime::Needs { queues: &[shared::queue::FORWARD, shared::queue::JOBS], ..Default::default() };
    let state = shared::runtime::aws_state(needs).await?;
    let worker = Arc::new(EventWorker::for_state(&state));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, lambda_runtime::Error>(lambda_batch(worker.as_ref(), event.payload).await) }
    }))
    .await
}
