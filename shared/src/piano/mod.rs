//! Piano: Piano ID access tokens (local HS256 verification), the REST client (token verification,
//! the authoritative check), Piano's recent acceptances of tokens (`verified`) and the webhook `data`
//! format (decryption, as Piano's SDKs do it; the webhook proxy of the Piano issue is its caller). The
//! other REST calls join with their issues.

pub mod client;
pub mod forward;
pub mod token;
pub mod verified;
pub mod webhook;
