//! Lambda `keys-list`: GET /admin/publications/{id}/keys, lists a publication's keys, masked. Its route alone
//! (`shared::api::admin_routes::KEYS_LIST`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::KEYS_LIST.router(state)).await
}
