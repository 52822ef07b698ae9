//! Piano: Piano ID access tokens (local HS256 verification) and the REST client (token verification,
//! the authoritative check). Webhook decryption and the other REST calls join here with their issues.

pub mod client;
pub mod token;
