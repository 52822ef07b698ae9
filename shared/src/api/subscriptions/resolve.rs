//! Who is calling a public route: the seed's resolution, in its order and with its messages.
//! Origin and token must be there; the token's `aud` names the Piano application; the publication is
//! the one of that application serving pages from the Origin; its JWT secret (when configured) must
//! verify the token (HS256 and `exp`); `sub` must be a CRM customer with Stripe customers in the
//! publication's accounts.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::ORIGIN;

use super::errors::{self, bad};
use crate::api::AppState;
use crate::domain::customer::Identity;
use crate::domain::settings::{Origin, StripeAccount};
use crate::http::ApiError;
use crate::http::context::record_publication;
use crate::piano::client::{PianoError, base_for};
use crate::piano::token::{self, Claims};
use crate::store::repo::customers;
use crate::store::repo::publications::{self, StoredSettings};

pub struct Caller {
    pub publication: Arc<StoredSettings>,
    pub token: String,
    pub claims: Claims,
    /// Each Stripe account of the publication where the reader is a customer, with those customer ids.
    pub accounts: Vec<(StripeAccount, Vec<String>)>,
}

/// The `token` query parameter, read leniently (a malformed query is just a missing token).
pub fn token_of(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
}

pub async fn caller(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> Result<Caller, ApiError> {
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let origin = origin.ok_or_else(|| bad(errors::ORIGIN_NOT_FOUND))?;
    let token = token_of(query).ok_or_else(|| bad(errors::TOKEN_NOT_FOUND))?;
    let claims = token::decode_unverified(&token).map_err(|_| bad(errors::NO_AUD))?;
    let aud = claims.aud.clone().filter(|a| !a.is_empty()).ok_or_else(|| bad(errors::NO_AUD))?;

    let origin = Origin::parse(origin).map_err(|_| bad(errors::PUBLICATION_NOT_FOUND))?;
    let publication = publications::by_piano_aid(state.store.as_ref(), &aud)
        .await?
        .into_iter()
        .find(|p| p.settings.origins.contains(&origin))
        .ok_or_else(|| bad(errors::PUBLICATION_NOT_FOUND))?;
    record_publication(&publication.publication_id);

    let piano = publication.settings.piano.as_ref().ok_or_else(|| bad(errors::PUBLICATION_NOT_FOUND))?;
    let claims = match &piano.jwt_secret {
        Some(secret) => token::verify(&token, secret, crate::store::now_epoch()).map_err(|e| {
            tracing::info!(reason = %e, "Piano token refused");
            errors::invalid_token()
        })?,
        None => claims,
    };

    let uid = claims.sub.clone().filter(|s| !s.is_empty()).ok_or_else(|| bad(errors::PIANO_USER_NOT_FOUND))?;
    let found = customers::find(state.store.as_ref(), &publication.publication_id, &Identity::Piano(uid)).await?;
    let customer = found.ok_or_else(|| bad(errors::PIANO_USER_NOT_FOUND))?.value;

    let accounts: Vec<(StripeAccount, Vec<String>)> = publication
        .settings
        .stripe_accounts
        .iter()
        .filter_map(|account| {
            let ids: Vec<String> = customer
                .identities()
                .into_iter()
                .filter_map(|identity| match identity {
                    Identity::Stripe(key, id) if key == account.key => Some(id),
                    _ => None,
                })
                .collect();
            (!ids.is_empty()).then(|| (account.clone(), ids))
        })
        .collect();
    if accounts.is_empty() {
        return Err(bad(errors::STRIPE_ACCOUNTS_NOT_FOUND));
    }
    Ok(Caller { publication: Arc::new(publication), token, claims, accounts })
}

/// The authoritative check (cancel and winback): Piano itself confirms the token is live and the reader's.
pub async fn confirm_with_piano(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let Some(piano) = caller.publication.settings.piano.as_ref() else {
        return Err(errors::invalid_token());
    };
    let base = base_for(piano.region, state.config.piano_api_base.as_deref());
    match state.piano.verify_token(&base, &piano.aid, &piano.api_token, &caller.token).await {
        Ok(uid) if Some(&uid) == caller.claims.sub.as_ref() => Ok(()),
        Ok(_) | Err(PianoError::InvalidToken) => Err(errors::invalid_token()),
        Err(PianoError::Unavailable(detail) | PianoError::Rejected(detail)) => {
            Err(ApiError::Unavailable(format!("Piano: {detail}")))
        }
    }
}
