//! The alert shape Prometheus and Alertmanager share (labels, annotations, startsAt, endsAt,
//! generatorURL, and in webhooks status and fingerprint), and its normalisation into an
//! [`Alert`]. Pure: no I/O; "now" is passed in.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;

use crate::alerts::{Alert, AlertFormat, AlertStatus, fingerprint};

/// One alert as Prometheus posts it or Alertmanager forwards it. Unknown fields (Grafana's
/// `values`, `dashboardURL`, …) are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAlert {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
    /// Webhooks only: "firing" or "resolved".
    #[serde(default)]
    pub status: Option<String>,
    /// Webhooks only: the sender's fingerprint, kept as given (Grafana's cannot be recomputed).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Go's zero time (0001-01-01T00:00:00Z) in Unix seconds.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Go's zero time, which Alertmanager sends for "no end".
fn is_zero_time(t: Timestamp) -> bool {
    t.as_second() <= GO_ZERO_TIME
}

fn real_time(t: Option<Timestamp>) -> Option<Timestamp> {
    t.filter(|t| !is_zero_time(*t))
}

impl WireAlert {
    /// Normalises one alert found at `path` (e.g. `alerts[2]`); every problem is appended
    /// to `problems`. Without an explicit status, the alert is resolved when its end time
    /// has passed at `now` (Prometheus' convention).
    pub fn into_alert(
        self,
        format: AlertFormat,
        now: Timestamp,
        path: &str,
        problems: &mut Vec<String>,
    ) -> Option<Alert> {
        let before = problems.len();
        if self.labels.is_empty() {
            problems.push(format!("`{path}.labels` must have at least one label"));
        }
        // As Alertmanager's own validation: no empty names, no end before the start.
        for (what, map) in [("labels", &self.labels), ("annotations", &self.annotations)] {
            if map.contains_key("") {
                problems.push(format!("`{path}.{what}` has a label with an empty name"));
            }
        }
        let ends_at = real_time(self.ends_at);
        if let (Some(start), Some(end)) = (real_time(self.starts_at), ends_at)
            && end < start
        {
            problems.push(format!(
                "`{path}.endsAt` {end} is before `{path}.startsAt` {start}"
            ));
        }
        let status = match self.status.as_deref() {
            Some("firing") => AlertStatus::Firing,
            Some("resolved") => AlertStatus::Resolved,
            Some(other) => {
                problems.push(format!(
                    "`{path}.status` is {other:?}; expected \"firing\" or \"resolved\""
                ));
                AlertStatus::Firing
            }
            None if ends_at.is_some_and(|end| end <= now) => AlertStatus::Resolved,
            None => AlertStatus::Firing,
        };
        if problems.len() > before {
            return None;
        }
        let computed = fingerprint(&self.labels);
        let key = self
            .fingerprint
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| computed.clone());
        let summary = ["summary", "title", "message"]
            .iter()
            .find_map(|k| self.annotations.get(*k).filter(|v| !v.is_empty()))
            .or_else(|| self.labels.get("alertname"))
            .cloned()
            .unwrap_or_default();
        Some(Alert {
            source: format.as_str().to_string(),
            key,
            fingerprint: computed,
            status,
            severity: self.labels.get("severity").cloned().unwrap_or_default(),
            summary,
            description: self
                .annotations
                .get("description")
                .filter(|d| !d.is_empty())
                .cloned(),
            labels: self.labels,
            annotations: self.annotations,
            starts_at: real_time(self.starts_at),
            ends_at,
            generator_url: self.generator_url.filter(|u| !u.is_empty()),
            format,
            acknowledged: false,
            expired: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_zero_time_means_no_end() {
        let zero: Timestamp = "0001-01-01T00:00:00Z".parse().unwrap();
        assert!(is_zero_time(zero));
        assert!(!is_zero_time("2024-05-01T10:00:00Z".parse().unwrap()));
    }
}
