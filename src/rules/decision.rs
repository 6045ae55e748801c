//! What a rule can decide. Decisions are data; the engine validates and applies them.

use std::sync::Arc;

use serde::Serialize;

use crate::tickets::{HoldReason, Kind, Level, LinkRel, Resolution, State, TicketId};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    SetTitle {
        value: String,
    },
    SetDescription {
        value: String,
    },
    SetGroup {
        value: String,
    },
    SetAssignee {
        value: String,
    },
    SetImpact {
        value: Level,
    },
    SetUrgency {
        value: Level,
    },
    AddTag {
        value: String,
    },
    /// Replace the correlation key the alert is matched by.
    SetKey {
        value: String,
    },
    /// Open no ticket for this event; it is still recorded.
    Suppress {
        reason: String,
    },
    /// Assign the ticket to a partner vendor (which is then sent webhooks about it).
    SetVendor {
        value: String,
    },
    /// Send the vendor a `ticket.notified` webhook about the ticket.
    Notify {
        vendor: String,
    },
    /// A manual priority (1..=5) instead of the matrix's; `None` returns to the matrix.
    SetPriority {
        value: Option<u8>,
    },
    /// A custom field; JSON `null` removes it.
    SetCustom {
        key: String,
        value: serde_json::Value,
    },
    /// Move the ticket through its lifecycle (validated like an agent's transition).
    Transition {
        to: State,
        reason: String,
        resolution: Option<Resolution>,
        hold_reason: Option<HoldReason>,
    },
    /// Add a comment, internal unless `public`.
    Comment {
        body: String,
        public: bool,
    },
    /// Link the ticket to another one (both ends, like the API).
    Link {
        rel: LinkRel,
        ticket: TicketId,
    },
    /// Raise the escalation level by one and hand the ticket to its group's `escalate_to`
    /// group when one is configured (functional escalation).
    Escalate,
    /// Raise the priority one step towards 1 (critical), as a manual override.
    RaisePriority,
    /// Tell the ticket group's lead (hierarchical escalation); recorded and logged.
    NotifyLead {
        message: String,
    },
    /// Tell a person or every member of a group (`ticket.notify(to, template, ...)`) with a
    /// notification template; `vars` is what the rule passed for the template (`{}` if
    /// nothing). Mail and chat per the person's or group's configuration.
    NotifyPeople {
        to: String,
        template: String,
        vars: serde_json::Value,
    },
    /// Run the ticket's SLA clocks against this policy, not the one kind and priority choose.
    SetSlaPolicy {
        value: String,
    },
    /// The kind of ticket a mail opens; only effective for a new ticket.
    SetKind {
        value: Kind,
    },
    /// Open another ticket (`open_ticket(kind, fields)`), linked to this one and to `also`.
    OpenTicket(Box<OpenTicket>),
    /// Not a rule's call: the rule reached the per-event cap of `what` (comments,
    /// transitions, notifications, opened tickets); its further ones were dropped. The engine
    /// writes it to the ticket's history.
    CapReached {
        what: &'static str,
        limit: u32,
    },
}

/// A ticket a rule opens: created like an agent's (the same checks), then linked: this
/// hook's ticket and every ticket of `also` get `rel` to the new one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenTicket {
    pub new: crate::tickets::NewTicket,
    /// How each causing ticket relates to the new one (`caused_by` for a problem).
    pub rel: LinkRel,
    /// Other tickets that caused it (e.g. the incidents a correlation rule found).
    pub also: Vec<TicketId>,
}

impl Decision {
    /// Decisions that act on a ticket that exists (after it is opened or updated), through
    /// the same engine code as the agent API; the others set fields before that.
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Decision::Transition { .. }
                | Decision::Comment { .. }
                | Decision::Link { .. }
                | Decision::OpenTicket(_)
                | Decision::CapReached { .. }
        )
    }
}

/// Where a decision came from: the rule file, the hook, and the line of the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub file: Arc<str>,
    pub hook: &'static str,
    pub line: Option<u32>,
}

/// A decision and its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decided {
    pub decision: Decision,
    pub by: Provenance,
    /// `ticket.force(field, value)`: applies even to a field a person set by hand.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}
