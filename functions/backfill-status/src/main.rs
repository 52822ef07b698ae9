//! Lambda `backfill-status`: GET /admin/publications/{id}/backfill, every account's latest backfill with its
//! progress. Its route alone (`shared::api::admin_routes::BACKFILL_STATUS`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::BACKFILL_STATUS.router(state)).await
}
