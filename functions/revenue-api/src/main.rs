//! Lambda `revenue-api`: GET /admin/publications/{id}/revenue.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::revenue::router(state)).await
}
