//! Vendor webhooks going out (and the signatures of their callbacks coming in).
//!
//! Owns the pure parts: webhook secrets and where they come from, Standard Webhooks signing
//! and verification, and the retry schedule. It must not log or print secret values, read
//! the wall clock (every instant is a parameter), or send anything: the outbox dispatcher
//! (reqwest, outbox rows, dead letters) builds on these.

pub mod retry;
pub mod secret;
pub mod signing;

pub use retry::{Jitter, Next, Random, RetrySchedule, parse_retry_after};
pub use secret::{Secret, SecretError, SecretSource, SecretText};
pub use signing::{ReceivedHeaders, SignedHeaders, VerifyError, sign, verify};
