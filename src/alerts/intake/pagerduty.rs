//! PagerDuty Events API v2 (`POST /v2/enqueue`): trigger, acknowledge and resolve events
//! keyed by `dedup_key`. Zabbix' stock PagerDuty media type and Alertmanager's
//! `pagerduty_configs` speak it too. Validation follows PagerDuty's own: every problem is
//! reported in PagerDuty's words, so senders' logs read as they would against PagerDuty.
//! Pure: JSON → a validated event or problems; no I/O, no routing-key policy.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::alerts::{Alert, AlertFormat, AlertStatus, fingerprint};

/// What the sender asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

/// A validated event, before the routing key is checked and a dedup key minted.
#[derive(Debug, Clone, PartialEq)]
pub struct PdEvent {
    pub routing_key: String,
    pub action: Action,
    /// `None` only for a trigger: the receiver mints one.
    pub dedup_key: Option<String>,
    /// The trigger's content, normalised (key and source filled in by [`PdEvent::into_alert`]).
    pub alert: Alert,
}

const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];
const MAX_DEDUP_KEY: usize = 255;
const MAX_SUMMARY: usize = 1024;

/// Reads a string field; records a problem when present but not a string.
pub(crate) fn string(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.push(format!("'{path}{name}' must be a string"));
            None
        }
    }
}

fn required(v: Option<String>, name: &str, problems: &mut Vec<String>) -> String {
    match v {
        Some(s) if !s.trim().is_empty() => s,
        _ => {
            problems.push(format!("'{name}' is missing or blank"));
            String::new()
        }
    }
}

/// Flattens a value into annotation text: strings as they are, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Validates one event body.
pub fn parse(body: &Value) -> Result<PdEvent, Vec<String>> {
    let Some(obj) = body.as_object() else {
        return Err(vec!["Event must be a JSON object".into()]);
    };
    let mut problems = Vec::new();
    let routing_key = required(
        string(obj, "routing_key", "", &mut problems),
        "routing_key",
        &mut problems,
    );
    let action = match string(obj, "event_action", "", &mut problems).as_deref() {
        Some("trigger") => Some(Action::Trigger),
        Some("acknowledge") => Some(Action::Acknowledge),
        Some("resolve") => Some(Action::Resolve),
        Some(other) if !other.trim().is_empty() => {
            problems.push(format!(
                "'event_action' is {other:?}; must be one of trigger, acknowledge, resolve"
            ));
            None
        }
        _ => {
            problems.push("'event_action' is missing or blank".into());
            None
        }
    };
    let dedup_key = string(obj, "dedup_key", "", &mut problems).filter(|k| !k.is_empty());
    if let Some(k) = &dedup_key
        && k.chars().count() > MAX_DEDUP_KEY
    {
        problems.push(format!(
            "'dedup_key' is longer than {MAX_DEDUP_KEY} characters"
        ));
    }
    if matches!(action, Some(Action::Acknowledge | Action::Resolve)) && dedup_key.is_none() {
        problems.push("'dedup_key' is missing or blank".into());
    }
    let mut alert = Alert {
        source: String::new(),
        key: String::new(),
        fingerprint: String::new(),
        status: match action {
            Some(Action::Resolve) => AlertStatus::Resolved,
            _ => AlertStatus::Firing,
        },
        severity: String::new(),
        summary: String::new(),
        description: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        starts_at: None,
        ends_at: None,
        generator_url: string(obj, "client_url", "", &mut problems).filter(|u| !u.is_empty()),
        format: AlertFormat::Pagerduty,
        acknowledged: action == Some(Action::Acknowledge),
        expired: None,
    };
    if let Some(client) = string(obj, "client", "", &mut problems) {
        alert.annotations.insert("client".into(), client);
    }
    for list in ["links", "images"] {
        if let Some(v) = obj.get(list).filter(|v| !v.is_null()) {
            alert.annotations.insert(list.into(), v.to_string());
        }
    }
    if action == Some(Action::Trigger) {
        payload(obj.get("payload"), &mut alert, &mut problems);
    }
    alert.fingerprint = fingerprint(&alert.labels);
    match action {
        Some(action) if problems.is_empty() => Ok(PdEvent {
            routing_key,
            action,
            dedup_key,
            alert,
        }),
        _ => Err(problems),
    }
}

/// Reads a trigger's payload into the alert.
fn payload(v: Option<&Value>, alert: &mut Alert, problems: &mut Vec<String>) {
    let Some(p) = v.and_then(Value::as_object) else {
        problems.push("'payload' is missing or not an object".into());
        return;
    };
    let summary = required(
        string(p, "summary", "payload.", problems),
        "payload.summary",
        problems,
    );
    if summary.chars().count() > MAX_SUMMARY {
        problems.push(format!(
            "'payload.summary' is longer than {MAX_SUMMARY} characters"
        ));
    }
    let source = required(
        string(p, "source", "payload.", problems),
        "payload.source",
        problems,
    );
    let severity = required(
        string(p, "severity", "payload.", problems),
        "payload.severity",
        problems,
    );
    if !severity.is_empty() && !SEVERITIES.contains(&severity.as_str()) {
        problems.push(format!(
            "'payload.severity' is {severity:?}; must be one of critical, error, warning, info"
        ));
    }
    if let Some(ts) = string(p, "timestamp", "payload.", problems) {
        match ts.parse::<Timestamp>() {
            Ok(t) => alert.starts_at = Some(t),
            Err(e) => problems.push(format!(
                "'payload.timestamp' is not an ISO 8601 timestamp: {e}"
            )),
        }
    }
    alert.labels.insert("source".into(), source);
    for name in ["component", "group", "class"] {
        if let Some(v) = string(p, name, "payload.", problems).filter(|v| !v.is_empty()) {
            alert.labels.insert(name.into(), v);
        }
    }
    match p.get("custom_details") {
        None | Some(Value::Null) => {}
        Some(Value::Object(details)) => {
            for (k, v) in details {
                alert.annotations.insert(k.clone(), text(v));
            }
        }
        Some(other) => {
            alert
                .annotations
                .insert("custom_details".into(), text(other));
        }
    }
    alert.summary = summary;
    alert.severity = severity;
}

