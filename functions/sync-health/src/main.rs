//! Lambda `sync-health`: GET /admin/publications/{id}/sync, sync health (reads the events and forward
//! dead-letter queues' depths). Its route alone (`shared::api::admin_routes::SYNC_HEALTH`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs {
        // Sync health reports the events and forward dead-letter queues' depths.
        dead_letters: &[shared::queue::EVENTS, shared::queue::FORWARD],
        admin: true,
        ..Default::default()
    })
    .await?;
    lambda_http::run(shared::api::admin_routes::SYNC_HEALTH.router(state)).await
}
