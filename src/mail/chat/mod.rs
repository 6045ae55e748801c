//! Chat: people notifications as incoming-webhook messages in the formats Slack, Microsoft
//! Teams (an Adaptive Card) and Matrix (the client-server API) accept, through the same
//! durable outbox as mail and vendor webhooks (rows on the chat channel, destination
//! `@chat/NAME`), so they are retried with backoff and never sent about an uncommitted change.
//!
//! Owns `[chat.NAME]` ([`config`]), the message bodies (pure, [`payload`]), and the request
//! the dispatcher sends for a row ([`sender`]: where, how, with which token). A Matrix
//! message's transaction id is the row's stable `msg_id`, so a retry is the same event.

pub mod config;
pub mod payload;
pub mod sender;

pub use config::{ChatChannel, ChatFormat};
pub use sender::ChatSenders;

/// The outbox destination of channel `name`: where a vendor's name would be (vendor names
/// hold no `@` or `/`).
pub fn destination(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Whether `destination` is a configured channel's (`@chat/NAME`).
pub fn is_channel(
    destination: &str,
    chat: &std::collections::BTreeMap<String, ChatChannel>,
) -> bool {
    destination
        .strip_prefix(PREFIX)
        .is_some_and(|name| chat.contains_key(name))
}

/// What every chat destination starts with.
pub const PREFIX: &str = "@chat/";
