//! Plain domain data, no I/O: events, alerts, tickets, their lifecycles, priority, history,
//! agents' commands, links and the process vocabularies.
//!
//! Everything here is serialisable and deterministic so that the engine, the rule tester and
//! replay all share it. Nothing here may touch the store, the network or the clock.

pub mod alert;
pub mod command;
pub mod event;
pub mod history;
pub mod lifecycle;
pub mod link;
pub mod mail;
pub mod outbox;
pub mod priority;
pub mod process;
pub mod ticket;
pub mod vocab;

pub use alert::{Alert, AlertFormat, AlertMember, AlertStatus, fingerprint};
pub use command::{
    Action, Command, Comment, CommentRequest, LinkRequest, NewTicket, TicketUpdate,
    TransitionRequest,
};
pub use event::{Event, EventBody, EventId};
pub use history::{Actor, FieldChange, HistoryEntry};
pub use lifecycle::{Flow, State};
pub use link::{Link, LinkRel};
pub use mail::{Attachment, Mail, Mailbox, Noise};
pub use outbox::{AttemptResult, Delivery, OutboxRow, VendorCallback, VendorState};
pub use priority::{Level, PriorityMatrix};
pub use process::{Approval, ChangeInfo, ProcessFields, Window};
pub use ticket::{AlertLink, Kind, Ticket, TicketId};
pub use vocab::{ChangeType, HoldReason, Resolution, ReviewOutcome, Visibility};
