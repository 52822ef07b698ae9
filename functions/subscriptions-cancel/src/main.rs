//! Lambda `subscriptions-cancel`: DELETE /api/subscriptions/{stripeSubscriptionId} (and its CORS preflight).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs::default()).await?;
    lambda_http::run(shared::api::subscriptions::cancel_router(state)).await
}
