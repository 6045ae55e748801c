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

/// Who did something, as a person reads it (the console's history, log lines). Names come
/// from outside (a mail's sender above all), so control characters are escaped.
impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::telemetry::Escaped as E;
        match self {
            Actor::User { name } => write!(f, "{}", E(name)),
            Actor::Rule { file, hook, line } => match line {
                Some(l) => write!(f, "rule {}:{l} ({})", E(file), E(hook)),
                None => write!(f, "rule {} ({})", E(file), E(hook)),
            },
            Actor::Vendor { name } => write!(f, "vendor {}", E(name)),
            // A mail without a (readable) From: header.
            Actor::Caller { address } if address.trim().is_empty() => {
                write!(f, "mail without a sender")
            }
            Actor::Caller { address } => write!(f, "{}", E(address)),
            Actor::System { component } => write!(f, "itsmd {}", E(component)),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Actor;

    #[test]
    fn an_actor_reads_as_a_person_says_it_with_control_characters_escaped() {
        let rule = Actor::Rule {
            file: "00-defaults.rhai".into(),
            hook: "on_alert".into(),
            line: Some(15),
        };
        assert_eq!(rule.to_string(), "rule 00-defaults.rhai:15 (on_alert)");
        assert_eq!(Actor::system("sla").to_string(), "itsmd sla");
        let caller = Actor::Caller {
            address: "eve@x.example\r\nINFO forged".into(),
        };
        assert_eq!(caller.to_string(), "eve@x.example\\u{d}\\u{a}INFO forged");
        let anonymous = Actor::Caller {
            address: String::new(),
        };
        assert_eq!(anonymous.to_string(), "mail without a sender");
    }
}
