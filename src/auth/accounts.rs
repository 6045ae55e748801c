//! Local accounts of the console: the commands that change them (journaled like every other
//! input, applied by the engine), argon2id hashing and verification. Passwords are hashed by
//! the admin route before the command is submitted, so neither the journal nor a log line
//! ever holds one; the journal holds the hash, as the account record does.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::engine::Refusal;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::store::layout::Outcome;
use crate::store::layout::accounts::{Account, key};
use crate::store::{StoreError, Tree, decode, encode};

/// The longest user name and password taken.
pub const MAX_NAME: usize = 64;
pub const MAX_PASSWORD: usize = 1024;
pub const MIN_PASSWORD: usize = 8;

/// An administrator's change to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCommand {
    /// Who asked (the admin token's name).
    pub by: String,
    pub action: AccountAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AccountAction {
    Add {
        name: String,
        role: Role,
        hash: String,
    },
    Password {
        name: String,
        hash: String,
    },
    Disable {
        name: String,
    },
    /// A console user saves (or replaces) a search of theirs: the list API's query string,
    /// checked by the console with the API's own checks before it is submitted.
    SaveSearch {
        name: String,
        search: String,
        query: String,
    },
    /// A console user deletes a saved search of theirs.
    DeleteSearch {
        name: String,
        search: String,
    },
}

impl AccountAction {
    /// Short name for logs.
    pub fn verb(&self) -> &'static str {
        match self {
            AccountAction::Add { .. } => "add",
            AccountAction::Password { .. } => "passwd",
            AccountAction::Disable { .. } => "disable",
            AccountAction::SaveSearch { .. } => "save_search",
            AccountAction::DeleteSearch { .. } => "delete_search",
        }
    }
}

/// Problems with a user name: 1..=64 of `a-z0-9._-`, starting with a letter or digit.
pub fn name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    (!ok).then(|| {
        format!(
            "user name `{}` must be 1 to {MAX_NAME} of a-z, 0-9, `.`, `_`, `-`, starting with a \
             letter or digit",
            name.escape_default()
        )
    })
}

/// Problems with a new password.
pub fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    (!(MIN_PASSWORD..=MAX_PASSWORD).contains(&n))
        .then(|| format!("a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"))
}

/// The argon2id hash (PHC string) of `password` with a fresh salt. Slow by design: call it
/// on a blocking thread.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("cannot get random bytes for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("cannot encode a salt: {e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC `hash`. Slow by design: call it on a blocking thread.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the user does not exist, so that a sign-in with an unknown
/// name takes as long as one with a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("not-a-password-of-anyone").unwrap_or_default())
}

impl Engine {
    /// Applies an account command; refuses adding an existing name or changing a missing one.
    pub(crate) fn account(
        &self,
        txn: &mut Txn<'_>,
        c: &AccountCommand,
    ) -> Result<Result<crate::alerts::step::Handled, Refusal>, StoreError> {
        let name = match &c.action {
            AccountAction::Add { name, .. }
            | AccountAction::Password { name, .. }
            | AccountAction::Disable { name }
            | AccountAction::SaveSearch { name, .. }
            | AccountAction::DeleteSearch { name, .. } => name,
        };
        let existing: Option<Account> = txn
            .get(Tree::Accounts, &key(name))?
            .map(|b| decode(Tree::Accounts, &b))
            .transpose()?;
        let now = self.now();
        let account = match (&c.action, existing) {
            (AccountAction::Add { .. }, Some(_)) => {
                return Ok(Err(Refusal::Conflict(format!(
                    "user `{name}` exists already; change its password with `itsmd user passwd`"
                ))));
            }
            (AccountAction::Add { name, role, hash }, None) => Account {
                name: name.clone(),
                role: *role,
                hash: hash.clone(),
                disabled: false,
                changed_at: now,
                searches: Default::default(),
            },
            (_, None) => {
                return Ok(Err(Refusal::Conflict(format!(
                    "user `{name}` does not exist"
                ))));
            }
            (AccountAction::Password { hash, .. }, Some(a)) => Account {
                hash: hash.clone(),
                disabled: false,
                changed_at: now,
                ..a
            },
            (AccountAction::Disable { .. }, Some(a)) => Account {
                disabled: true,
                changed_at: now,
                ..a
            },
            (AccountAction::SaveSearch { search, query, .. }, Some(mut a)) => {
                a.searches.insert(search.clone(), query.clone());
                a
            }
            (AccountAction::DeleteSearch { search, .. }, Some(mut a)) => {
                if a.searches.remove(search).is_none() {
                    return Ok(Err(Refusal::Conflict(format!(
                        "user `{name}` has no saved search `{search}`"
                    ))));
                }
                a
            }
        };
        txn.put(Tree::Accounts, key(name), encode(&account));
        tracing::info!(user = %name, by = %c.by, action = c.action.verb(), "Account changed.");
        Ok(Ok(crate::alerts::step::Handled {
            ticket: None,
            outcome: Outcome::Recorded,
            rule_failures: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_names_are_checked() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("x", "not a hash"));
        assert!(name_problem("alice").is_none());
        assert!(name_problem("Alice").is_some());
        assert!(name_problem("").is_some());
        assert!(name_problem("-x").is_some());
        assert!(password_problem("short").is_some());
    }
}
