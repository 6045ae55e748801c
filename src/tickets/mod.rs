//! Tickets: incidents, service requests, problems and changes, and what agents do to them.
//!
//! Owns the ticket model and its id ([`ticket`]), the ITIL state machines ([`lifecycle`]),
//! priority from impact × urgency ([`priority`]), history ([`history`]), links ([`link`]),
//! agents' commands ([`command`]) and the process vocabularies, the `[groups]`,
//! `[approval]`, `[changes]` and `[lifecycle]` settings ([`config`]); the engine's ticket step: commands,
//! transitions, links and auto-close ([`commands`], [`transitions`], [`linking`],
//! [`housekeeping`]) and what a change did as history records it ([`diff`]); change enablement beyond the state machine ([`change`]: plan fields,
//! standard change templates, post-implementation review, calendar, possibly-caused-by
//! links, `itsmd change`); the ticket routes ([`api`], [`api_writes`], [`api_alerts`]) and the
//! `itsmd ticket` client ([`cli`]).

pub mod api;
pub mod api_alerts;
pub mod api_writes;
pub mod change;
pub mod cli;
pub mod command;
pub(crate) mod commands;
#[cfg(test)]
mod commands_tests;
pub mod config;
pub(crate) mod diff;
pub mod history;
pub mod housekeeping;
pub mod lifecycle;
pub mod link;
pub(crate) mod linking;
pub mod priority;
pub mod process;
pub mod ticket;
pub(crate) mod transitions;
pub mod vocab;

pub use command::{
    Action, Command, Comment, CommentRequest, LinkRequest, NewTicket, ReviewRequest, TicketUpdate,
    TransitionRequest,
};
pub use config::{
    ApprovalConfig, ChangeAuthority, ChangeConfig, ChangeTemplate, GroupConfig, Groups,
    LifecycleConfig,
};
pub use history::{Actor, FieldChange, HistoryEntry};
pub use lifecycle::{Flow, State};
pub use link::{Link, LinkRel};
pub use priority::{Level, PriorityMatrix};
pub use process::{Approval, ChangeInfo, ProcessFields, Review, Window};
pub use ticket::{AlertLink, Kind, Ticket, TicketId};
pub use vocab::{ChangeType, HoldReason, Resolution, ReviewOutcome, Risk, Visibility};
