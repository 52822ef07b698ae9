//! Identifiers and addresses that arrive from outside: each one parses or is rejected.

use std::fmt;

/// Why a value could not be parsed; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(value: String) -> Result<Self, ParseError> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
    };
}

fn slug(value: &str, max: usize, extra: &[char], what: &str) -> Result<(), ParseError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c));
    if ok {
        Ok(())
    } else {
        let allowed: String = extra.iter().collect();
        Err(ParseError(format!(
            "{what} must be 1 to {max} characters of a-z, 0-9 and '{allowed}', starting with a letter or digit"
        )))
    }
}

/// A publication's id, as in `/admin/publications/{id}`: a lowercase slug, so it is safe in keys and paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicationId(String);

impl PublicationId {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        slug(value, 63, &['-'], "publication id")?;
        Ok(Self(value.to_owned()))
    }
}
string_newtype!(PublicationId);

/// The key naming one of a publication's Stripe accounts (`/webhooks/stripe/{pub}/{accountKey}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountKey(String);

impl AccountKey {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        slug(value, 32, &['-', '_'], "account key")?;
        Ok(Self(value.to_owned()))
    }
}
string_newtype!(AccountKey);

/// The CRM's own customer id: `cus_crm_` and a ULID, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(String);

const CUSTOMER_PREFIX: &str = "cus_crm_";

impl CustomerId {
    pub fn generate() -> Self {
        Self(format!("{CUSTOMER_PREFIX}{}", ulid::Ulid::new()))
    }

    pub fn parse(value: &str) -> Result<Self, ParseError> {
        value
            .strip_prefix(CUSTOMER_PREFIX)
            .and_then(|rest| ulid::Ulid::from_string(rest).ok())
            .map(|_| Self(value.to_owned()))
            .ok_or_else(|| ParseError("customer id must look like cus_crm_<ULID>".into()))
    }
}
string_newtype!(CustomerId);

/// A follow-up task's id: `tsk_` and a ULID. Automation tasks derive theirs from what created them
/// (the event's time, then a hash of event, rule and action), so a rerun names the same task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

const TASK_PREFIX: &str = "tsk_";

impl TaskId {
    /// The id of the task made at `at` (epoch seconds) from `seed`: the same inputs, the same id;
    /// ids sort by `at`.
    pub fn derived(at: i64, seed: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(seed.as_bytes());
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        let ms = u64::try_from(at.max(0)).unwrap_or(0).saturating_mul(1000).min((1 << 48) - 1);
        Self(format!("{TASK_PREFIX}{}", ulid::Ulid::from_parts(ms, u128::from_be_bytes(random))))
    }

    pub fn parse(value: &str) -> Result<Self, ParseError> {
        value
            .strip_prefix(TASK_PREFIX)
            .filter(|rest| rest.len() == 26)
            .and_then(|rest| ulid::Ulid::from_string(rest).ok())
            .map(|ulid| Self(format!("{TASK_PREFIX}{ulid}")))
            .ok_or_else(|| ParseError("task id must look like tsk_<ULID>".into()))
    }
}
string_newtype!(TaskId);

/// An email address, normalised (trimmed, lowercased) so that one person matches one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let normalised = value.trim().to_lowercase();
        let invalid = || ParseError(format!("not an email address: {:?}", truncate(value, 80)));
        if normalised.len() > 254 || normalised.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = normalised.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(normalised))
    }
}
string_newtype!(Email);

/// A Stripe event id (`evt_…`): the idempotency key of the Stripe sync.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StripeEventId(String);

impl StripeEventId {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let rest = value.strip_prefix("evt_").unwrap_or_default();
        if rest.is_empty() || value.len() > 255 || !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ParseError("a Stripe event id is evt_ followed by letters and digits".into()));
        }
        Ok(Self(value.to_owned()))
    }
}
string_newtype!(StripeEventId);

/// A provider's id for a person (Stripe customer id, Piano uid): non-empty printable ASCII, bounded.
pub fn provider_id(value: &str, what: &str) -> Result<String, ParseError> {
    if value.is_empty() || value.len() > 255 || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ParseError(format!("{what} must be 1 to 255 printable ASCII characters")));
    }
    Ok(value.to_owned())
}

pub(crate) fn truncate(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalise_and_reject_garbage() {
        assert_eq!(Email::parse("  Reader@Example.COM ").unwrap().as_str(), "reader@example.com");
        for bad in ["", "no-at", "a@b", "a@.com", "a b@c.com", "@x.com", "a@x..com", "a@x.com."] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn publication_ids_are_slugs() {
        assert!(PublicationId::parse("daily-example-1").is_ok());
        for bad in ["", "-x", "Demo", "a/b", "../etc", "a b", &"x".repeat(64)] {
            assert!(PublicationId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn customer_ids_round_trip() {
        let id = CustomerId::generate();
        assert_eq!(CustomerId::parse(id.as_str()).unwrap(), id);
        assert!(CustomerId::parse("cus_123").is_err());
        assert!(CustomerId::parse("cus_crm_notaulid").is_err());
    }

    #[test]
    fn task_ids_are_derived_and_parse() {
        let id = TaskId::derived(1_790_000_000, "evt_1:rule0:0");
        assert_eq!(id, TaskId::derived(1_790_000_000, "evt_1:rule0:0"));
        assert_ne!(id, TaskId::derived(1_790_000_000, "evt_1:rule0:1"));
        assert!(TaskId::derived(1_790_000_000, "b") < TaskId::derived(1_790_000_001, "a"), "ids sort by time");
        assert_eq!(TaskId::parse(id.as_str()).unwrap(), id);
        assert_eq!(
            TaskId::parse(&id.as_str().to_lowercase()).unwrap(),
            id,
            "lowercase ULIDs parse to the canonical id"
        );
        for bad in ["", "tsk_", "tsk_123", "task_01J8Z6W5V7QK3M2N4P6R8S0T1V", "tsk_01J8Z6W5V7QK3M2N4P6R8S0T1V/x"] {
            assert!(TaskId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn stripe_event_ids() {
        assert!(StripeEventId::parse("evt_1GoKxLJDPojXS6LNdnWbGLhe").is_ok());
        for bad in ["", "evt_", "ch_123", "evt_12 3", "evt_a/b"] {
            assert!(StripeEventId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
