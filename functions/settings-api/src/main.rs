//! Lambda `settings-api`: PUT/GET /admin/publications/{id}, POST /admin/publications/{id}/keys.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::settings::router(state)).await
}
