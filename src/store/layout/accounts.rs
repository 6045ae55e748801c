//! Console accounts: one record per user name in `Tree::Accounts`. Only the engine writes
//! them (`auth::accounts`); the console and the admin routes read them.

use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::store::{Store, StoreError, Tree, decode};

/// A local account of the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
    /// The argon2id hash in PHC string form; never shown.
    pub hash: String,
    pub disabled: bool,
    pub changed_at: jiff::Timestamp,
    /// The user's saved searches of the console: name → the ticket list API's query string.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub searches: std::collections::BTreeMap<String, String>,
}

pub fn key(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// The account called `name`, if any.
pub fn get(store: &dyn Store, name: &str) -> Result<Option<Account>, StoreError> {
    store
        .get(Tree::Accounts, &key(name))?
        .map(|b| decode(Tree::Accounts, &b))
        .transpose()
}

/// Every account, by name.
pub fn list(store: &dyn Store) -> Result<Vec<Account>, StoreError> {
    let mut out = Vec::new();
    for item in store.scan_prefix(Tree::Accounts, b"") {
        let (_, value) = item?;
        out.push(decode(Tree::Accounts, &value)?);
    }
    Ok(out)
}
