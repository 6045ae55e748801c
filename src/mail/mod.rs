//! Mail: callers who write to the service desk.
//!
//! Owns the mail model ([`message`]), the `[mail]` settings ([`config`]), the Maildir source
//! that reads, parses and hands messages to the engine ([`maildir`]; it never writes the
//! store), the engine's mail step: threading by Message-ID, tag or In-Reply-To, loop and
//! bulk protection, opening or commenting ([`step`]), what rules see of a mail
//! ([`rules_view`]), and mail out to the people on a ticket over SMTP ([`outbound`]).

pub mod chat;
pub mod config;
pub mod maildir;
pub mod message;
pub mod outbound;
pub(crate) mod rules_view;
pub(crate) mod step;

#[cfg(test)]
mod step_tests;

pub use config::MailConfig;
pub use message::{Attachment, Mail, Mailbox, Noise};
