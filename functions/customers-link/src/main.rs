//! Lambda `customers-link`: POST /admin/publications/{id}/customers/{customerId}/piano-link, links a Piano
//! user to a customer on an operator's word. Its route alone (`shared::api::admin_routes::CUSTOMERS_LINK`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::CUSTOMERS_LINK.router(state)).await
}
