//! Lambda `settings-get`: GET /admin/publications/{id}, the publication's settings, secrets masked, with their
//! ETag. Its route alone (`shared::api::admin_routes::SETTINGS_GET`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::SETTINGS_GET.router(state)).await
}
