//! The subscription CRM's logic, shared by every Lambda function and by the `crm` CLI.
//! See DESIGN.md beside the repository and docs/ for the architecture.

pub mod api;
pub mod automation;
pub mod aws;
pub mod backfill;
pub mod catch_up;
pub mod config;
pub mod domain;
pub mod export;
pub mod http;
pub mod jobs;
pub mod piano;
pub mod queue;
pub mod reconcile;
pub mod runtime;
pub mod store;
pub mod stripe;
pub mod sync;
pub mod telemetry;
