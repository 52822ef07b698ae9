//! Plain types and pure rules, no I/O. Types here parse their input (`Email::parse`, serde's
//! `try_from`), so a value that exists is valid.

pub mod automation;
pub mod customer;
pub mod ids;
pub mod secret;
pub mod settings;
