//! Lambda `piano-webhook-register`: POST /admin/publications/{id}/piano/webhook, registers this deployment's
//! Piano webhook URL with the publication's Piano application. Its route alone
//! (`shared::api::admin_routes::PIANO_WEBHOOK_REGISTER`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::PIANO_WEBHOOK_REGISTER.router(state)).await
}
