//! Who is calling a public route: the seed's resolution, in its order and with its messages.
//! Origin and token must be there; the token's `aud` names the Piano application; the publication is
//! the one of that application serving pages from the Origin; the token must then be verified, with
//! the publication's JWT secret when it has one (HS256 and `exp`), otherwise by Piano (its answer
//! reused for a minute at most); `sub` must be a CRM customer with Stripe customers in the
//! publication's accounts, or become one on the reader's first visit when Piano says they confirmed
//! the email of such a customer. Nothing is read from the store for the reader before the token is
//! verified.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::ORIGIN;

use super::errors::{self, bad};
use crate::api::AppState;
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::Email;
use crate::domain::settings::{Origin, PianoSettings, StripeAccount};
use crate::http::ApiError;
use crate::http::context::record_publication;
use crate::piano::client::{PianoError, VerifiedToken, base_for};
use crate::piano::token::{self, Claims};
use crate::piano::verified::TokenKey;
use crate::store::repo::customers;
use crate::store::repo::publications::{self, StoredSettings};
use crate::sync::link::{self, Evidence, LinkError};

/// How the caller's token was verified, which decides whether cancel and winback still ask Piano.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// With the publication's JWT secret: Piano has not said whether the token is still live.
    Locally,
    /// Piano accepted it during this request.
    ByPiano,
    /// Piano accepted it in an earlier request, at most `piano::verified::TTL_SECS` ago.
    Recently,
}

pub struct Caller {
    pub publication: Arc<StoredSettings>,
    pub token: String,
    /// The token's claims once verified (as `verified` says): `sub` is the reader's.
    pub claims: Claims,
    pub verified: Verified,
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
    let now = crate::store::now_epoch();
    let (claims, verified, verdict) = match &piano.jwt_secret {
        Some(secret) => (token::verify(&token, secret, now).map_err(refused)?, Verified::Locally, None),
        None => verify_with_piano(state, piano, &token, now).await.map(|(c, v, d)| (c, v, Some(d)))?,
    };

    let uid = claims.sub.clone().filter(|s| !s.is_empty()).ok_or_else(|| bad(errors::PIANO_USER_NOT_FOUND))?;
    let accounts = reader(state, &publication, piano, (&token, claims.exp), &uid, verdict, now).await?;
    if accounts.is_empty() {
        return Err(bad(errors::STRIPE_ACCOUNTS_NOT_FOUND));
    }
    Ok(Caller { publication: Arc::new(publication), token, claims, verified, accounts })
}

/// Each Stripe account of the publication where `customer` is a customer, with those customer ids.
fn accounts_of(publication: &StoredSettings, customer: &Customer) -> Vec<(StripeAccount, Vec<String>)> {
    let identities = customer.identities();
    publication
        .settings
        .stripe_accounts
        .iter()
        .filter_map(|account| {
            let ids: Vec<String> = identities
                .iter()
                .filter_map(|identity| match identity {
                    Identity::Stripe(key, id) if *key == account.key => Some(id.clone()),
                    _ => None,
                })
                .collect();
            (!ids.is_empty()).then(|| (account.clone(), ids))
        })
        .collect()
}

/// The Stripe accounts and customers of the verified reader's record (`accounts_of`): the one holding
/// their uid when it has Stripe customers here; else, on their first visit, the record holding their
/// email, linked to them now if Piano says they confirmed it (`first_visit`); else the uid's record
/// as it is (none), or the seed's "not found".
async fn reader(
    state: &AppState,
    publication: &StoredSettings,
    piano: &PianoSettings,
    token: (&str, Option<i64>),
    uid: &str,
    verdict: Option<VerifiedToken>,
    now: i64,
) -> Result<Vec<(StripeAccount, Vec<String>)>, ApiError> {
    let store = state.store.as_ref();
    let found = customers::find(store, &publication.publication_id, &Identity::Piano(uid.to_owned())).await?;
    if let Some(found) = &found {
        let accounts = accounts_of(publication, &found.value);
        if !accounts.is_empty() {
            return Ok(accounts);
        }
    }
    match first_visit(state, publication, piano, token, uid, verdict, now).await? {
        Some(linked) => Ok(accounts_of(publication, &linked)),
        None if found.is_some() => Ok(Vec::new()),
        None => Err(bad(errors::PIANO_USER_NOT_FOUND)),
    }
}

