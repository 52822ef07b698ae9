//! Configuration from the environment; every error names the variable.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
    #[error("missing environment variable: set {0} or {1}")]
    MissingEither(&'static str, &'static str),
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ConfigError::Missing(name)),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Invalid { name, why: "not UTF-8".into() }),
    }
}

pub fn optional(name: &'static str) -> Result<Option<String>, ConfigError> {
    match required(name) {
        Ok(v) => Ok(Some(v)),
        Err(ConfigError::Missing(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The operator key must be long enough that guessing it is hopeless.
pub const MIN_ADMIN_TOKEN_LEN: usize = 24;

/// The operator key itself.
pub const ADMIN_TOKEN: &str = "CRM_ADMIN_TOKEN";
/// During a rotation, the operator key being replaced: accepted beside `CRM_ADMIN_TOKEN`.
pub const ADMIN_TOKEN_PREVIOUS: &str = "CRM_ADMIN_TOKEN_PREVIOUS";
/// The ARN of a Secrets Manager secret holding the operator key (the deployed stack's way); wins over
/// `CRM_ADMIN_TOKEN`. Read once at init (`runtime::admin_token_from`).
pub const ADMIN_TOKEN_SECRET_ARN: &str = "CRM_ADMIN_TOKEN_SECRET_ARN";

/// The operator key from `CRM_ADMIN_TOKEN`.
pub fn admin_token() -> Result<String, ConfigError> {
    checked_admin_token(ADMIN_TOKEN, &required(ADMIN_TOKEN)?)
}

/// `raw` trimmed (a trailing newline in a file or secret must not make every key wrong), refused when
/// too short; `name` is the variable it came from. The value never appears in the error.
pub fn checked_admin_token(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    let token = raw.trim();
    if token.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(ConfigError::Invalid { name, why: format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters") });
    }
    Ok(token.to_owned())
}

pub fn table_name() -> Result<String, ConfigError> {
    required("CRM_TABLE_NAME")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_token_is_trimmed_and_must_be_long_enough() {
        let token = "operator-token-0123456789abcdef";
        assert_eq!(checked_admin_token(ADMIN_TOKEN, &format!("  {token}\n")).unwrap(), token);
        let short = checked_admin_token(ADMIN_TOKEN_SECRET_ARN, "short-token-padded      \n").unwrap_err();
        let message = short.to_string();
        assert!(message.contains(ADMIN_TOKEN_SECRET_ARN) && message.contains("at least 24"), "{message}");
        assert!(!message.contains("short-token"), "the value never shows: {message}");
    }
}
