//! The `[auth]` section: bearer tokens and their roles. Token values are secrets: they are
//! never printed (Debug redacts them) and never appear in errors.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a token may do. Roles are levels: each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Send events: alerts, PagerDuty events.
    Ingest,
    /// Read and work tickets (and send events).
    Agent,
    /// Everything, including administration (reload, outbox, export).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// With no tokens the API is open, which is allowed only on a loopback address.
    pub tokens: Vec<TokenConfig>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who uses it: shown in logs and as the actor in ticket history, never the secret.
    pub name: String,
    pub role: Role,
    /// The token itself (at least 16 characters)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// …or a file holding it (surrounding whitespace ignored), read at start and on reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Problems with the token list (file contents are checked when loaded).
pub fn problems(auth: &AuthConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, t) in auth.tokens.iter().enumerate() {
        let at = format!("auth.tokens[{i}]");
        if t.name.trim().is_empty() {
            out.push(format!("{at}.name must not be empty"));
        } else if !seen.insert(t.name.as_str()) {
            out.push(format!("{at}.name `{}` is used twice", t.name));
        }
        match (&t.token, &t.token_file) {
            (Some(_), Some(_)) => out.push(format!("{at}: set token or token_file, not both")),
            (None, None) => out.push(format!("{at}: set token or token_file")),
            (Some(v), None) if v.trim().len() < MIN_TOKEN_LEN => out.push(format!(
                "{at}.token is shorter than {MIN_TOKEN_LEN} characters"
            )),
            _ => {}
        }
    }
    out
}