/// A reader Piano knows but this record does not link to any Stripe customer yet (their Piano account
/// sent no event since go-live, or its events made a record of its own). Piano's word that they
/// confirmed their email is the evidence (`sync::link`): with it, the record holding that email,
/// when it has Stripe customers here and no other Piano user, is linked to them within this request.
async fn first_visit(
    state: &AppState,
    publication: &StoredSettings,
    piano: &PianoSettings,
    (token, exp): (&str, Option<i64>),
    uid: &str,
    verdict: Option<VerifiedToken>,
    now: i64,
) -> Result<Option<Customer>, ApiError> {
    let base = base_for(piano.region, state.config.piano_api_base.as_deref());
    let verdict = match verdict {
        Some(verdict) => verdict,
        // Verified locally: the secret says nothing of the email; Piano does (its answer kept a minute,
        // so a reader reloading the page does not ask it again).
        None => piano_verdict(state, piano, token, exp, now).await?.0,
    };
    the_reader_piano_verified(Some(uid), &verdict)?;
    if !verdict.email_confirmed {
        tracing::info!("first visit: the reader's email is not confirmed at Piano; nothing linked");
        return Ok(None);
    }
    let user = match state.piano.user(&base, &piano.aid, &piano.api_token, uid).await {
        Ok(user) => user,
        Err(PianoError::Rejected(detail)) => {
            tracing::warn!(%detail, "first visit: Piano did not show the user; nothing linked");
            return Ok(None);
        }
        Err(e) => return Err(piano_error(e)),
    };
    let Some(email) = user.email.as_deref().and_then(|e| Email::parse(e).ok()) else { return Ok(None) };
    let store = state.store.as_ref();
    let Some(holder) = customers::find(store, &publication.publication_id, &Identity::Email(email)).await? else {
        return Ok(None);
    };
    if holder.value.piano_uid.is_some() || accounts_of(publication, &holder.value).is_empty() {
        return Ok(None);
    }
    match link::link_piano(store, &publication.publication_id, &holder.value.id, uid, Evidence::ConfirmedEmail, now)
        .await
    {
        Ok(linked) => Ok(Some(linked.value)),
        Err(LinkError::Sync(e)) => Err(LinkError::Sync(e).into()),
        Err(e) => {
            tracing::warn!(error = %e, "first visit: not linked");
            Ok(None)
        }
    }
}

/// Piano names the reader; a token whose `sub` claims someone else is not theirs to use.
fn the_reader_piano_verified(sub: Option<&str>, verdict: &VerifiedToken) -> Result<(), ApiError> {
    if sub == Some(verdict.uid.as_str()) {
        return Ok(());
    }
    tracing::info!("Piano token refused: its sub is not the user Piano verified");
    Err(errors::invalid_token())
}

fn refused(reason: token::TokenError) -> ApiError {
    tracing::info!(%reason, "Piano token refused");
    errors::invalid_token()
}

/// Piano refusing the token is the seed's invalid token; no usable answer is a 503 (detail logged only).
fn piano_error(e: PianoError) -> ApiError {
    match e {
        PianoError::InvalidToken => errors::invalid_token(),
        PianoError::Unavailable(detail) | PianoError::Rejected(detail) => {
            ApiError::Unavailable(format!("Piano: {detail}"))
        }
    }
}

/// A publication without a JWT secret: Piano verifies the token (its acceptance reused for a short
/// while). The token is screened first, so one that cannot be live costs no call.
async fn verify_with_piano(
    state: &AppState,
    piano: &PianoSettings,
    token: &str,
    now: i64,
) -> Result<(Claims, Verified, VerifiedToken), ApiError> {
    let claims = token::screen(token, now).map_err(refused)?;
    let (verdict, remembered) = piano_verdict(state, piano, token, claims.exp, now).await?;
    the_reader_piano_verified(claims.sub.as_deref(), &verdict)?;
    let verified = if remembered { Verified::Recently } else { Verified::ByPiano };
    Ok((claims, verified, verdict))
}

/// Piano's answer on `token`: the one it gave within the last minute (`true`), else asked now and
/// kept until the token's `exp`, a minute at most (`false`).
async fn piano_verdict(
    state: &AppState,
    piano: &PianoSettings,
    token: &str,
    exp: Option<i64>,
    now: i64,
) -> Result<(VerifiedToken, bool), ApiError> {
    let key = TokenKey::new(&piano.aid, &piano.api_token, token);
    if let Some(verdict) = state.piano_tokens.get(&key, now) {
        return Ok((verdict, true));
    }
    let base = base_for(piano.region, state.config.piano_api_base.as_deref());
    let verdict = state.piano.verify_token(&base, &piano.aid, &piano.api_token, token).await.map_err(piano_error)?;
    if let Some(exp) = exp {
        state.piano_tokens.insert(key, verdict.clone(), exp, now);
    }
    Ok((verdict, false))
}

/// The authoritative check (cancel and winback): Piano itself confirms the token is live and the
/// reader's, unless it just did so in this request.
pub async fn confirm_with_piano(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if caller.verified == Verified::ByPiano {
        return Ok(());
    }
    let Some(piano) = caller.publication.settings.piano.as_ref() else {
        return Err(errors::invalid_token());
    };
    let base = base_for(piano.region, state.config.piano_api_base.as_deref());
    match state.piano.verify_token(&base, &piano.aid, &piano.api_token, &caller.token).await {
        Ok(verdict) if Some(&verdict.uid) == caller.claims.sub.as_ref() => Ok(()),
        Ok(_) => Err(errors::invalid_token()),
        Err(e) => Err(piano_error(e)),
    }
}
