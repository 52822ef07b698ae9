//! Lambda `tasks-update`: PATCH /admin/publications/{id}/tasks/{taskId}, closes or reopens a follow-up task.
//! Its route alone (`shared::api::admin_routes::TASKS_UPDATE`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::TASKS_UPDATE.router(state)).await
}
