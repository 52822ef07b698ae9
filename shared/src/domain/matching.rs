//! Match keys for possible duplicate customers: two records whose email is the same once mailbox
//! aliases are folded (`Jane.Doe+news@googlemail.com` is `janedoe@gmail.com`), or whose name and
//! billing postcode are the same once case, spacing, punctuation and accents are folded. They only
//! flag records for a person to review: the unique identities (`customer::Identity`) are what merge.

use serde::{Deserialize, Serialize};

use super::customer::Customer;

/// Why two customers may be one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    Email,
    NamePostcode,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Email => "email",
            Reason::NamePostcode => "namePostcode",
        }
    }
}

/// One match key of a customer: customers sharing one are possible duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchKey {
    pub reason: Reason,
    pub value: String,
}

/// Longest key value kept: enough to tell people apart, and far below the store's key limits.
const MAX_KEY_CHARS: usize = 200;

/// The match keys `customer` holds (none for a field it lacks).
pub fn keys_of(customer: &Customer) -> Vec<MatchKey> {
    let mut keys = Vec::new();
    // The Piano profile's email too: a Piano user with no evidence of owning the address another
    // record holds has a record of its own without it (`sync::piano`), and the pair is for review.
    let emails = [customer.email.as_ref().map(|e| e.as_str()), piano_email(customer)];
    for email in emails.into_iter().flatten().filter_map(email_key) {
        let key = MatchKey { reason: Reason::Email, value: email };
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let name = customer.name.as_deref().map(name_key).filter(|n| !n.is_empty());
    let postcode = customer.postcode.as_deref().map(postcode_key).filter(|p| !p.is_empty());
    if let (Some(name), Some(postcode)) = (name, postcode) {
        keys.push(MatchKey { reason: Reason::NamePostcode, value: format!("{name}|{postcode}") });
    }
    keys
}

/// Whether `a` and `b` hold the same match keys because the fields they are made of are equal.
pub fn same_key_fields(a: &Customer, b: &Customer) -> bool {
    a.email == b.email && a.name == b.name && a.postcode == b.postcode && piano_email(a) == piano_email(b)
}

fn piano_email(customer: &Customer) -> Option<&str> {
    customer.piano.profile.as_ref().and_then(|p| p.state.email.as_deref())
}

/// The mailbox an address delivers to: lowercased and trimmed, without a `+tag`; for Gmail (whose
/// `googlemail.com` is the same service) also without dots, which Gmail ignores.
pub fn email_key(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    let local = local.split('+').next().unwrap_or_default();
    let (local, domain) = match domain {
        "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
        _ => (local.to_owned(), domain),
    };
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some(format!("{local}@{domain}").chars().take(MAX_KEY_CHARS).collect())
}

/// A name as words of lowercase letters and digits without accents, one space apart
/// (`  José   O'Brien-Smith ` is `jose o brien smith`).
pub fn name_key(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for c in name.chars() {
        fold(c, &mut folded);
    }
    let words: Vec<&str> = folded.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    words.join(" ").chars().take(MAX_KEY_CHARS).collect()
}

/// A postcode as uppercase letters and digits only (`sw1a 1aa` and `SW1A-1AA` are `SW1A1AA`).
pub fn postcode_key(postcode: &str) -> String {
    postcode.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_uppercase).take(32).collect()
}

