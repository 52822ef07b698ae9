//! `GET …/tasks?status=` and `PATCH …/tasks/{taskId}` (functions `tasks-list`, `tasks-update`): the follow-up tasks
//! automation rules create, listed by status from an index (never a scan), opened and closed by operators.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::customers::{cursor, limit, page_error};
use super::settings::authorize;
use crate::domain::ids::TaskId;
use crate::domain::task::{TaskStatus, TaskView};
use crate::http::ApiError;
use crate::http::body::{JsonBytes, parse_json};
use crate::http::extract::{Path, Query};
use crate::store::repo::tasks;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    status: String,
}

fn status(text: &str) -> Result<TaskStatus, ApiError> {
    TaskStatus::parse(text).ok_or_else(|| ApiError::BadRequest("status must be open or done".into()))
}

pub(super) async fn list(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let status = query.status.as_deref().map(status).transpose()?.unwrap_or(TaskStatus::Open);
    let after = cursor(query.cursor.as_deref())?;
    let (page, next) = tasks::list(state.store.as_ref(), &publication, status, limit(query.limit)?, after)
        .await
        .map_err(page_error)?;
    let data: Vec<TaskView> = page.into_iter().map(TaskView::from).collect();
    Ok(Json(json!({ "data": data, "next": next.map(|c| c.encode()) })))
}

pub(super) async fn update(
    State(state): State<AppState>,
    Path((raw_id, raw_task)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Json<TaskView>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let not_found = || ApiError::NotFound("task not found".into());
    let id = TaskId::parse(&raw_task).map_err(|_| not_found())?;
    let change: Change = parse_json(&bytes)?;
    let wanted = status(&change.status)?;
    let now = crate::store::now_epoch();
    let task = tasks::set_status(state.store.as_ref(), &publication, &id, wanted, now).await?.ok_or_else(not_found)?;
    tracing::info!(task = %task.id, status = wanted.as_str(), "task updated");
    Ok(Json(TaskView::from(task)))
}
