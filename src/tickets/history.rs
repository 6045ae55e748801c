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

/// A history value as a person reads it, in the console and the CLI: a string bare, `null` as
/// `absent`, an SLA stage in words ("response warning at 50 %, due 2026-12-06 20:51:52 UTC"), a
/// link as "caused_by PRB-000001", a list joined by ", " ("none" when empty), any other object as
/// `key=value` pairs: never raw JSON.
pub fn value_text(v: &serde_json::Value, absent: &str) -> String {
    use serde_json::Value;
    match v {
        Value::Null => absent.into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "none".into(),
        Value::Array(items) => items
            .iter()
            .map(|i| value_text(i, absent))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(m) => {
            let field = |k: &str| m.get(k).map(|v| value_text(v, absent));
            if let (Some(clock), Some(stage), Some(percent), Some(due)) = (
                field("clock"),
                field("stage"),
                field("percent"),
                field("due"),
            ) {
                let due = due.parse::<Timestamp>().map_or(due, crate::clock::readable);
                return format!("{clock} {stage} at {percent} %, due {due}");
            }
            if let (2, Some(rel), Some(ticket)) = (m.len(), field("rel"), field("ticket")) {
                return format!("{rel} {ticket}");
            }
            m.iter()
                .map(|(k, v)| format!("{k}={}", value_text(v, absent)))
                .collect::<Vec<_>>()
                .join(" ")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Actor, value_text};

    #[test]
    fn a_history_value_reads_as_words_not_json() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        let stage = v(
            r#"{"clock":"response","due":"2026-12-06T20:51:52.98Z","percent":50,
            "policy":"incident-p1","stage":"warning"}"#,
        );
        assert_eq!(
            value_text(&stage, "-"),
            "response warning at 50 %, due 2026-12-06 20:51:52 UTC"
        );
        let links = v(
            r#"[{"rel":"caused_by","ticket":"PRB-000001"},{"rel":"causes","ticket":"INC-000002"}]"#,
        );
        assert_eq!(
            value_text(&links, "-"),
            "caused_by PRB-000001, causes INC-000002"
        );
        let window = v(r#"{"start":"2030-01-05T22:00:00Z","end":"2030-01-06T02:00:00Z"}"#);
        assert_eq!(
            value_text(&window, "—"),
            "end=2030-01-06T02:00:00Z start=2030-01-05T22:00:00Z"
        );
        assert_eq!(value_text(&v("[]"), "-"), "none");
        assert_eq!(value_text(&v("null"), "—"), "—");
        assert_eq!(value_text(&v("3"), "—"), "3");
        assert_eq!(value_text(&v(r#""new""#), "—"), "new");
    }

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
