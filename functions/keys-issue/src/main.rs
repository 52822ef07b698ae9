//! Lambda `keys-issue`: POST /admin/publications/{id}/keys, issues a publication key (operator key only). Its
//! route alone (`shared::api::admin_routes::KEYS_ISSUE`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::KEYS_ISSUE.router(state)).await
}
