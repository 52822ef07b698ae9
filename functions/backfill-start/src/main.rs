//! Lambda `backfill-start`: POST /admin/publications/{id}/backfill, starts (or answers the running) backfill of
//! a Stripe account and queues a slice on the jobs queue. Its route alone
//! (`shared::api::admin_routes::BACKFILL_START`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs {
        // The slice goes on the jobs queue.
        queues: &[shared::queue::JOBS],
        admin: true,
        ..Default::default()
    })
    .await?;
    lambda_http::run(shared::api::admin_routes::BACKFILL_START.router(state)).await
}
