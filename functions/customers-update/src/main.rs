//! Lambda `customers-update`: PATCH /admin/publications/{id}/customers/{customerId}, changes a customer's email
//! or name, at Stripe first. Its route alone (`shared::api::admin_routes::CUSTOMERS_UPDATE`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::CUSTOMERS_UPDATE.router(state)).await
}
