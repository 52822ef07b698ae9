//! Lambda `subscriptions-winback`: POST /api/subscriptions/winback (and its CORS preflight).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs::default()).await?;
    lambda_http::run(shared::api::subscriptions::winback_router(state)).await
}
