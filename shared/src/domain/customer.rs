//! The CRM customer: one record per person per publication, holding the provider ids that identify them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{AccountKey, CustomerId, Email, PublicationId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: CustomerId,
    pub publication_id: PublicationId,
    #[serde(default)]
    pub email: Option<Email>,
    #[serde(default)]
    pub name: Option<String>,
    /// Stripe customer id per Stripe account of the publication.
    #[serde(default)]
    pub stripe_customer_ids: BTreeMap<AccountKey, String>,
    #[serde(default)]
    pub piano_uid: Option<String>,
    /// Epoch seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Customer {
    pub fn new(publication_id: PublicationId, now: i64) -> Self {
        Self {
            id: CustomerId::generate(),
            publication_id,
            email: None,
            name: None,
            stripe_customer_ids: BTreeMap::new(),
            piano_uid: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Every identity this record claims, each unique within the publication.
    pub fn identities(&self) -> Vec<Identity> {
        let mut out = Vec::new();
        if let Some(email) = &self.email {
            out.push(Identity::Email(email.clone()));
        }
        for (account, id) in &self.stripe_customer_ids {
            out.push(Identity::Stripe(account.clone(), id.clone()));
        }
        if let Some(uid) = &self.piano_uid {
            out.push(Identity::Piano(uid.clone()));
        }
        out
    }
}

/// A way to recognise a person; at most one customer of a publication holds each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Email(Email),
    Stripe(AccountKey, String),
    Piano(String),
}
