//! Lambda `exports`: GET /admin/publications/{id}/exports/{kind}, customers, subscriptions or invoices streamed
//! as CSV or JSON Lines. Its route alone (`shared::api::admin_routes::EXPORTS`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::EXPORTS.router(state)).await
}
