//! Who may do what: the `[auth]` settings ([`config`]) and the bearer tokens in force, with
//! the middleware that checks a request's role ([`tokens`]); the console's local accounts
//! ([`accounts`]: argon2id hashes, changed only through the engine), their admin routes
//! ([`api`]) and the `itsmd user` client ([`cli`]).

pub mod accounts;
pub mod api;
pub mod cli;
pub mod config;
pub mod tokens;

pub use config::{AuthConfig, MIN_TOKEN_LEN, Role, TokenConfig};
pub use tokens::{Keys, Principal};
