//! Mail out: what itsmd tells the people on a ticket, sent over SMTP through the same durable
//! outbox as vendor webhooks (rows on the mail channel, destination
//! [`crate::vendors::MAIL_DESTINATION`]).
//!
//! Owns the `[smtp]` settings ([`config`]), composing a message with its threading headers
//! from a ticket (pure, [`compose`]), each ticket's mail thread: its reply token, caller and
//! Message-IDs ([`thread`]), staff notifications and their templates ([`people`]), coalescing them per person
//! within a window ([`coalesce`]), the engine step that writes mail rows in the commit of the
//! change they report ([`step`]), and the SMTP sender the dispatcher hands mail rows to
//! ([`smtp`]). Only the sender touches the network; nothing here logs a password.

pub mod api;
pub mod cli;
pub mod coalesce;
pub mod compose;
pub mod config;
pub(crate) mod people;
pub mod quiet;
pub mod rule_notify;
pub mod smtp;
pub(crate) mod step;
pub mod templates;
pub(crate) mod thread;

pub use compose::Envelope;
pub use config::{Audience, CallerMail, PeopleMail, SmtpConfig, TlsMode};
pub use smtp::{Sent, SmtpSender};
pub use templates::Templates;
