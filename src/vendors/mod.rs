//! Partner vendors: signed webhooks out, signed callbacks in.
//!
//! The pure parts: webhook secrets and where they come from ([`secret`]), Standard Webhooks
//! signing and verification ([`signing`]), the retry schedule ([`retry`]), the payload
//! ([`payload`]), the outbox row model ([`outbox`]) and the `[vendors]` settings
//! ([`config`]). They must not log or print secret values, read the wall clock (every instant
//! is a parameter), or send anything. On them build the engine's vendor step, which writes
//! outbox rows in the same commit as the change they describe and applies delivery results
//! and callbacks ([`step`], [`callbacks`]); the dispatcher ([`dispatch`]), the one part that
//! sends: it reads due rows and hands every result back to the engine; the callback and
//! outbox routes ([`api`], [`api_outbox`]) and the `itsmd outbox` client ([`cli`]).

pub mod api;
pub mod api_outbox;
pub(crate) mod callbacks;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod outbox;
pub mod payload;
pub mod registry;
pub mod retry;
pub mod secret;
pub mod signing;
pub(crate) mod step;

#[cfg(test)]
mod step_tests;

pub use config::{StatusTarget, VendorConfig};
pub use outbox::{
    AttemptResult, Channel, Delivery, MAIL_DESTINATION, OutboxRow, VendorCallback, VendorState,
};
pub use retry::{Jitter, Next, Random, RetrySchedule, parse_retry_after};
pub use secret::{Secret, SecretError, SecretSource, SecretText};
pub use signing::{ReceivedHeaders, SignedHeaders, VerifyError, sign, verify};
