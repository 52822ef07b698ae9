//! The CRM customer: one record per person per publication, holding the provider ids that identify them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::billing::PaymentStatus;
use super::billing::StripeBilling;
use super::ids::{AccountKey, CustomerId, Email, PublicationId};
use super::money::{Currency, Totals};
use super::piano::{PianoSide, combined_status};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: CustomerId,
    pub publication_id: PublicationId,
    #[serde(default)]
    pub email: Option<Email>,
    #[serde(default)]
    pub name: Option<String>,
    /// Billing postcode, from the newest Stripe customer that has one (possible duplicates compare
    /// name and postcode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// The first Stripe customer id seen per Stripe account of the publication. A person with several
    /// Stripe customers in one account has the others in `stripe.profiles`; all of them identify this record.
    #[serde(default)]
    pub stripe_customer_ids: BTreeMap<AccountKey, String>,
    #[serde(default)]
    pub piano_uid: Option<String>,
    /// Epoch seconds.
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub stripe: StripeBilling,
    #[serde(default)]
    pub piano: PianoSide,
    /// Currencies the customer has ever had MRR in: MRR from zero in one of them is a reactivation.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub mrr_currencies: BTreeSet<Currency>,
    /// Lifecycle stage set by automation rules (`setStatus`), e.g. "Active Customer".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_stage: Option<String>,
    /// Provider time (epoch seconds) of the event whose rule set `lifecycle_stage`: a rule run for an
    /// older event never replaces the stage a newer one set, whatever order the events arrive in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_stage_at: Option<i64>,
}

impl Customer {
    pub fn new(publication_id: PublicationId, now: i64) -> Self {
        Self {
            id: CustomerId::generate(),
            publication_id,
            email: None,
            name: None,
            postcode: None,
            stripe_customer_ids: BTreeMap::new(),
            piano_uid: None,
            created_at: now,
            updated_at: now,
            stripe: StripeBilling::default(),
            piano: PianoSide::default(),
            mrr_currencies: BTreeSet::new(),
            lifecycle_stage: None,
            lifecycle_stage_at: None,
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
        for (id, profile) in &self.stripe.profiles {
            let identity = Identity::Stripe(profile.state.account.clone(), id.clone());
            if !out.contains(&identity) {
                out.push(identity);
            }
        }
        if let Some(uid) = &self.piano_uid {
            out.push(Identity::Piano(uid.clone()));
        }
        out
    }

    /// Whether this record claims `identity`: `identities().contains`, without building them (every
    /// event of a known Stripe customer asks).
    pub fn holds(&self, identity: &Identity) -> bool {
        match identity {
            Identity::Email(email) => self.email.as_ref() == Some(email),
            Identity::Stripe(account, id) => {
                self.stripe_customer_ids.get(account) == Some(id)
                    || self.stripe.profiles.get(id).is_some_and(|p| &p.state.account == account)
            }
            Identity::Piano(uid) => self.piano_uid.as_ref() == Some(uid),
        }
    }

    /// Both providers' payment status as one.
    pub fn payment_status(&self) -> PaymentStatus {
        combined_status(self.stripe.payment_status(), self.piano.payment_status())
    }

    /// Both providers' lifetime value, per currency.
    pub fn lifetime_value(&self) -> Totals {
        let mut totals = self.stripe.lifetime_value();
        totals.add_all(&self.piano.lifetime_value());
        totals
    }

    /// Links a Stripe customer to this record (the first one per account becomes the primary id).
    pub fn link_stripe(&mut self, account: &AccountKey, stripe_id: &str) {
        self.stripe_customer_ids.entry(account.clone()).or_insert_with(|| stripe_id.to_owned());
    }

    /// Email, name and postcode follow the newest provider profile that has them (Stripe's customers,
    /// Piano's user); a record without one keeps its own.
    pub fn refresh_contact(&mut self) {
        // (time, tie-break, email, name, postcode) per profile; a Piano profile sorts after a Stripe one
        // of the same second.
        type Contact<'a> = (i64, String, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let mut live: Vec<Contact<'_>> = self
            .stripe
            .profiles
            .values()
            .filter(|p| !p.state.deleted)
            .map(|p| {
                let s = &p.state;
                (p.as_of, format!("0{}", s.customer_id), s.email.as_deref(), s.name.as_deref(), s.postcode.as_deref())
            })
            .collect();
        if let Some(p) = self.piano.profile.as_ref().filter(|p| !p.state.disabled) {
            // Piano's times are microseconds (see `domain::piano`).
            live.push((p.as_of / 1_000_000, "1".into(), p.state.email.as_deref(), p.state.name.as_deref(), None));
        }
        live.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        if let Some(email) = live.iter().rev().find_map(|p| p.2.and_then(|e| Email::parse(e).ok())) {
            self.email = Some(email);
        }
        if let Some(name) = live.iter().rev().find_map(|p| p.3.filter(|n| !n.trim().is_empty())) {
            self.name = Some(name.to_owned());
        }
        if let Some(postcode) = live.iter().rev().find_map(|p| p.4) {
            self.postcode = Some(postcode.to_owned());
        }
    }
}

/// A way to recognise a person; at most one customer of a publication holds each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Email(Email),
    Stripe(AccountKey, String),
    Piano(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::{ProfileState, Tracked};

    #[test]
    fn holds_exactly_the_identities_it_lists() {
        let account = |k: &str| AccountKey::parse(k).expect("a key");
        let mut customer = Customer::new(PublicationId::parse("daily").expect("an id"), 1);
        customer.email = Some(Email::parse("ada@example.com").expect("an email"));
        customer.link_stripe(&account("main"), "cus_1");
        let profile = |acct: &str, id: &str| ProfileState {
            account: account(acct),
            customer_id: id.into(),
            email: None,
            name: None,
            postcode: None,
            created: None,
            deleted: false,
        };
        customer.stripe.profiles.insert("cus_2".into(), Tracked { as_of: 1, state: profile("eu", "cus_2") });
        customer.piano_uid = Some("uid_1".into());
        let listed = customer.identities();
        assert_eq!(listed.len(), 4);
        let others = [
            Identity::Email(Email::parse("bob@example.com").expect("an email")),
            Identity::Stripe(account("eu"), "cus_1".into()),
            Identity::Stripe(account("main"), "cus_2".into()),
            Identity::Stripe(account("main"), "cus_3".into()),
            Identity::Piano("uid_2".into()),
        ];
        for identity in listed.iter().chain(&others) {
            assert_eq!(customer.holds(identity), listed.contains(identity), "{identity:?}");
        }
    }
}
