//! Lambda `settings-api`: PUT/GET /admin/publications/{id}, keys, Stripe webhook endpoints, Piano's
//! webhook URL, and backfills (POST queues a slice on the jobs queue).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs {
        queues: &[shared::queue::JOBS],
        admin: true,
        ..Default::default()
    })
    .await?;
    lambda_http::run(shared::api::settings::router(state)).await
}
