//! Publication settings (API.md): parsed from the admin PUT body, validated as a whole, stored as
//! they are, and shown with every secret masked.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::automation::Automation;
use super::ids::{AccountKey, ParseError};
use super::secret::Secret;

/// A settings document that cannot be accepted; `field` is a JSON path such as `stripeAccounts[0].secretKey`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError { field: field.into(), message: message.into() }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicationSettings {
    pub name: String,
    #[serde(default)]
    pub origins: Vec<Origin>,
    #[serde(default)]
    pub stripe_accounts: Vec<StripeAccount>,
    #[serde(default)]
    pub piano: Option<PianoSettings>,
    #[serde(default)]
    pub winback_offers: Vec<WinbackOffer>,
    #[serde(default)]
    pub automations: Vec<Automation>,
    #[serde(default)]
    pub catalogue: Vec<CatalogueEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StripeAccount {
    pub key: AccountKey,
    pub name: String,
    pub secret_key: Secret,
    #[serde(default)]
    pub webhook_secrets: Vec<Secret>,
    /// `acct_…`, when known (Connect accounts are called with `Stripe-Account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PianoSettings {
    pub aid: String,
    pub api_token: Secret,
    pub private_key: Secret,
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    #[serde(default)]
    pub region: PianoRegion,
    #[serde(default)]
    pub legacy_webhook_urls: Vec<HttpUrl>,
    /// Accept webhook `data` without Piano's HMAC (`C` alone, from senders that sign nothing). Off:
    /// unsigned data is refused, since AES-ECB alone lets blocks be cut and pasted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_unsigned_webhooks: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PianoRegion {
    #[default]
    Us,
    Eu,
    Au,
    Ap,
    Sandbox,
}

