//! Lambda `keys-revoke`: DELETE /admin/publications/{id}/keys/{keyId}, revokes a publication key. Its route alone
//! (`shared::api::admin_routes::KEYS_REVOKE`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::KEYS_REVOKE.router(state)).await
}
