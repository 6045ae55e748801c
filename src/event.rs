//! The journal record of one input: what arrived, when, and its normalised body.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::mail::Mail;
use crate::tickets::Command;
use crate::vendors::{Delivery, VendorCallback};

/// Events are numbered by the engine in commit order, starting at 1.
pub type EventId = u64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub received_at: Timestamp,
    pub body: EventBody,
}

/// What an event carries. New sources add variants here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    Alert(Alert),
    /// An agent's write (or itsmd's housekeeping), through the API or CLI.
    Command(Command),
    /// A change to outbox rows: a delivery attempt's result, or an operator's replay.
    Delivery(Delivery),
    /// A partner vendor's signed callback about one of its tickets.
    VendorCallback(VendorCallback),
    /// An SLA timer fell due: a warning or breach of one clock of one ticket.
    Clock(crate::store::layout::sla_timers::Timer),
    /// A PagerDuty change event (a deploy, a config push): recorded as a standard change.
    Change(crate::alerts::intake::pd_change::ChangeEvent),
    /// An alert expiry row fell due: the alert may have ended without a re-send.
    AlertExpiry(crate::store::layout::alert_expiry::Expiry),
    /// A mail taken from the Maildir. Boxed: a mail (with its attachments) is much larger
    /// than the other events.
    Mail(Box<Mail>),
    /// An administrator's change to a console account (`auth::accounts`).
    Account(crate::auth::accounts::AccountCommand),
    /// The retention sweep's next chunk (`retention`): deletes, never journaled itself.
    Retention(crate::retention::Sweep),
}

impl EventBody {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Alert(_) => "alert",
            EventBody::Command(_) => "command",
            EventBody::Delivery(_) => "delivery",
            EventBody::VendorCallback(_) => "vendor_callback",
            EventBody::Clock(_) => "clock",
            EventBody::AlertExpiry(_) => "alert_expiry",
            EventBody::Change(_) => "change",
            EventBody::Mail(_) => "mail",
            EventBody::Account(_) => "account",
            EventBody::Retention(_) => "retention",
        }
    }
}
