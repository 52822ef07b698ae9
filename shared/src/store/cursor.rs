//! Opaque pagination cursors: the keys of the last item a page returned, as URL-safe base64 JSON.
//! A cursor is input from outside, so decoding validates it and binds it to the queried partition.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Index, Item, Key, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    #[serde(rename = "k")]
    pub key: Key,
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub gsi1: Option<Key>,
}

const MAX_ENCODED_LEN: usize = 2048;

impl Cursor {
    pub(crate) fn after_item(item: &Item, index: Index) -> Self {
        Cursor {
            key: item.key.clone(),
            gsi1: match index {
                Index::Primary => None,
                Index::Gsi1 => item.gsi1.clone(),
            },
        }
    }

    pub fn encode(&self) -> String {
        // Serializing two string pairs cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(text: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::Invalid("malformed cursor".into());
        if text.len() > MAX_ENCODED_LEN {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
    }

    /// The partition key the cursor belongs to in `index`; a cursor must not move a query elsewhere.
    pub(crate) fn check_partition(&self, index: Index, pk: &str) -> Result<(), StoreError> {
        let partition = match index {
            Index::Primary => Some(&self.key.pk),
            Index::Gsi1 => self.gsi1.as_ref().map(|g| &g.pk),
        };
        if partition.map(String::as_str) == Some(pk) {
            Ok(())
        } else {
            Err(StoreError::Invalid("cursor does not belong to this listing".into()))
        }
    }
}
