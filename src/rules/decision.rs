//! What a rule can decide. Decisions are data; the engine validates and applies them.

use std::sync::Arc;

use serde::Serialize;

use crate::model::Level;

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
    /// Raise the escalation level by one and hand the ticket to its group's `escalate_to`
    /// group when one is configured (functional escalation).
    Escalate,
    /// Raise the priority one step towards 1 (critical), as a manual override.
    RaisePriority,
    /// Tell the ticket group's lead (hierarchical escalation); recorded and logged.
    NotifyLead {
        message: String,
    },
    /// Run the ticket's SLA clocks against this policy, not the one kind and priority choose.
    SetSlaPolicy {
        value: String,
    },
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
}
