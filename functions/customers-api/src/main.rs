//! Lambda `customers-api`: GET /admin/publications/{id}/customers and …/customers/{customerId}.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::customers::router(state)).await
}