impl PdEvent {
    /// The alert to submit, keyed by the dedup key (given or minted) and recorded as coming
    /// from `source`.
    pub fn into_alert(self, dedup_key: String, source: String) -> Alert {
        Alert {
            key: dedup_key,
            source,
            ..self.alert
        }
    }
}

/// A dedup key for a trigger that has none: 32 hex digits from the arrival time in
/// nanoseconds and a per-process sequence number, so two triggers never share one.
pub fn mint_dedup_key(now: Timestamp, seq: u64) -> String {
    let nanos = now.as_nanosecond() as u128;
    format!("{:024x}{:08x}", nanos & ((1 << 96) - 1), seq as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Value {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_full_trigger_is_read_into_labels_and_annotations() {
        let e = parse(&fixture(
            "pagerduty/events_v2_trigger_allfields_CONSTRUCTED.json",
        ))
        .unwrap();
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.dedup_key.as_deref(), Some("payments-db/replication-lag"));
        let a = &e.alert;
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.severity, "critical");
        assert_eq!(
            a.summary,
            "Replication lag 412s on payments-db-2 (threshold 60s)"
        );
        assert_eq!(a.labels["source"], "payments-db-2.dc1.example.net");
        assert_eq!(a.labels["component"], "postgresql");
        assert_eq!(a.labels["group"], "payments");
        assert_eq!(a.labels["class"], "replication lag");
        assert_eq!(a.annotations["lag_seconds"], "412");
        assert_eq!(a.annotations["client"], "Example Monitoring");
        assert!(a.annotations["links"].contains("Postgres dashboard"));
        assert_eq!(a.starts_at.unwrap().to_string(), "2024-05-01T10:15:00Z");
        assert_eq!(
            a.generator_url.as_deref(),
            Some("https://monitoring.example.net/alerts/98765")
        );
        assert_eq!(a.format, AlertFormat::Pagerduty);
    }

    #[test]
    fn acknowledge_and_resolve_need_only_the_dedup_key() {
        let ack = parse(&fixture("pagerduty/events_v2_acknowledge_CONSTRUCTED.json")).unwrap();
        assert_eq!(ack.action, Action::Acknowledge);
        assert!(ack.alert.acknowledged);
        assert_eq!(ack.alert.status, AlertStatus::Firing);
        let res = parse(&fixture("pagerduty/events_v2_resolve_CONSTRUCTED.json")).unwrap();
        assert_eq!(res.alert.status, AlertStatus::Resolved);
        assert_eq!(res.dedup_key, ack.dedup_key);
    }

    #[test]
    fn zabbix_and_alertmanager_senders_parse() {
        for path in [
            "zabbix/zabbix_pagerduty_mediatype_trigger_CONSTRUCTED.json",
            "zabbix/zabbix_pagerduty_mediatype_acknowledge_CONSTRUCTED.json",
            "zabbix/zabbix_pagerduty_mediatype_resolve_CONSTRUCTED.json",
            "alertmanager/am0.25_to_pagerduty_v2_trigger.json",
            "alertmanager/am0.25_to_pagerduty_v2_resolve.json",
            "alertmanager/am0.25_to_pagerduty_v2_trigger_after_partial_resolve.json",
        ] {
            let e = parse(&fixture(path)).unwrap_or_else(|p| panic!("{path}: {p:?}"));
            assert!(e.dedup_key.is_some(), "{path}");
        }
    }

    #[test]
    fn a_trigger_without_dedup_key_is_valid_and_keys_are_minted_unique() {
        let e = parse(&fixture(
            "pagerduty/events_v2_trigger_no_dedup_key_CONSTRUCTED.json",
        ))
        .unwrap();
        assert_eq!(e.dedup_key, None);
        let now = Timestamp::now();
        let a = mint_dedup_key(now, 1);
        assert_eq!(a.len(), 32);
        assert_ne!(a, mint_dedup_key(now, 2));
    }

    #[test]
    fn every_problem_is_listed() {
        let body = serde_json::json!({
            "event_action": "explode",
            "dedup_key": 7,
        });
        assert_eq!(
            parse(&body).unwrap_err(),
            vec![
                "'routing_key' is missing or blank",
                "'event_action' is \"explode\"; must be one of trigger, acknowledge, resolve",
                "'dedup_key' must be a string",
            ]
        );
        let body = serde_json::json!({
            "routing_key": "k", "event_action": "trigger",
            "payload": {"summary": "", "severity": "fatal", "timestamp": "yesterday"},
        });
        assert_eq!(
            parse(&body).unwrap_err(),
            vec![
                "'payload.summary' is missing or blank",
                "'payload.source' is missing or blank",
                "'payload.severity' is \"fatal\"; must be one of critical, error, warning, info",
                "'payload.timestamp' is not an ISO 8601 timestamp: \
                 failed to parse four digit integer as year: invalid digit, expected 0-9 but got y",
            ]
        );
        let body = serde_json::json!({"routing_key": "k", "event_action": "resolve"});
        assert_eq!(
            parse(&body).unwrap_err(),
            vec!["'dedup_key' is missing or blank"]
        );
        assert_eq!(
            parse(&serde_json::json!([1])).unwrap_err(),
            vec!["Event must be a JSON object"]
        );
    }
}
