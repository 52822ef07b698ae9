//! Lambda `customers-get`: GET /admin/publications/{id}/customers/{customerId}, the customer record with its
//! timeline and open tasks. Its route alone (`shared::api::admin_routes::CUSTOMERS_GET`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::CUSTOMERS_GET.router(state)).await
}
