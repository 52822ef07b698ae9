//! `crm serve --demo`: a ready publication `demo` with one Stripe account, its webhook signing secret
//! and a publication key, so a newcomer can replay the sample story and see customers appear.
//! Created once; later runs reuse it (the plain key is kept in the data directory, the store holds
//! only its hash).

use std::path::Path;

use anyhow::Context;
use serde_json::json;
use shared::api::AppState;
use shared::domain::ids::PublicationId;
use shared::domain::settings::PublicationSettings;
use shared::store::repo::keys;
use shared::store::repo::publications::{self, StoredSettings};

pub const PUBLICATION: &str = "demo";
const KEY_FILE: &str = "demo-publication-key";

pub struct Demo {
    pub webhook_secret: String,
    pub publication_key: String,
}

fn random_token(prefix: &str) -> String {
    let (key, _) = shared::http::auth::new_publication_key();
    key.replacen(shared::http::auth::KEY_PREFIX, prefix, 1)
}

pub async fn ensure(state: &AppState, data_dir: &Path) -> anyhow::Result<Demo> {
    let store = state.store.as_ref();
    let id = PublicationId::parse(PUBLICATION)?;
    let existing = publications::get(store, &id).await?;
    let settings = match existing {
        Some(found) => found.value.settings,
        None => {
            let body = json!({
                "name": "Demo Daily",
                "origins": ["http://localhost:3000"],
                "stripeAccounts": [{
                    "key": "main",
                    "name": "Demo Media Ltd",
                    // Not a real key: Stripe refuses it, and the sync applies events without its reads.
                    "secretKey": "sk_test_demo_not_a_real_key_0000",
                    "webhookSecrets": [random_token("whsec_demo_").replace('-', "_")]
                }]
            });
            let settings = PublicationSettings::parse(body.to_string().as_bytes(), None)?;
            let stored =
                StoredSettings { publication_id: id.clone(), settings, updated_at: shared::store::now_epoch() };
            publications::put(store, &stored, None).await.context("creating the demo publication")?;
            stored.settings
        }
    };
    let webhook_secret = settings
        .stripe_accounts
        .first()
        .and_then(|a| a.webhook_secrets.last())
        .map(|s| s.expose().to_owned())
        .context("the demo publication has no Stripe webhook secret")?;
    let key_path = data_dir.join(KEY_FILE);
    let publication_key = match std::fs::read_to_string(&key_path) {
        Ok(key) if keys::get(store, &keys::hash_hex(key.trim())).await?.is_some() => key.trim().to_owned(),
        _ => {
            let (key, _) = shared::http::auth::issue_publication_key(store, &id, None).await?;
            // A key file left from an older data directory would fail to be replaced by create_new.
            let _ = std::fs::remove_file(&key_path);
            crate::serve::write_private(&key_path, &key).with_context(|| format!("writing {}", key_path.display()))?;
            key
        }
    };
    Ok(Demo { webhook_secret, publication_key })
}
