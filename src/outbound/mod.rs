//! Vendor webhooks going out (and the signatures of their callbacks coming in).
//!
//! The pure parts: webhook secrets and where they come from, Standard Webhooks signing and
//! verification, the retry schedule, the payload, and the outbox's key layouts. They must not
//! log or print secret values, read the wall clock (every instant is a parameter), or send
//! anything. On them builds the dispatcher (`dispatch`), the one part that sends: it reads due
//! rows and hands every result back to the engine, the only writer.

pub mod dispatch;
pub mod outbox;
pub mod payload;
pub mod retry;
pub mod secret;
pub mod signing;
pub mod vendors;

pub use retry::{Jitter, Next, Random, RetrySchedule, parse_retry_after};
pub use secret::{Secret, SecretError, SecretSource, SecretText};
pub use signing::{ReceivedHeaders, SignedHeaders, VerifyError, sign, verify};
