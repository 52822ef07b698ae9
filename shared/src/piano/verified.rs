//! Piano's recent answers to token verification, so a reader's page that lists and then acts does not
//! wait for Piano on every call. Shared by the requests of one process (a warm Lambda, `crm serve`).
//!
//! Only acceptances are kept, keyed by a SHA-256 of the application, its API token and the reader's
//! token (neither token is kept, and a changed API token misses). An entry lives until the token's
//! `exp` or `TTL_SECS` after Piano answered, whichever comes first, and the map holds at most
//! `MAX_ENTRIES`, so a flood of distinct tokens cannot grow it without bound.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use crate::domain::secret::Secret;
use crate::piano::client::VerifiedToken;

/// Longest an acceptance is reused: a token Piano revokes stops working within this.
pub const TTL_SECS: i64 = 60;
/// Entries kept at most (about 100 bytes each).
pub const MAX_ENTRIES: usize = 4096;

/// What an entry is found by: a hash, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// Each part is length-prefixed, so no two different triples hash the same input.
    pub fn new(aid: &str, api_token: &Secret, token: &str) -> Self {
        let mut hash = Sha256::new();
        for part in [aid, api_token.expose(), token] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        Self(hash.finalize().into())
    }
}

struct Entry {
    verdict: VerifiedToken,
    /// Seconds since the epoch; the entry answers while `now < until`.
    until: i64,
}

pub struct VerifiedTokens {
    ttl: i64,
    max: usize,
    entries: Mutex<HashMap<TokenKey, Entry>>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::new(TTL_SECS, MAX_ENTRIES)
    }
}

impl VerifiedTokens {
    pub fn new(ttl_secs: i64, max_entries: usize) -> Self {
        Self { ttl: ttl_secs, max: max_entries.max(1), entries: Mutex::default() }
    }

    /// Piano's answer for this token, while the entry lives; `now` in seconds since the epoch.
    pub fn get(&self, key: &TokenKey, now: i64) -> Option<VerifiedToken> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(entry) if now < entry.until => Some(entry.verdict.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers that Piano accepted the token (expiring at `exp`) with `verdict` at `now`.
    pub fn insert(&self, key: TokenKey, verdict: VerifiedToken, exp: i64, now: i64) {
        let until = exp.min(now.saturating_add(self.ttl));
        if until <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.max && !entries.contains_key(&key) {
            entries.retain(|_, e| now < e.until);
            // Still full of live entries: the one nearest its end goes (a scan, only ever at the bound).
            if entries.len() >= self.max
                && let Some(soonest) = entries.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k)
            {
                entries.remove(&soonest);
            }
        }
        entries.insert(key, Entry { verdict, until });
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenKey, Entry>> {
        // A panic while holding this lock cannot leave the map half-written; keep using it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    fn v(uid: &str) -> VerifiedToken {
        VerifiedToken { uid: uid.into(), email_confirmed: true }
    }

    fn key(token: &str) -> TokenKey {
        TokenKey::new("AidDaily01", &Secret::new("api-token"), token)
    }

    #[test]
    fn an_entry_lives_until_the_ttl_or_the_tokens_exp_whichever_is_first() {
        let cache = VerifiedTokens::new(60, 10);
        cache.insert(key("long"), v("PNIa"), NOW + 3600, NOW);
        cache.insert(key("short"), v("PNIb"), NOW + 10, NOW);
        assert_eq!(cache.get(&key("long"), NOW + 59), Some(v("PNIa")));
        assert_eq!(cache.get(&key("long"), NOW + 60), None, "at most the TTL");
        assert_eq!(cache.get(&key("short"), NOW + 9), Some(v("PNIb")));
        assert_eq!(cache.get(&key("short"), NOW + 10), None, "never past the token's exp");
        assert!(cache.is_empty(), "expired entries are dropped when looked up");
        cache.insert(key("gone"), v("PNIc"), NOW, NOW);
        assert_eq!(cache.get(&key("gone"), NOW), None, "an expired token is not kept");
    }

    #[test]
    fn the_key_covers_the_application_and_its_api_token() {
        let cache = VerifiedTokens::default();
        cache.insert(key("t"), v("PNIa"), NOW + 600, NOW);
        assert!(cache.get(&TokenKey::new("OtherAid", &Secret::new("api-token"), "t"), NOW).is_none());
        assert!(cache.get(&TokenKey::new("AidDaily01", &Secret::new("rotated"), "t"), NOW).is_none());
        // Moving bytes between parts changes the key.
        assert_ne!(TokenKey::new("ab", &Secret::new("c"), "t"), TokenKey::new("a", &Secret::new("bc"), "t"));
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let cache = VerifiedTokens::new(60, 100);
        for i in 0..1000 {
            cache.insert(key(&format!("token-{i}")), v("PNIa"), NOW + 30 + i, NOW);
            assert!(cache.len() <= 100);
        }
        assert_eq!(cache.len(), 100);
        // The newest stayed; the ones nearest their end went.
        assert!(cache.get(&key("token-999"), NOW).is_some());
        assert!(cache.get(&key("token-0"), NOW).is_none());
        // Once they have expired, a full map drops them all to make room.
        cache.insert(key("late"), v("PNIb"), NOW + 600, NOW + 61);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key("late"), NOW + 61).is_some());
    }
}
