//! Secrets (Stripe keys, webhook secrets, Piano keys and tokens): never printed, shown only masked.

use std::fmt;

/// The character that marks a masked secret; a real secret never contains it.
const ELLIPSIS: char = '…';
const KNOWN_PREFIXES: [&str; 5] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];

#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it (a signature check, an API call).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sk_live_…a1b2`: the kind of secret and its last four characters, enough to recognise it.
    pub fn masked(&self) -> String {
        let prefix = KNOWN_PREFIXES.iter().find(|p| self.0.starts_with(*p)).copied().unwrap_or("");
        let rest = &self.0[prefix.len()..];
        let chars: Vec<char> = rest.chars().collect();
        // Show a tail only where the secret is long enough that four characters give nothing away.
        let tail: String = if chars.len() >= 16 { chars[chars.len() - 4..].iter().collect() } else { String::new() };
        format!("{prefix}{ELLIPSIS}{tail}")
    }

    /// Whether a value sent back by a client is the masked form rather than a new secret.
    pub fn looks_masked(value: &str) -> bool {
        value.contains(ELLIPSIS)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_kind_and_tail_only() {
        let key = Secret::new("sk_live_51HxYzAbCdEfGhIjKlMnOpa1b2");
        assert_eq!(key.masked(), "sk_live_…a1b2");
        assert_eq!(Secret::new("whsec_short").masked(), "whsec_…");
        assert_eq!(Secret::new("thestringliteralisexactlyfortych").masked(), "…tych");
        assert!(!format!("{key:?}").contains("AbCd"));
        assert!(Secret::looks_masked(&key.masked()));
    }
}