impl PianoRegion {
    pub fn api_base(self) -> &'static str {
        match self {
            PianoRegion::Us => "https://api.piano.io",
            PianoRegion::Eu => "https://api-eu.piano.io",
            PianoRegion::Au => "https://api-au.piano.io",
            PianoRegion::Ap => "https://api-ap.piano.io",
            PianoRegion::Sandbox => "https://sandbox.piano.io",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WinbackOffer {
    pub price_id: String,
    pub label: String,
    pub applies_to_price_ids: Vec<String>,
    pub change_at: ChangeAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAt {
    Now,
    PeriodEnd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogueEntry {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub stripe_product_ids: Vec<String>,
    #[serde(default)]
    pub piano_resource_ids: Vec<String>,
}

/// A browser origin, normalised to `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let invalid = |why: &str| ParseError(format!("{why}: {:?}", super::ids::truncate(value, 100)));
        let url = url::Url::parse(value).map_err(|_| invalid("not an origin like https://www.example.com"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(invalid("origin must be http or https"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(invalid("origin has no path, query or credentials"));
        }
        match url.origin() {
            url::Origin::Tuple(..) => Ok(Self(url.origin().ascii_serialization())),
            url::Origin::Opaque(_) => Err(invalid("not an origin")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Origin {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<Origin> for String {
    fn from(value: Origin) -> String {
        value.0
    }
}

/// An absolute http(s) URL to call (legacy webhook endpoints, notification hooks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpUrl(url::Url);

impl HttpUrl {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let url = url::Url::parse(value)
            .map_err(|_| ParseError(format!("not an absolute URL: {:?}", super::ids::truncate(value, 100))))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(ParseError("URL must be http or https with a host".into()));
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<HttpUrl> for String {
    fn from(value: HttpUrl) -> String {
        value.0.into()
    }
}

impl PublicationSettings {
    /// The catalogue entry selling Piano resource `rid`.
    pub fn product_of_piano_resource(&self, rid: &str) -> Option<&CatalogueEntry> {
        self.catalogue.iter().find(|c| c.piano_resource_ids.iter().any(|r| r == rid))
    }

    /// The catalogue entry selling Stripe product `product_id`.
    pub fn product_of_stripe_product(&self, product_id: &str) -> Option<&CatalogueEntry> {
        self.catalogue.iter().find(|c| c.stripe_product_ids.iter().any(|p| p == product_id))
    }

    /// Parses a PUT body. Secrets sent back in their masked form keep the values of `previous`.
    pub fn parse(body: &[u8], previous: Option<&PublicationSettings>) -> Result<Self, SettingsError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let mut settings: PublicationSettings = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = strip_position(&inner);
            match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    err("body", format!("invalid JSON: {message}"))
                }
                _ if path == "." || path.is_empty() => err("body", message),
                _ => err(path, message),
            }
        })?;
        de.end().map_err(|e| err("body", format!("invalid JSON: {}", strip_position(&e))))?;
        settings.restore_masked(previous)?;
        settings.validate()?;
        Ok(settings)
    }

    /// A copy fit to show: every secret replaced by its masked form.
    pub fn masked(&self) -> PublicationSettings {
        let mut shown = self.clone();
        for account in &mut shown.stripe_accounts {
            account.secret_key = Secret::new(account.secret_key.masked());
            for secret in &mut account.webhook_secrets {
                *secret = Secret::new(secret.masked());
            }
        }
        if let Some(piano) = &mut shown.piano {
            piano.api_token = Secret::new(piano.api_token.masked());
            piano.private_key = Secret::new(piano.private_key.masked());
            if let Some(jwt) = &mut piano.jwt_secret {
                *jwt = Secret::new(jwt.masked());
            }
        }
        shown
    }

    pub fn stripe_account(&self, key: &AccountKey) -> Option<&StripeAccount> {
        self.stripe_accounts.iter().find(|a| &a.key == key)
    }

    fn restore_masked(&mut self, previous: Option<&PublicationSettings>) -> Result<(), SettingsError> {
        for (i, account) in self.stripe_accounts.iter_mut().enumerate() {
            let old = previous.and_then(|p| p.stripe_account(&account.key));
            let old_secrets: Vec<&Secret> = old.map(|o| o.webhook_secrets.iter().collect()).unwrap_or_default();
            restore(
                &mut account.secret_key,
                old.map(|o| &o.secret_key).into_iter().collect(),
                format!("stripeAccounts[{i}].secretKey"),
            )?;
            for (j, secret) in account.webhook_secrets.iter_mut().enumerate() {
                restore(secret, old_secrets.clone(), format!("stripeAccounts[{i}].webhookSecrets[{j}]"))?;
            }
        }
        if let Some(piano) = &mut self.piano {
            let old = previous.and_then(|p| p.piano.as_ref());
            restore(&mut piano.api_token, old.map(|o| &o.api_token).into_iter().collect(), "piano.apiToken".into())?;
            restore(
                &mut piano.private_key,
                old.map(|o| &o.private_key).into_iter().collect(),
                "piano.privateKey".into(),
            )?;
            if let Some(jwt) = &mut piano.jwt_secret {
                restore(jwt, old.and_then(|o| o.jwt_secret.as_ref()).into_iter().collect(), "piano.jwtSecret".into())?;
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), SettingsError> {
        non_blank(&self.name, "name", 200)?;
        unique(self.origins.iter().map(Origin::as_str), |i| format!("origins[{i}]"))?;
        unique(self.stripe_accounts.iter().map(|a| a.key.as_str()), |i| format!("stripeAccounts[{i}].key"))?;
        for (i, account) in self.stripe_accounts.iter().enumerate() {
            let at = |f: &str| format!("stripeAccounts[{i}].{f}");
            non_blank(&account.name, &at("name"), 200)?;
            let key = account.secret_key.expose();
            if !(key.starts_with("sk_") || key.starts_with("rk_")) || key.len() < 8 {
                return Err(err(at("secretKey"), "must be a Stripe secret or restricted key (sk_… or rk_…)"));
            }
            for (j, secret) in account.webhook_secrets.iter().enumerate() {
                if !secret.expose().starts_with("whsec_") || secret.expose().len() < 10 {
                    return Err(err(at(&format!("webhookSecrets[{j}]")), "must be a Stripe signing secret (whsec_…)"));
                }
            }
            // Two signing secrets that mask alike could not be told apart when sent back masked.
            for (j, secret) in account.webhook_secrets.iter().enumerate() {
                if account.webhook_secrets[..j].iter().any(|s| s != secret && s.masked() == secret.masked()) {
                    return Err(err(
                        at(&format!("webhookSecrets[{j}]")),
                        "masks like another signing secret of the account (same last four characters)",
                    ));
                }
            }
            if account.webhook_secrets.len() > 5 {
                return Err(err(at("webhookSecrets"), "at most 5 signing secrets (one, or two during a rotation)"));
            }
            if let Some(id) = &account.account_id
                && !id.starts_with("acct_")
            {
                return Err(err(at("accountId"), "must be a Stripe account id (acct_…)"));
            }
        }
        if let Some(piano) = &self.piano {
            if piano.aid.is_empty() || piano.aid.len() > 64 || !piano.aid.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(err("piano.aid", "must be the Piano application id (letters and digits)"));
            }
            non_blank(piano.api_token.expose(), "piano.apiToken", 1024)?;
            non_blank(piano.private_key.expose(), "piano.privateKey", 1024)?;
            if let Some(jwt) = &piano.jwt_secret {
                non_blank(jwt.expose(), "piano.jwtSecret", 1024)?;
            }
            if piano.legacy_webhook_urls.len() > 10 {
                return Err(err("piano.legacyWebhookUrls", "at most 10 legacy endpoints"));
            }
        }
        for (i, offer) in self.winback_offers.iter().enumerate() {
            let at = |f: &str| format!("winbackOffers[{i}].{f}");
            if !offer.price_id.starts_with("price_") {
                return Err(err(at("priceId"), "must be a Stripe price id (price_…)"));
            }
            non_blank(&offer.label, &at("label"), 200)?;
            if offer.applies_to_price_ids.is_empty() {
                return Err(err(at("appliesToPriceIds"), "must list at least one price the offer replaces"));
            }
            if let Some(j) = offer.applies_to_price_ids.iter().position(|p| !p.starts_with("price_")) {
                return Err(err(at(&format!("appliesToPriceIds[{j}]")), "must be a Stripe price id (price_…)"));
            }
        }
        for (i, rule) in self.automations.iter().enumerate() {
            rule.validate().map_err(|(field, message)| err(format!("automations[{i}].{field}"), message))?;
        }
        unique(self.catalogue.iter().map(|c| c.sku.as_str()), |i| format!("catalogue[{i}].sku"))?;
        let mut products = HashSet::new();
        let mut resources = HashSet::new();
        for (i, entry) in self.catalogue.iter().enumerate() {
            non_blank(&entry.sku, &format!("catalogue[{i}].sku"), 100)?;
            non_blank(&entry.name, &format!("catalogue[{i}].name"), 200)?;
            for (j, product) in entry.stripe_product_ids.iter().enumerate() {
                let at = format!("catalogue[{i}].stripeProductIds[{j}]");
                if !product.starts_with("prod_") {
                    return Err(err(at, "must be a Stripe product id (prod_…)"));
                }
                if !products.insert(product.as_str()) {
                    return Err(err(at, "product already mapped to another SKU"));
                }
            }
            for (j, resource) in entry.piano_resource_ids.iter().enumerate() {
                let at = format!("catalogue[{i}].pianoResourceIds[{j}]");
                non_blank(resource, &at, 100)?;
                if !resources.insert(resource.as_str()) {
                    return Err(err(at, "resource already mapped to another SKU"));
                }
            }
        }
        Ok(())
    }
}

fn restore(secret: &mut Secret, stored: Vec<&Secret>, field: String) -> Result<(), SettingsError> {
    if !Secret::looks_masked(secret.expose()) {
        return Ok(());
    }
    let found: Vec<&Secret> = stored.into_iter().filter(|s| s.masked() == secret.expose()).collect();
    match found.split_first() {
        Some((original, others)) if others.iter().all(|s| s == original) => {
            *secret = (*original).clone();
            Ok(())
        }
        // Taking the first would silently swap one signing secret for another (settings stored
        // before `validate` refused look-alikes).
        Some(_) => Err(err(field, "masked value matches several stored secrets; send the secret itself")),
        None => Err(err(field, "masked value matches no stored secret; send the secret itself")),
    }
}

fn non_blank(value: &str, field: &str, max: usize) -> Result<(), SettingsError> {
    if value.trim().is_empty() {
        return Err(err(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(err(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

fn unique<'a>(values: impl Iterator<Item = &'a str>, field: impl Fn(usize) -> String) -> Result<(), SettingsError> {
    let mut seen = HashSet::new();
    for (i, v) in values.enumerate() {
        if !seen.insert(v) {
            return Err(err(field(i), format!("duplicate value {v:?}")));
        }
    }
    Ok(())
}

/// serde_json appends " at line L column C"; the field path already says where.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(webhook_secrets: &[&str]) -> Vec<u8> {
        json!({"name": "P", "stripeAccounts": [{"key": "main", "name": "M", "secretKey": "sk_test_0123456789",
            "webhookSecrets": webhook_secrets}]})
        .to_string()
        .into_bytes()
    }

    // Found by fuzz/ (`settings`): two rotation secrets ending alike came back from a masked PUT as the
    // first one twice, so the new secret was lost and Stripe's signatures under it refused.
    #[test]
    fn signing_secrets_that_mask_alike_are_refused() {
        let error =
            PublicationSettings::parse(&body(&["whsec_old0123456789abcdefgh", "whsec_new0123456789abcdefgh"]), None)
                .unwrap_err();
        assert_eq!(error.field, "stripeAccounts[0].webhookSecrets[1]");
        // Short secrets all mask as `whsec_…`.
        assert!(PublicationSettings::parse(&body(&["whsec_short1", "whsec_short2"]), None).is_err());
        // The same secret twice is no ambiguity.
        assert!(PublicationSettings::parse(&body(&["whsec_short1", "whsec_short1"]), None).is_ok());
    }

    #[test]
    fn masked_put_back_restores_each_signing_secret() {
        let secrets = ["whsec_old0123456789abcdefgh", "whsec_new0123456789abcdefgX"];
        let stored = PublicationSettings::parse(&body(&secrets), None).unwrap();
        let shown = serde_json::to_vec(&stored.masked()).unwrap();
        assert_eq!(PublicationSettings::parse(&shown, Some(&stored)).unwrap(), stored);

        // Settings stored before look-alikes were refused: a masked value naming both is an error.
        let mut legacy = stored.clone();
        legacy.stripe_accounts[0].webhook_secrets[1] = Secret::new("whsec_new0123456789abcdefgh");
        let shown = serde_json::to_vec(&legacy.masked()).unwrap();
        let error = PublicationSettings::parse(&shown, Some(&legacy)).unwrap_err();
        assert_eq!(error.field, "stripeAccounts[0].webhookSecrets[0]");
        assert!(error.message.contains("several stored secrets"), "{error}");
    }
}
