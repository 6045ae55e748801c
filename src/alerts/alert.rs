//! A normalised alert, whatever wire format it came in, and its label fingerprint.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::EventId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert occurrence as the engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Who sent it: the `source` field of a generic event, or the wire format's sender name.
    pub source: String,
    /// Correlation key: the sender's own identity when it has one, else the label fingerprint.
    /// Rules may replace it.
    pub key: String,
    /// Prometheus' FNV-1a fingerprint of the labels, always computed, for display and search.
    pub fingerprint: String,
    pub status: AlertStatus,
    pub severity: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    /// The wire format it arrived in, so an occurrence can be read as its sender meant it.
    #[serde(default)]
    pub format: AlertFormat,
    /// The sender says a person acknowledged it (PagerDuty `acknowledge`): the incident moves
    /// to in_progress. The alert itself is still firing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acknowledged: bool,
    /// Set when itsmd resolved it because its end passed without a re-send: when its sender
    /// last sent it (`alerts::expiry`). Never set by a wire format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<Timestamp>,
}

/// The wire formats alerts arrive in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// itsmd's own `POST /api/v1/events`.
    #[default]
    Generic,
    /// Prometheus' Alertmanager API, `POST /api/v2/alerts`.
    Prometheus,
    /// Alertmanager webhook v4.
    Alertmanager,
    /// Grafana's webhook (Alertmanager's shape plus Grafana's fields).
    Grafana,
    /// PagerDuty Events API v2 (also Zabbix's PagerDuty media type).
    Pagerduty,
}

#[cfg(test)]
impl Alert {
    /// A firing generic alert under `key` with `labels`, summary `summary` (engine tests).
    pub(crate) fn firing(key: &str, summary: &str, labels: BTreeMap<String, String>) -> Alert {
        Alert {
            source: "test".into(),
            key: key.into(),
            fingerprint: fingerprint(&labels),
            status: AlertStatus::Firing,
            severity: "critical".into(),
            summary: summary.into(),
            description: None,
            labels,
            annotations: Default::default(),
            starts_at: None,
            ends_at: None,
            generator_url: None,
            format: AlertFormat::Generic,
            acknowledged: false,
            expired: None,
        }
    }
}

impl AlertFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertFormat::Generic => "generic",
            AlertFormat::Prometheus => "prometheus",
            AlertFormat::Alertmanager => "alertmanager",
            AlertFormat::Grafana => "grafana",
            AlertFormat::Pagerduty => "pagerduty",
        }
    }
}

/// One distinct alert (by its own key) correlated into a ticket, as last heard of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMember {
    /// Firing or cleared; the incident may resolve itself once every member cleared.
    pub status: AlertStatus,
    /// The sender's start time: a re-send with the same start is the same firing, not a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// The latest event recorded for this alert (re-sends that changed nothing are not).
    pub last_event: EventId,
    /// When a sender last mentioned it, re-sends included.
    pub last_seen: Timestamp,
}

const FNV_OFFSET: u64 = 14_695_981_039_346_656_037;
const FNV_PRIME: u64 = 1_099_511_628_211;
const SEPARATOR: u8 = 0xFF;

/// Prometheus' label fingerprint (`model.LabelSet.Fingerprint`): FNV-1a 64 over the pairs
/// sorted by name, each as name, 0xFF, value, 0xFF; rendered as 16 lower-case hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Fnv1a::new();
    // BTreeMap iterates in name order, which is the order Prometheus sorts by.
    for (name, value) in labels {
        h.write(name.as_bytes());
        h.write(&[SEPARATOR]);
        h.write(value.as_bytes());
        h.write(&[SEPARATOR]);
    }
    format!("{:016x}", h.finish())
}

/// FNV-1a, 64 bit: Prometheus' label hash, also used for rule-set versions.
pub struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Fnv1a {
        Fnv1a(FNV_OFFSET)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_captured_fingerprint_vector_matches() {
        let text = include_str!("../../tests/fixtures/alertmanager/fingerprint_vectors.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 9);
        for v in vectors {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(v["labels"].clone()).unwrap();
            assert_eq!(
                fingerprint(&labels),
                v["fingerprint"].as_str().unwrap(),
                "{labels:?}"
            );
        }
    }

    #[test]
    fn empty_label_set_is_the_fnv_offset() {
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
    }

    #[test]
    fn label_order_does_not_matter() {
        let a: BTreeMap<_, _> = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]
        .into();
        let b: BTreeMap<_, _> = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]
        .into();
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }
}
