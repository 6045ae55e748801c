//! itsmd's own generic alert: `POST /api/v1/events`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::alerts::{Alert, AlertFormat, AlertStatus, fingerprint};

/// The generic event body. An unknown field is refused, naming it: this format is written by
/// hand (scripts, cron jobs), where `labelz` or `starts_at` is a typo that would otherwise drop
/// the labels or the time without a word; a sender's own data goes in `labels` or `annotations`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericEvent {
    /// Who sends it, e.g. "nagios", "backup-job".
    pub source: String,
    /// The sender's own identity for the alert; the label fingerprint when absent.
    #[serde(default)]
    pub key: Option<String>,
    pub status: AlertStatus,
    pub severity: String,
    pub summary: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When a firing alert ends unless it is sent again: it then resolves by itself
    /// (`alerts::expiry`). Without one it stays until a resolved event.
    #[serde(default)]
    pub ends_at: Option<jiff::Timestamp>,
}

/// Largest key, source or severity accepted, in bytes. (The summary is a title: it has the
/// `[limits] title_bytes` of every sender, checked with the other field limits.)
const MAX_SHORT_FIELD: usize = 1024;

impl GenericEvent {
    /// Validates the event and normalises it into an alert; every problem is reported.
    pub fn into_alert(self) -> Result<Alert, Vec<String>> {
        let mut problems = Vec::new();
        let mut short = |name: &str, v: &str, capped: bool| {
            if v.trim().is_empty() {
                problems.push(format!("`{name}` must not be empty"));
            }
            if capped && v.len() > MAX_SHORT_FIELD {
                problems.push(format!("`{name}` is longer than {MAX_SHORT_FIELD} bytes"));
            }
        };
        short("source", &self.source, true);
        short("severity", &self.severity, true);
        short("summary", &self.summary, false);
        if let Some(key) = &self.key {
            short("key", key, true);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let fingerprint = fingerprint(&self.labels);
        Ok(Alert {
            source: self.source,
            key: self.key.unwrap_or_else(|| fingerprint.clone()),
            fingerprint,
            status: self.status,
            severity: self.severity,
            summary: self.summary,
            description: self.description.filter(|d| !d.is_empty()),
            labels: self.labels,
            annotations: self.annotations,
            starts_at: None,
            ends_at: self.ends_at,
            generator_url: None,
            format: AlertFormat::Generic,
            acknowledged: false,
            expired: None,
        })
    }
}
