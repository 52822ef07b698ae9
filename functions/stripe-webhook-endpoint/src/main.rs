//! Lambda `stripe-webhook-endpoint`: POST
//! /admin/publications/{id}/stripe-accounts/{accountKey}/webhook-endpoint, creates or updates the account's
//! webhook endpoint at Stripe and keeps its signing secret. Its route alone
//! (`shared::api::admin_routes::STRIPE_WEBHOOK_ENDPOINT`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::STRIPE_WEBHOOK_ENDPOINT.router(state)).await
}
