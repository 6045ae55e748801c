//! The `[alerts]` and `[pagerduty]` sections: how alerts correlate into incidents over time,
//! and which PagerDuty routing keys are accepted.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

/// How alerts correlate into incidents over time. Durations are jiff's friendly format
/// ("90s", "30m", "1h", "2h 30m"); ISO 8601 ("PT1H") is accepted too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Resolve an incident by itself once every alert correlated into it has cleared.
    pub auto_resolve: bool,
    /// A re-fire within this time after its incident resolved reopens it; later, a new
    /// incident is opened and linked to the old one.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub reopen_window: SignedDuration,
    /// This many state changes (firing ↔ resolved) within `flap_window` flag the incident
    /// as flapping.
    pub flap_changes: usize,
    /// The window the state changes are counted in.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub flap_window: SignedDuration,
    /// The flag clears once the alerts kept their state for this long.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub flap_quiet: SignedDuration,
    /// A firing alert from Prometheus' API (`/api/v2/alerts`) that gives no `endsAt` of its
    /// own resolves this long after it was last sent, as Alertmanager's `resolve_timeout`.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub resolve_timeout: SignedDuration,
    /// An incident shows the changes (PagerDuty change events) recorded for its service
    /// within this time before it opened.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub changes_window: SignedDuration,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            auto_resolve: true,
            reopen_window: SignedDuration::from_hours(1),
            flap_changes: 4,
            flap_window: SignedDuration::from_hours(1),
            flap_quiet: SignedDuration::from_mins(30),
            resolve_timeout: SignedDuration::from_mins(5),
            changes_window: SignedDuration::from_hours(4),
        }
    }
}

/// PagerDuty Events API v2 intake (`POST /v2/enqueue`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Accepted routing keys (integration keys), each with the source name recorded on its
    /// alerts. Empty: any routing key is accepted and recorded as the source.
    pub integration_keys: BTreeMap<String, String>,
}

/// Every problem in `[alerts]` and `[pagerduty]`, each naming its key.
pub fn problems(a: &AlertsConfig, pagerduty: &PagerDutyConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (name, d) in [
        ("alerts.reopen_window", a.reopen_window),
        ("alerts.flap_window", a.flap_window),
        ("alerts.flap_quiet", a.flap_quiet),
        ("alerts.changes_window", a.changes_window),
    ] {
        if d.is_negative() {
            out.push(format!("{name} must not be negative"));
        }
    }
    if a.flap_changes < 2 {
        out.push("alerts.flap_changes must be at least 2".into());
    }
    if !a.resolve_timeout.is_positive() {
        out.push("alerts.resolve_timeout must be greater than 0".into());
    }
    if a.flap_window.is_zero() {
        out.push("alerts.flap_window must be greater than 0".into());
    }
    for (key, source) in &pagerduty.integration_keys {
        // The key itself is a secret: name it by position, never print it.
        if key.trim().is_empty() {
            out.push("pagerduty.integration_keys: a routing key is empty".into());
        }
        if source.trim().is_empty() {
            out.push("pagerduty.integration_keys: a routing key maps to an empty source".into());
        }
    }
    out
}
