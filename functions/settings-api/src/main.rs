//! Lambda `settings-api`: PUT/GET /admin/publications/{id}, keys, Stripe webhook endpoints, Piano's
//! webhook URL, backfills (POST queues a slice on the jobs queue) and catch-ups (POST queues the
//! missed Stripe events on the events queue).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs {
        queues: &[shared::queue::JOBS, shared::queue::EVENTS],
        admin: true,
        ..Default::default()
    })
    .await?;
    lambda_http::run(shared::api::settings::router(state)).await
}
