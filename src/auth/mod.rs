//! Who may do what: the `[auth]` settings ([`config`]) and the bearer tokens in force, with
//! the middleware that checks a request's role ([`tokens`]).

pub mod config;
pub mod tokens;

pub use config::{AuthConfig, MIN_TOKEN_LEN, Role, TokenConfig};
pub use tokens::{Keys, Principal};
