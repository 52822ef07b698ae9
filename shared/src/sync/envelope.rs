//! The events queue's message: a one-line JSON header (provider, publication, account, receipt time)
//! followed by the provider's raw body, unescaped, so a message holds events up to SQS's 1 MiB.

use serde::{Deserialize, Serialize};

use super::SyncError;
use crate::domain::ids::{AccountKey, PublicationId};
use crate::queue::MAX_MESSAGE_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Stripe,
    Piano,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub provider: Provider,
    pub publication: PublicationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountKey>,
    /// Epoch seconds.
    pub received_at: i64,
    /// The same instant in microseconds, for Piano: its webhooks carry no time but arrive one at a time
    /// and in order, so receipt order is event order, also within a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at_us: Option<i64>,
    /// Piano events carry no id: the proxy names each by a hash of its `data`, which a redelivery repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// A Stripe event's type, as ingestion read it from the checked body: the worker then reads the
    /// event with its object in one pass (`Event::parse_as`). Messages without it are read in two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

/// Room left for the header in a message.
const HEADER_ROOM: usize = 1024;

/// The largest provider body a message can carry.
pub const MAX_BODY_BYTES: usize = MAX_MESSAGE_BYTES - HEADER_ROOM;

pub fn encode(header: &Header, body: &str) -> String {
    // Serialising a struct of strings and integers cannot fail.
    let line = serde_json::to_string(header).expect("header serialises");
    let mut out = String::with_capacity(line.len() + 1 + body.len());
    out.push_str(&line);
    out.push('\n');
    out.push_str(body);
    out
}

pub fn decode(message: &str) -> Result<(Header, &str), SyncError> {
    let (line, body) = message.split_once('\n').ok_or_else(|| SyncError::Message("no header line".into()))?;
    let header = serde_json::from_str(line).map_err(|e| SyncError::Message(format!("header: {e}")))?;
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bodies_with_newlines_and_quotes() {
        let header = Header {
            provider: Provider::Stripe,
            publication: PublicationId::parse("demo").unwrap(),
            account: Some(AccountKey::parse("main").unwrap()),
            received_at: 5,
            received_at_us: None,
            event_id: None,
            event_type: Some("invoice.paid".into()),
        };
        let body = "{\n  \"id\": \"evt_1\",\n  \"name\": \"a \\\"quoted\\\" name\"\n}";
        let message = encode(&header, body);
        assert_eq!(decode(&message).unwrap(), (header, body));
        assert!(decode("no header").is_err());
        assert!(decode("{\"provider\":\"fax\"}\n{}").is_err());
    }
}
