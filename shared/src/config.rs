//! Configuration from the environment; every error names the variable.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
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

pub fn admin_token() -> Result<String, ConfigError> {
    let token = required("CRM_ADMIN_TOKEN")?;
    if token.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(ConfigError::Invalid {
            name: "CRM_ADMIN_TOKEN",
            why: format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters"),
        });
    }
    Ok(token)
}

pub fn table_name() -> Result<String, ConfigError> {
    required("CRM_TABLE_NAME")
}
