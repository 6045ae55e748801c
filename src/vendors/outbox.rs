//! The outbox as data: a row (one message about one ticket to one destination: a vendor's
//! webhook or, on the mail channel, mail over SMTP), the events that change rows (a delivery attempt's result, a replay), and a vendor's signed
//! callback. Plain data: the engine applies these, the dispatcher sends rows, the API takes
//! callbacks. Nothing here may touch the store, the network or the clock.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::EventId;
use crate::tickets::TicketId;

/// The webhook types a vendor can subscribe to (`events = [...]` in its configuration).
pub const WEBHOOK_TYPES: [&str; 6] = [
    ASSIGNED,
    UNASSIGNED,
    UPDATED,
    TRANSITIONED,
    COMMENTED,
    NOTIFIED,
];
/// The ticket was assigned to the vendor.
pub const ASSIGNED: &str = "ticket.assigned";
/// The ticket was taken away from the vendor (last message about it).
pub const UNASSIGNED: &str = "ticket.unassigned";
/// Fields of a ticket assigned to the vendor changed.
pub const UPDATED: &str = "ticket.updated";
/// A ticket assigned to the vendor changed state.
pub const TRANSITIONED: &str = "ticket.transitioned";
/// A public comment was added to a ticket assigned to the vendor.
pub const COMMENTED: &str = "ticket.commented";
/// A rule asked to notify the vendor (`ticket.notify("vendor")`).
pub const NOTIFIED: &str = "ticket.notified";

/// The destination of mail rows: where a vendor's name would be. Vendor names hold only
/// letters, digits, `-` and `_`, so no vendor can take it.
pub const MAIL_DESTINATION: &str = "@smtp";

/// Which sender of the dispatcher delivers a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A signed HTTP POST to a vendor (rows written before channels existed are these).
    #[default]
    Webhook,
    /// A mail over SMTP; the body is a [`crate::mail::outbound::Envelope`].
    Mail,
    /// A chat message (Slack, Teams, Matrix); the body is its JSON, the destination
    /// `@chat/NAME` names the channel ([`crate::mail::chat`]).
    Chat,
}

impl Channel {
    pub fn is_webhook(&self) -> bool {
        *self == Channel::Webhook
    }
}

/// One message waiting for (or given up on by) the dispatcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// Outbox sequence number: `itsmd outbox replay ID` names rows by it.
    pub id: u64,
    /// The `webhook-id`: the same on every attempt and replay, so receivers can de-duplicate.
    pub msg_id: String,
    /// The vendor, or [`MAIL_DESTINATION`] for mail rows: one queue per destination and
    /// ticket.
    pub vendor: String,
    /// Which sender delivers it.
    #[serde(default, skip_serializing_if = "Channel::is_webhook")]
    pub channel: Channel,
    /// The ticket the message is about; messages of one ticket go out in order.
    pub ticket: TicketId,
    /// The webhook type, one of [`WEBHOOK_TYPES`], or the mail's kind (`mail.acknowledged`…).
    #[serde(rename = "type")]
    pub kind: String,
    /// The JSON payload exactly as signed and sent, or the mail with its envelope (built
    /// once, so retries send the same bytes, Message-ID included).
    pub body: String,
    /// The event whose change the message reports.
    pub event: EventId,
    pub created_at: Timestamp,
    /// Attempts made so far (since the last replay).
    pub attempts: u32,
    /// When the next attempt is due; set only while the row heads its ticket's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Timestamp>,
    /// The delay chosen before the latest retry (decorrelated jitter grows from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delay_ms: Option<u64>,
    /// When the latest attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Timestamp>,
    /// What went wrong on the latest attempt, for `itsmd outbox list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was parked as a dead letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at: Option<Timestamp>,
}

/// A change to outbox rows, submitted to the engine (the only writer) as an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Delivery {
    /// The dispatcher made attempt number `attempt` of row `row` at `at`.
    Attempted {
        row: u64,
        attempt: u32,
        at: Timestamp,
        result: AttemptResult,
    },
    /// An operator asked to send a row (dead or pending) again, from attempt 1.
    ReplayRow { row: u64 },
    /// An operator asked to re-enable a vendor and send its dead and pending rows again.
    ReplayVendor { vendor: String },
}

/// How an attempt ended and what the dispatcher's schedule makes of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptResult {
    /// 2xx: the row is done.
    Delivered { status: u16 },
    /// Timeout, connection error, 429 or 5xx: try again at `next_at`.
    Retry {
        error: String,
        next_at: Timestamp,
        delay_ms: u64,
    },
    /// The last attempt failed, or the answer was a permanent failure: park as dead.
    Dead { error: String },
    /// 410 Gone: the vendor's endpoint is gone; disable the vendor, keep the row pending.
    Gone { error: String },
}

/// What a vendor's callback asks, after its signature was verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorCallback {
    pub vendor: String,
    /// The callback's `webhook-id`: a second callback with it changes nothing.
    pub webhook_id: String,
    pub ticket: TicketId,
    /// The vendor's own reference for the ticket (its case number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The vendor's status word, mapped through its `status_map` by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A vendor's delivery state, kept across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorState {
    /// Set when the vendor answered 410 Gone: nothing is sent until a replay re-enables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Timestamp>,
    /// Why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
