//! Money: an integer amount in the currency's minor unit plus an ISO 4217 code. Never floats.
//! Totals keep one figure per currency; currencies are never mixed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::ParseError;

/// A lowercase ISO 4217 code, as Stripe writes it (`usd`, `eur`, `jpy`). Three letters held in place:
/// every price, invoice and total carries one, and copying it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        match value.trim().as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_alphabetic) => {
                Ok(Self([a, b, c].map(|l| l.to_ascii_lowercase())))
            }
            _ => Err(ParseError(format!("{value:?} is not an ISO 4217 currency code"))),
        }
    }

    pub fn as_str(&self) -> &str {
        // Three ASCII letters, as `parse` made sure.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Digits after the decimal point in the currency's major unit (Stripe's zero- and three-decimal lists).
    pub fn exponent(&self) -> u32 {
        const ZERO: [&str; 16] = [
            "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof",
            "xpf",
        ];
        const THREE: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];
        if ZERO.contains(&self.as_str()) {
            0
        } else if THREE.contains(&self.as_str()) {
            3
        } else {
            2
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Code;
        impl serde::de::Visitor<'_> for Code {
            type Value = Currency;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 4217 currency code")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Currency, E> {
                Currency::parse(v).map_err(E::custom)
            }
        }
        // Read in place: no string is allocated per code.
        d.deserialize_str(Code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// In the currency's minor unit (cents for usd, yen for jpy, fils for bhd).
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// An amount written in major units (`"9.99"`, `"1000"`, `"1.5"`), as providers other than Stripe
    /// send them, in minor units: exact, no floats. More decimals than the currency has, a sign, an
    /// exponent or an overflow is `None`.
    pub fn from_major(text: &str, currency: Currency) -> Option<Self> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let exp = currency.exponent() as usize;
        if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
            return None;
        }
        // Trailing zeros beyond the currency's decimals are harmless ("9.990").
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > exp {
            return None;
        }
        let minor = format!("{whole}{fraction:0<exp$}");
        let amount = if minor.is_empty() { 0 } else { minor.parse::<i64>().ok()? };
        Some(Self { amount, currency })
    }

    /// `15.00 USD`, `1500 JPY`, `1.500 BHD`: for messages and notifications.
    pub fn display(&self) -> String {
        let exp = self.currency.exponent();
        let code = self.currency.as_str().to_ascii_uppercase();
        if exp == 0 {
            return format!("{} {code}", self.amount);
        }
        let unit = 10i64.pow(exp);
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        let unit = unit.unsigned_abs();
        format!("{sign}{}.{:0width$} {code}", abs / unit, abs % unit, width = exp as usize)
    }
}

/// Amounts per currency, serialised as `[{"currency": "usd", "amount": 4500}]` in currency order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals(BTreeMap<Currency, i64>);

impl Totals {
    pub fn add(&mut self, currency: &Currency, amount: i64) {
        let entry = self.0.entry(*currency).or_default();
        *entry = entry.saturating_add(amount);
    }

    /// Adds every currency's amount of `other`.
    pub fn add_all(&mut self, other: &Totals) {
        for (currency, amount) in other.iter() {
            self.add(currency, amount);
        }
    }

    pub fn get(&self, currency: &Currency) -> i64 {
        self.0.get(currency).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Currency, i64)> {
        self.0.iter().map(|(c, a)| (c, *a))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Totals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(currency, amount)| Money { amount: *amount, currency: *currency }))
    }
}

impl<'de> Deserialize<'de> for Totals {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut totals = Totals::default();
        for money in Vec::<Money>::deserialize(d)? {
            totals.add(&money.currency, money.amount);
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(amount: i64, currency: &str) -> Money {
        Money::new(amount, Currency::parse(currency).unwrap())
    }

    #[test]
    fn major_units_parse_exactly() {
        let cur = |c: &str| Currency::parse(c).unwrap();
        let minor = |t: &str, c: &str| Money::from_major(t, cur(c)).map(|m| m.amount);
        assert_eq!(minor("9.99", "usd"), Some(999));
        assert_eq!(minor("10", "usd"), Some(1000));
        assert_eq!(minor("1.5", "eur"), Some(150));
        assert_eq!(minor(".5", "eur"), Some(50));
        assert_eq!(minor("9.990", "usd"), Some(999));
        assert_eq!(minor("1500", "jpy"), Some(1500));
        assert_eq!(minor("1500.0", "jpy"), Some(1500));
        assert_eq!(minor("1.234", "kwd"), Some(1234));
        assert_eq!(minor("0.1", "jpy"), None);
        assert_eq!(minor("9.999", "usd"), None);
        for bad in ["", ".", "-1", "1e3", "1,5", "abc", "99999999999999999999"] {
            assert_eq!(minor(bad, "usd"), None, "{bad}");
        }
    }

    #[test]
    fn display_honours_zero_and_three_decimal_currencies() {
        assert_eq!(money(1500, "usd").display(), "15.00 USD");
        assert_eq!(money(-5, "eur").display(), "-0.05 EUR");
        assert_eq!(money(1500, "JPY").display(), "1500 JPY");
        assert_eq!(money(1500, "bhd").display(), "1.500 BHD");
    }

    #[test]
    fn currencies_parse() {
        assert!(Currency::parse("us").is_err());
        assert!(Currency::parse("u$d").is_err());
        assert_eq!(Currency::parse(" EUR ").unwrap().as_str(), "eur");
        assert!(Currency::parse("éur").is_err(), "letters outside ASCII");
        assert!(Currency::parse("euro").is_err());
    }

    #[test]
    fn currencies_read_and_write_as_their_code() {
        let read: Money = serde_json::from_str(r#"{"amount": 5, "currency": "G\u0042P"}"#).unwrap();
        assert_eq!(read, money(5, "gbp"), "escaped letters too");
        assert_eq!(serde_json::to_string(&read).unwrap(), r#"{"amount":5,"currency":"gbp"}"#);
        let bad = serde_json::from_str::<Money>(r#"{"amount": 5, "currency": "pounds"}"#).unwrap_err();
        assert!(bad.to_string().contains("not an ISO 4217 currency code"), "{bad}");
        assert!(serde_json::from_str::<Money>(r#"{"amount": 5, "currency": 826}"#).is_err());
    }

    #[test]
    fn totals_never_mix_currencies() {
        let mut t = Totals::default();
        t.add(&Currency::parse("usd").unwrap(), 100);
        t.add(&Currency::parse("eur").unwrap(), 50);
        t.add(&Currency::parse("usd").unwrap(), -30);
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!([
                {"amount": 50, "currency": "eur"}, {"amount": 70, "currency": "usd"}
            ])
        );
    }
}
