//! Stripe: webhook signatures, API-version-tolerant event and object parsing, REST client.

pub mod client;
pub mod endpoints;
pub mod event;
pub mod list;
pub mod objects;
pub mod signature;
