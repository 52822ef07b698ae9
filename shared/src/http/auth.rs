//! Admin authentication: `Authorization: Bearer <key>` with either the operator key
//! (`CRM_ADMIN_TOKEN`) or a publication key (stored only as a SHA-256 hash).

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::domain::ids::PublicationId;
use crate::store::Store;
use crate::store::repo::keys;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Operator,
    Publication(PublicationId),
}

impl Principal {
    /// A key sees its own publication only; others look as absent as publications that do not exist.
    pub fn can_see(&self, publication: &PublicationId) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Publication(own) if own == publication => Ok(()),
            Principal::Publication(_) => Err(ApiError::NotFound(format!("publication {publication} not found"))),
        }
    }
}

/// Prefix of issued publication keys, so a leaked key is recognisable (and scannable) as ours.
pub const KEY_PREFIX: &str = "crm_pk_";

pub struct AdminAuth {
    /// `None` in functions that serve no admin route (webhooks, workers): every key is refused.
    operator_hash: Option<[u8; 32]>,
}

impl AdminAuth {
    pub fn new(operator_token: &str) -> Self {
        Self { operator_hash: Some(Sha256::digest(operator_token.as_bytes()).into()) }
    }

    /// For a function without admin routes: it needs no operator key in its environment.
    pub fn none() -> Self {
        Self { operator_hash: None }
    }

    pub async fn authenticate(&self, headers: &HeaderMap, store: &dyn Store) -> Result<Principal, ApiError> {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(ApiError::Unauthorized)?;
        let Some(operator_hash) = &self.operator_hash else {
            return Err(ApiError::Unauthorized);
        };
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Comparing hashes in constant time leaks neither the key nor its length.
        if bool::from(hash.ct_eq(operator_hash)) {
            return Ok(Principal::Operator);
        }
        if !presented.starts_with(KEY_PREFIX) {
            return Err(ApiError::Unauthorized);
        }
        match keys::get(store, &hex::encode(hash)).await? {
            Some(record) => Ok(Principal::Publication(record.publication_id)),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// Issues a key for `publication`: stores its hash and answers the key itself (shown once) and its record.
pub async fn issue_publication_key(
    store: &dyn Store,
    publication: &crate::domain::ids::PublicationId,
) -> Result<(String, keys::ApiKeyRecord), crate::store::StoreError> {
    let (key, hash) = new_publication_key();
    let record = keys::ApiKeyRecord {
        publication_id: publication.clone(),
        key_id: hash[..12].to_owned(),
        created_at: crate::store::now_epoch(),
    };
    keys::put(store, &hash, &record).await?;
    Ok((key, record))
}

/// A new operator key (`CRM_ADMIN_TOKEN`): 256 random bits, 53 characters, recognisable as ours.
pub fn new_operator_token() -> String {
    let (key, _) = new_publication_key();
    key.replacen(KEY_PREFIX, "crm_admin_", 1)
}

/// A new publication key: 256 random bits. Returns (key, its SHA-256 hash in hex).
pub fn new_publication_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = keys::hash_hex(&key);
    (key, hash)
}
