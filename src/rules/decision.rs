//! What a rule can decide. Decisions are data; the engine validates and applies them.

use std::sync::Arc;

use serde::Serialize;

use crate::model::{Kind, Level};

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
    /// The kind of ticket a mail opens; only effective for a new ticket.
    SetKind {
        value: Kind,
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
