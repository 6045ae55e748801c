//! Value codec: one format-version byte, then JSON. JSON keeps export/import and debugging
//! simple; the version byte lets a later release migrate old records on read.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{StoreError, Tree};

/// The version byte written in front of every value.
pub const FORMAT_VERSION: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT_VERSION);
    // Serialising our own plain data structs into a Vec cannot fail (no maps with non-string
    // keys, no I/O); an error here would be a programming bug caught by every test.
    if let Err(e) = serde_json::to_writer(&mut out, value) {
        unreachable!("serialising a store record failed: {e}");
    }
    out
}

pub fn decode<T: DeserializeOwned>(tree: Tree, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => {
            serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
                tree: tree.name(),
                message: e.to_string(),
            })
        }
        Some((v, _)) => Err(StoreError::Corrupt {
            tree: tree.name(),
            message: format!("unknown format version {v}"),
        }),
        None => Err(StoreError::Corrupt {
            tree: tree.name(),
            message: "empty value".into(),
        }),
    }
}