/// A character lowercased, with the accents of Latin letters dropped (`É` → `e`, `ß` → `ss`), onto
/// `out`. A table rather than Unicode decomposition: names in the publishers' markets are Latin
/// script, and other scripts are kept as they are (lowercased), which still matches identical
/// spellings. Every customer write folds the name, so nothing is allocated per character.
fn fold(c: char, out: &mut String) {
    for c in c.to_lowercase() {
        let plain: &str = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
            'ď' | 'đ' | 'ð' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
            'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
            'ĥ' | 'ħ' => "h",
            'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
            'ĵ' => "j",
            'ķ' => "k",
            'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
            'ñ' | 'ń' | 'ņ' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
            'œ' => "oe",
            'ŕ' | 'ŗ' | 'ř' => "r",
            'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
            'ß' => "ss",
            'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
            'þ' => "th",
            'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
            'ŵ' => "w",
            'ý' | 'ÿ' | 'ŷ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(plain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{Email, PublicationId};

    #[test]
    fn gmail_addresses_fold_dots_tags_and_googlemail() {
        let key = |e: &str| email_key(e).unwrap();
        assert_eq!(key("Jane.Doe+news@GoogleMail.com "), "janedoe@gmail.com");
        assert_eq!(key("j.a.n.e.d.o.e@gmail.com"), "janedoe@gmail.com");
        assert_eq!(key("janedoe@gmail.com"), "janedoe@gmail.com");
    }

    #[test]
    fn other_addresses_drop_only_the_tag() {
        let key = |e: &str| email_key(e).unwrap();
        assert_eq!(key("Jane.Doe+crm@Example.com"), "jane.doe@example.com");
        assert_ne!(key("jane.doe@example.com"), key("janedoe@example.com"), "dots matter outside Gmail");
        assert_ne!(key("jane@example.com"), key("jane@example.org"));
        assert_eq!(email_key("+only@example.com"), None, "nothing left of the mailbox");
        assert_eq!(email_key("no-at-sign"), None);
    }

    #[test]
    fn names_fold_case_spacing_punctuation_and_accents() {
        assert_eq!(name_key("  José   O'Brien-Smith "), "jose o brien smith");
        assert_eq!(name_key("JOSE O BRIEN SMITH"), "jose o brien smith");
        assert_eq!(name_key("Zoë Æsir-Straße"), "zoe aesir strasse");
        assert_eq!(name_key("Łukasz Żółć"), "lukasz zolc");
        assert_eq!(name_key("Дмитрий"), "дмитрий", "other scripts are kept, lowercased");
        assert_ne!(name_key("Jane Doe"), name_key("Jane Dole"));
        assert_eq!(name_key(" .,- "), "");
    }

    #[test]
    fn postcodes_fold_case_and_separators() {
        assert_eq!(postcode_key("sw1a 1aa"), "SW1A1AA");
        assert_eq!(postcode_key(" SW1A-1AA "), "SW1A1AA");
        assert_eq!(postcode_key("75008"), "75008");
    }

    #[test]
    fn a_customer_has_a_name_key_only_with_both_name_and_postcode() {
        let mut c = Customer::new(PublicationId::parse("demo").unwrap(), 0);
        c.email = Some(Email::parse("Jane.Doe@gmail.com").unwrap());
        c.name = Some("Jane Doe".into());
        assert_eq!(keys_of(&c), vec![MatchKey { reason: Reason::Email, value: "janedoe@gmail.com".into() }]);
        c.postcode = Some("sw1a 1aa".into());
        assert_eq!(
            keys_of(&c)[1],
            MatchKey { reason: Reason::NamePostcode, value: "jane doe|SW1A1AA".into() },
            "name and postcode together"
        );
        c.name = Some("  ".into());
        assert_eq!(keys_of(&c).len(), 1, "a blank name is no key");
    }

    #[test]
    fn a_piano_email_the_record_does_not_hold_is_a_key_too() {
        use crate::domain::billing::Tracked;
        use crate::domain::piano::PianoProfile;
        let mut c = Customer::new(PublicationId::parse("demo").unwrap(), 0);
        let profile = |email: &str| Tracked {
            as_of: 1,
            state: PianoProfile { email: Some(email.into()), name: None, disabled: false },
        };
        c.piano.profile = Some(profile("Jane.Doe+news@gmail.com"));
        assert_eq!(keys_of(&c), vec![MatchKey { reason: Reason::Email, value: "janedoe@gmail.com".into() }]);
        c.email = Some(Email::parse("janedoe@gmail.com").unwrap());
        assert_eq!(keys_of(&c).len(), 1, "the same mailbox once");
        let before = c.clone();
        c.piano.profile = Some(profile("other@example.com"));
        assert!(!same_key_fields(&before, &c));
        assert_eq!(keys_of(&c).len(), 2);
    }

    #[test]
    fn only_email_name_and_postcode_make_the_keys() {
        let mut a = Customer::new(PublicationId::parse("demo").unwrap(), 0);
        a.email = Some(Email::parse("jane@example.com").unwrap());
        a.name = Some("Jane Doe".into());
        a.postcode = Some("SW1A 1AA".into());
        let mut b = a.clone();
        b.updated_at = 99;
        b.lifecycle_stage = Some("Active Customer".into());
        assert!(same_key_fields(&a, &b), "other fields leave the keys alone");
        for change in [
            |c: &mut Customer| c.email = Some(Email::parse("jane@example.org").unwrap()),
            |c: &mut Customer| c.name = Some("Jane Dole".into()),
            |c: &mut Customer| c.postcode = None,
        ] {
            let mut changed = a.clone();
            change(&mut changed);
            assert!(!same_key_fields(&a, &changed));
            assert_ne!(keys_of(&a), keys_of(&changed));
        }
    }
}
