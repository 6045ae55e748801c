//! What the benches share: settings from the environment and the alert they send.

use std::collections::BTreeMap;

use itsmd::alerts::{Alert, AlertStatus, fingerprint};
use itsmd::event::EventBody;

/// The number in the environment variable `name`, or `default` when unset or not a number.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A firing alert with these labels, keyed by their fingerprint.
#[allow(dead_code)] // not every bench sends alerts
pub fn firing(labels: BTreeMap<String, String>, severity: &str, summary: String) -> EventBody {
    let fingerprint = fingerprint(&labels);
    EventBody::Alert(Alert {
        source: "bench".into(),
        key: fingerprint.clone(),
        fingerprint,
        status: AlertStatus::Firing,
        severity: severity.into(),
        summary,
        description: None,
        labels,
        annotations: Default::default(),
        starts_at: None,
        ends_at: None,
        generator_url: None,
        format: Default::default(),
        acknowledged: false,
        expired: None,
    })
}
