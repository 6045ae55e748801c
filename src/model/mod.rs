//! Plain domain data, no I/O: events, alerts, tickets, their lifecycles, priority and history.
//!
//! Everything here is serialisable and deterministic so that the engine, the rule tester and
//! replay all share it. Nothing here may touch the store, the network or the clock.

pub mod alert;
pub mod event;
pub mod history;
pub mod lifecycle;
pub mod priority;
pub mod ticket;

pub use alert::{Alert, AlertFormat, AlertMember, AlertStatus, fingerprint};
pub use event::{Event, EventBody, EventId};
pub use history::{Actor, FieldChange, HistoryEntry};
pub use lifecycle::State;
pub use priority::{Level, PriorityMatrix};
pub use ticket::{AlertLink, Kind, Ticket, TicketId};
