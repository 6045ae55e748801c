//! Append-only history: every change to a ticket, who made it, and why.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::EventId;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A person, through the API or CLI.
    User { name: String },
    /// A rule: the file and hook that decided, and the line when known.
    Rule {
        file: String,
        hook: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u32>,
    },
    /// A partner vendor, through a signed callback.
    Vendor { name: String },
    /// Someone outside writing in: a mail's sender, by address.
    Caller { address: String },
    /// itsmd itself: correlation, SLA clocks, auto-close.
    System { component: String },
}

impl Actor {
    pub fn system(component: &str) -> Actor {
        Actor::System {
            component: component.to_string(),
        }
    }
}

/// One field's change, old → new, as JSON values so any field type fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

/// One history entry: all field changes one actor made for one event, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Position in the ticket's history, from 1.
    pub seq: u64,
    pub at: Timestamp,
    pub actor: Actor,
    pub changes: Vec<FieldChange>,
    /// Why: the alert, rule or clock that caused it, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The input event this change was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventId>,
    /// Content hash of the rule set that was active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_version: Option<String>,
}
