//! Lambda `settings-put`: PUT /admin/publications/{id}, creates (201) or replaces (200) the publication's
//! settings, conditional with If-Match. Its route alone (`shared::api::admin_routes::SETTINGS_PUT`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::SETTINGS_PUT.router(state)).await
}
