//! Tickets: their human ids, kinds and fields.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alerts::{AlertMember, AlertStatus};
use crate::event::EventId;
use crate::tickets::{Level, ProcessFields, State};

/// The four ITIL practices a ticket can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Incident,
    Request,
    Problem,
    Change,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Incident, Kind::Request, Kind::Problem, Kind::Change];

    /// The id prefix: INC, REQ, PRB, CHG.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Incident => "INC",
            Kind::Request => "REQ",
            Kind::Problem => "PRB",
            Kind::Change => "CHG",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Incident => "incident",
            Kind::Request => "request",
            Kind::Problem => "problem",
            Kind::Change => "change",
        }
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown ticket kind {s:?}; expected one of incident, request, problem, change"
                )
            })
    }
}

/// A human ticket id such as `INC-000042`: kind plus a counter per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketId {
    pub kind: Kind,
    pub number: u64,
}

impl TicketId {
    /// Store key: the 3-letter prefix then the big-endian number, so keys sort by kind, then
    /// numerically (past 999999 too).
    pub fn key(self) -> Vec<u8> {
        let mut k = Vec::with_capacity(11);
        k.extend_from_slice(self.kind.prefix().as_bytes());
        k.extend_from_slice(&self.number.to_be_bytes());
        k
    }

    pub fn from_key(key: &[u8]) -> Option<TicketId> {
        let (prefix, num) = key.split_at_checked(3)?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.prefix().as_bytes() == prefix)?;
        let number = u64::from_be_bytes(num.try_into().ok()?);
        Some(TicketId { kind, number })
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:06}", self.kind.prefix(), self.number)
    }
}

impl FromStr for TicketId {
    type Err = String;
    fn from_str(s: &str) -> Result<TicketId, String> {
        let bad = || format!("{s:?} is not a ticket id (expected e.g. INC-000042)");
        let (prefix, num) = s.split_once('-').ok_or_else(bad)?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.prefix() == prefix)
            .ok_or_else(bad)?;
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let number = num.parse().map_err(|_| bad())?;
        Ok(TicketId { kind, number })
    }
}

impl Serialize for TicketId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TicketId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TicketId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The alert side of a ticket opened or updated by alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertLink {
    /// Where the alerts come from (the `source` of the first one).
    pub source: String,
    /// Status of the latest alert for this ticket.
    pub status: AlertStatus,
    /// How many alert events were correlated into this ticket.
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The latest event that touched it.
    pub last_event: EventId,
    /// The `service` label of the latest alert, if it had one: what rule queries find the
    /// ticket by (`store::layout::by_service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Every distinct alert correlated into this ticket, by its own key (sender identity or
    /// label fingerprint): auto-resolve waits until all of them cleared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alerts: BTreeMap<String, AlertMember>,
    /// When the alerts last changed state (firing ↔ resolved), oldest first, pruned to the
    /// flapping window: counting them is how flapping is detected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Timestamp>,
    /// Set while the alerts flap: the instant the flag lapses unless another state change
    /// comes first (each one pushes it out by the quiet period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping_until: Option<Timestamp>,
}

impl AlertLink {
    /// Whether the alerts are flapping at `now`.
    pub fn flapping_at(&self, now: Timestamp) -> bool {
        self.flapping_until.is_some_and(|until| now < until)
    }

    /// How many of the correlated alerts are still firing.
    pub fn firing(&self) -> usize {
        self.alerts
            .values()
            .filter(|m| m.status == AlertStatus::Firing)
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub state: State,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    pub impact: Level,
    pub urgency: Level,
    /// 1 (critical) … 5 (planning), from the matrix unless overridden.
    pub priority: u8,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Correlation key that alerts use to find this ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_key: Option<String>,
    /// How the correlation key was made: `fingerprint` (the alert's labels, or the sender's
    /// fingerprint), `dedup_key` (PagerDuty), `key` (a generic event's own `key`), or
    /// `rule:FILE` (a rule's `set_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertLink>,
    /// Free-form fields that rules and agents set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, serde_json::Value>,
    /// What the ticket's practice adds: hold reason, resolution, change and approval
    /// details, links. Flattened: on the wire these are ticket fields.
    #[serde(flatten)]
    pub process: ProcessFields,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Number of history entries; the next entry gets `history_len + 1`.
    pub history_len: u64,
    /// SLA policy, clock timelines, escalation level and scheduled timers.
    #[serde(default, skip_serializing_if = "crate::sla::TicketSla::is_empty")]
    pub sla: crate::sla::TicketSla,
}

impl Ticket {
    /// A new ticket with nothing set, created and updated `at`: what tests start from.
    #[cfg(test)]
    pub(crate) fn blank(id: TicketId, at: Timestamp) -> Ticket {
        Ticket {
            id,
            state: State::New,
            title: String::new(),
            description: String::new(),
            group: None,
            assignee: None,
            impact: Level::Low,
            urgency: Level::Low,
            priority: 5,
            tags: Default::default(),
            correlation_key: None,
            key_source: None,
            alert: None,
            custom: Default::default(),
            process: Default::default(),
            created_at: at,
            updated_at: at,
            history_len: 0,
            sla: Default::default(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.id.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keys_sort_numerically() {
        let id: TicketId = "INC-000042".parse().unwrap();
        assert_eq!(
            id,
            TicketId {
                kind: Kind::Incident,
                number: 42
            }
        );
        assert_eq!(id.to_string(), "INC-000042");
        assert_eq!(TicketId::from_key(&id.key()), Some(id));
        let big = TicketId {
            kind: Kind::Incident,
            number: 1_000_000,
        };
        assert_eq!(big.to_string(), "INC-1000000");
        assert!(id.key() < big.key());
        for bad in ["INC42", "XYZ-000001", "INC-", "INC-12a", "INC--1"] {
            assert!(bad.parse::<TicketId>().is_err(), "{bad}");
        }
    }
}
