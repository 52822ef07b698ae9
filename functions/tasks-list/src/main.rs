//! Lambda `tasks-list`: GET /admin/publications/{id}/tasks, the follow-up tasks of one status. Its route alone
//! (`shared::api::admin_routes::TASKS_LIST`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::runtime::aws_state(shared::runtime::Needs { admin: true, ..Default::default() }).await?;
    lambda_http::run(shared::api::admin_routes::TASKS_LIST.router(state)).await
}
