//! Plain types and pure rules, no I/O. Types here parse their input (`Email::parse`, serde's
//! `try_from`), so a value that exists is valid.

pub mod access;
pub mod activity;
pub mod automation;
pub mod billing;
pub mod customer;
pub mod ids;
pub mod matching;
pub mod money;
pub mod payments;
pub mod piano;
pub mod piano_payments;
pub mod record;
pub mod revenue;
pub mod secret;
pub mod settings;
pub mod sync_health;
pub mod task;
