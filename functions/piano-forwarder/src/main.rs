//! Lambda `piano-forwarder`: the forward queue's consumer, one legacy delivery per message.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use shared::piano::forward::{ForwardWorker, Forwarder};
use shared::queue::worker::lambda_batch;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let allow_private = shared::config::optional("CRM_FORWARD_ALLOW_PRIVATE")?.as_deref() == Some("1");
    let worker = Arc::new(ForwardWorker::new(Arc::new(Forwarder::new(allow_private))));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, lambda_runtime::Error>(lambda_batch(worker.as_ref(), event.payload).await) }
    }))
    .await
}
