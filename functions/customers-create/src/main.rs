//! Lambda `customers-create`: POST /admin/publications/{id}/customers, creates a customer (and, when asked, its
//! Stripe customer). Its route alone (`shared::api::admin_routes::CUSTOMERS_CREATE`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::CUSTOMERS_CREATE.router(state)).await
}
