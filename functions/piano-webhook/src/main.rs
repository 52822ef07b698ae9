//! Lambda `piano-webhook`: GET|POST /webhooks/piano/{publicationId}.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let needs =
        shared::runtime::Needs { queues: &[shared::queue::EVENTS, shared::queue::FORWARD], ..Default::default() };
    let state = shared::runtime::aws_state(needs).await?;
    lambda_http::run(shared::api::piano_webhook::router(state)).await
}
