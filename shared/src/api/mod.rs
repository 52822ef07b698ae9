//! The product's routes, one router per Lambda function. `crm serve` merges them all; each
//! function's `main.rs` runs its own under lambda_http. Handlers only see the ports in `AppState`.

pub mod settings;

use std::sync::Arc;

use crate::http::auth::AdminAuth;
use crate::queue::Queue;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub admin: Arc<AdminAuth>,
}
