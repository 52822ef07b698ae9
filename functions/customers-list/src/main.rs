//! Lambda `customers-list`: GET /admin/publications/{id}/customers, the customers, in creation order, of one
//! payment status, or the one with an email. Its route alone
//! (`shared::api::admin_routes::CUSTOMERS_LIST`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::CUSTOMERS_LIST.router(state)).await
}
