//! Lambda `stripe-webhook`: POST /webhooks/stripe/{publicationId}/{accountKey}.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let needs = shared::runtime::Needs { queues: &[shared::queue::EVENTS], ..Default::default() };
    let state = shared::runtime::aws_state(needs).await?;
    lambda_http::run(shared::api::stripe_webhook::router(state)).await
}
