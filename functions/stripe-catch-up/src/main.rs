//! Lambda `stripe-catch-up`: POST /admin/publications/{id}/stripe-accounts/{accountKey}/catch-up, lists the
//! Stripe events the account's sync missed and queues them on the events queue for webhook-worker. Its route
//! alone (`shared::api::admin_routes::STRIPE_CATCH_UP`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs {
        // The missed events go on the events queue.
        queues: &[shared::queue::EVENTS],
        admin: true,
        ..Default::default()
    })
    .await?;
    lambda_http::run(shared::api::admin_routes::STRIPE_CATCH_UP.router(state)).await
}
