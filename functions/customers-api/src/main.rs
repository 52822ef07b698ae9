//! Lambda `customers-api`: GET /admin/publications/{id}/customers and …/customers/{customerId}, edits,
//! tasks, exports and sync health (which reads the dead-letter queues' depths).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs {
        dead_letters: shared::queue::ALL,
        admin: true,
        ..Default::default()
    })
    .await?;
    lambda_http::run(shared::api::customers::router(state)).await
}
