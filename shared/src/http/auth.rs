//! Admin authentication: `Authorization: Bearer <key>` with either the operator key
//! (`CRM_ADMIN_TOKEN`, and during a rotation the previous one too) or a publication key (stored only
//! as a SHA-256 hash; revocable, optionally expiring, its last use noted about hourly).

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
    /// The operator keys' hashes: the current one and, during a rotation, the previous one. Empty in
    /// functions that serve no admin route (webhooks, workers): every key is refused.
    operator_hashes: Vec<[u8; 32]>,
    /// When this process last noted each publication key's use (by key id).
    noted: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// How often a process notes a key's use in its listing, at most.
const NOTE_USE_EVERY: i64 = 3_600;

impl AdminAuth {
    pub fn new(operator_token: &str) -> Self {
        Self { operator_hashes: vec![Sha256::digest(operator_token.as_bytes()).into()], noted: Default::default() }
    }

    /// Also accepts `previous` (`CRM_ADMIN_TOKEN_PREVIOUS`, or the secret's `AWSPREVIOUS` version): a
    /// rotation puts the new key in place while clients still holding the old one keep working.
    pub fn with_previous(mut self, previous: Option<&str>) -> Self {
        if let Some(previous) = previous {
            self.operator_hashes.push(Sha256::digest(previous.as_bytes()).into());
        }
        self
    }

    /// For a function without admin routes: it needs no operator key in its environment.
    pub fn none() -> Self {
        Self { operator_hashes: Vec::new(), noted: Default::default() }
    }

    /// Notes the key's use in its listing when this process has not for an hour (best effort).
    async fn note_use(&self, store: &dyn Store, record: &keys::ApiKeyRecord) {
        let now = crate::store::now_epoch();
        {
            let mut noted = self.noted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if noted.get(&record.key_id).is_some_and(|at| now - at < NOTE_USE_EVERY) {
                return;
            }
            noted.insert(record.key_id.clone(), now);
        }
        if let Err(e) = keys::note_use(store, record, now, NOTE_USE_EVERY).await {
            tracing::warn!(error = %e, key_id = %record.key_id, "key use not noted");
        }
    }

    pub async fn authenticate(&self, headers: &HeaderMap, store: &dyn Store) -> Result<Principal, ApiError> {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(ApiError::Unauthorized)?;
        if self.operator_hashes.is_empty() {
            return Err(ApiError::Unauthorized);
        }
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Comparing hashes in constant time leaks neither the key nor its length; every operator hash
        // is compared, so which one matched does not show either.
        let operator = self.operator_hashes.iter().fold(subtle::Choice::from(0), |any, h| any | hash.ct_eq(h));
        if bool::from(operator) {
            return Ok(Principal::Operator);
        }
        if !presented.starts_with(KEY_PREFIX) {
            return Err(ApiError::Unauthorized);
        }
        match keys::get(store, &hex::encode(hash)).await? {
            // The store hides an expired key; its expiry is checked here too, to the second.
            Some(record) if record.expires_at.is_none_or(|at| at > crate::store::now_epoch()) => {
                self.note_use(store, &record).await;
                Ok(Principal::Publication(record.publication_id))
            }
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// Issues a key for `publication`: stores its hash and answers the key itself (shown once) and its record.
pub async fn issue_publication_key(
    store: &dyn Store,
    publication: &crate::domain::ids::PublicationId,
    expires_at: Option<i64>,
) -> Result<(String, keys::ApiKeyRecord), crate::store::StoreError> {
    let (key, hash) = new_publication_key();
    let record = keys::ApiKeyRecord {
        publication_id: publication.clone(),
        key_id: hash[..12].to_owned(),
        created_at: crate::store::now_epoch(),
        expires_at,
    };
    keys::put(store, &key, &hash, &record).await?;
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
