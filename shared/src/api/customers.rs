//! The customer listing (all, by email, by payment status; function `customers-list`) and the customer
//! record (API.md "Customer record"; `customers-get`); creation and edits are in `customer_edits`,
//! follow-up tasks in `tasks`, exports in `exports`, sync health in `sync_health`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::settings::authorize;
use crate::domain::billing::PaymentStatus;
use crate::domain::customer::Identity;
use crate::domain::ids::{CustomerId, Email};
use crate::domain::record::{CustomerRecord, CustomerSummary, ProductNames, product_ids, products_of};
use crate::domain::task::{TaskStatus, TaskView};
use crate::http::ApiError;
use crate::http::context::finish;
use crate::http::extract::{Path, Query};
use crate::store::repo::{activities, catalogue, customers, publications, tasks};
use crate::store::{Cursor, StoreError};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// The customers group's routes (`admin_routes`, one function each), for `crm serve` to merge.
pub fn routes(state: AppState) -> Router {
    use super::admin_routes as declared;
    declared::routes(declared::group(declared::Group::Customers), state)
}

/// The customers group's routes with the layers of a function's router (tests).
pub fn router(state: AppState) -> Router {
    finish(routes(state))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    email: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub(super) fn limit(value: Option<u32>) -> Result<u32, ApiError> {
    match value.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(ApiError::BadRequest(format!("limit must be 1 to {MAX_LIMIT}"))),
    }
}

pub(super) fn cursor(text: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    text.map(Cursor::decode).transpose().map_err(|_| bad_cursor())
}

fn bad_cursor() -> ApiError {
    ApiError::BadRequest("cursor is not valid".into())
}

/// A cursor of another listing is refused by the store as invalid: the caller's mistake.
pub(super) fn page_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(_) => bad_cursor(),
        other => other.into(),
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let store = state.store.as_ref();
    if let Some(email) = &query.email {
        let email = Email::parse(email)?;
        let found = customers::find(store, &publication, &Identity::Email(email)).await?;
        let data: Vec<CustomerSummary> = found.iter().map(|c| CustomerSummary::build(&c.value)).collect();
        return Ok(Json(json!({ "data": data, "next": null })));
    }
    let after = cursor(query.cursor.as_deref())?;
    let limit = limit(query.limit)?;
    let (page, next) = match query.status.as_deref() {
        Some(text) => {
            let status = PaymentStatus::parse(text)
                .ok_or_else(|| ApiError::BadRequest("status must be current, overdue, cancelled or none".into()))?;
            customers::list_by_status(store, &publication, status, limit, after).await
        }
        None => customers::list(store, &publication, limit, after).await,
    }
    .map_err(page_error)?;
    let data: Vec<CustomerSummary> = page.iter().map(CustomerSummary::build).collect();
    Ok(Json(json!({ "data": data, "next": next.map(|c| c.encode()) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RecordQuery {
    activities_cursor: Option<String>,
    activities_limit: Option<u32>,
}

pub(super) async fn record(
    State(state): State<AppState>,
    Path((raw_id, raw_customer)): Path<(String, String)>,
    Query(query): Query<RecordQuery>,
    headers: HeaderMap,
) -> Result<Json<CustomerRecord>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let not_found = || ApiError::NotFound("customer not found".into());
    let id = CustomerId::parse(&raw_customer).map_err(|_| not_found())?;
    let store = state.store.as_ref();
    let customer = customers::get_full(store, &publication, &id).await?.ok_or_else(not_found)?.value;
    let after = cursor(query.activities_cursor.as_deref())?;
    let (timeline, next) =
        activities::list(store, &publication, &id, limit(query.activities_limit)?, after).await.map_err(page_error)?;
    let mut names = ProductNames::new();
    for (account, product) in product_ids(&customer) {
        if let Some(name) = catalogue::product(store, &publication, &account, &product).await?.and_then(|p| p.name) {
            names.insert(product, name);
        }
    }
    let catalogue =
        publications::get(store, &publication).await?.map(|s| s.value.settings.catalogue).unwrap_or_default();
    let products = products_of(&customer, &catalogue, crate::store::now_epoch());
    let open = tasks::of_customer(store, &publication, &id, Some(TaskStatus::Open)).await?;
    let record = CustomerRecord::build(&customer, timeline, next.map(|c| c.encode()), &names, products)
        .with_open_tasks(open.into_iter().map(TaskView::from).collect());
    Ok(Json(record))
}
