//! Alertmanager's webhook (version 4) and Grafana's webhook, which is the same shape plus
//! Grafana's own fields (`orgId`, `title`, `state`, `message`, per-alert `values`, URLs).
//! Each alert carries its status and the sender's fingerprint, which is kept as given.
//! Pure: body → alerts or every problem; no I/O.

use jiff::Timestamp;
use serde::Deserialize;

use crate::alerts::intake::promalert::WireAlert;
use crate::alerts::{Alert, AlertFormat};

/// The webhook body. Only what itsmd uses is named; everything else is ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    #[serde(default)]
    pub version: Option<String>,
    /// Present only in Grafana's payload.
    #[serde(default)]
    pub org_id: Option<serde_json::Value>,
    #[serde(default)]
    pub alerts: Option<Vec<WireAlert>>,
}

impl Webhook {
    /// Grafana sends `version: "1"` and an `orgId`; Alertmanager sends `version: "4"`.
    pub fn format(&self) -> AlertFormat {
        if self.org_id.is_some() || self.version.as_deref() == Some("1") {
            AlertFormat::Grafana
        } else {
            AlertFormat::Alertmanager
        }
    }
}

/// Normalises a webhook body; every problem is reported with its path.
pub fn alerts(body: Webhook, now: Timestamp) -> Result<Vec<Alert>, Vec<String>> {
    let format = body.format();
    let Some(list) = body.alerts else {
        return Err(vec!["`alerts` is missing".into()]);
    };
    let mut problems = Vec::new();
    let out: Vec<Alert> = list
        .into_iter()
        .enumerate()
        .filter_map(|(i, a)| a.into_alert(format, now, &format!("alerts[{i}]"), &mut problems))
        .collect();
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertStatus;
    use crate::alerts::fingerprint;

    fn parse(path: &str) -> Vec<Alert> {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        alerts(serde_json::from_str(&text).unwrap(), Timestamp::now()).unwrap()
    }

    #[test]
    fn alertmanager_fingerprints_are_kept_and_match_the_labels() {
        let alerts = parse("alertmanager/am0.25_webhook_v4_firing_mixed_1firing_1resolved.json");
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].key, "6d06c5ad803017b7");
        assert_eq!(alerts[0].status, AlertStatus::Firing);
        assert_eq!(alerts[0].ends_at, None);
        assert_eq!(alerts[0].summary, "Disk almost full on db01:9100");
        assert_eq!(alerts[0].description.as_deref(), Some("/var is 97% full"));
        assert_eq!(alerts[0].severity, "critical");
        assert_eq!(alerts[1].key, "ca3057b70fb878d8");
        assert_eq!(alerts[1].status, AlertStatus::Resolved);
        for a in &alerts {
            assert_eq!(a.format, AlertFormat::Alertmanager);
            assert_eq!(
                a.key,
                fingerprint(&a.labels),
                "Alertmanager uses Prometheus' hash"
            );
        }
    }

    #[test]
    fn every_alertmanager_capture_parses() {
        for name in [
            "am0.25_webhook_v4_firing_2alerts",
            "am0.25_webhook_v4_resolved",
            "am0.25_webhook_v4_subroute_groupkey",
        ] {
            let alerts = parse(&format!("alertmanager/{name}.json"));
            assert!(!alerts.is_empty(), "{name}");
        }
        let sub = parse("alertmanager/am0.25_webhook_v4_subroute_groupkey.json");
        assert_eq!(
            sub[0].generator_url, None,
            "an empty generatorURL is no URL"
        );
    }

    #[test]
    fn grafana_is_recognised_and_its_fingerprint_kept_as_given() {
        let firing = parse("grafana/grafana_webhook_v1_firing_CONSTRUCTED.json");
        assert_eq!(firing[0].format, AlertFormat::Grafana);
        assert_eq!(firing[0].key, "0b2f2c9e6a4d1f37");
        assert_ne!(firing[0].key, firing[0].fingerprint);
        assert_eq!(firing[0].summary, "CPU above 90% on web01:9100");
        let resolved = parse("grafana/grafana_webhook_v1_resolved_CONSTRUCTED.json");
        assert_eq!(resolved[0].status, AlertStatus::Resolved);
        assert_eq!(resolved[0].key, firing[0].key);
        assert_eq!(
            resolved[0].ends_at.unwrap().to_string(),
            "2024-05-01T10:20:00Z"
        );
    }

    #[test]
    fn a_bad_status_and_missing_alerts_are_reported() {
        let body: Webhook = serde_json::from_str(
            r#"{"alerts":[{"status":"pending","labels":{"a":"1"}},{"status":"firing"}]}"#,
        )
        .unwrap();
        let problems = alerts(body, Timestamp::now()).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("`alerts[0].status` is \"pending\""));
        assert_eq!(
            problems[1],
            "`alerts[1].labels` must have at least one label"
        );
        let body: Webhook = serde_json::from_str(r#"{"version":"4"}"#).unwrap();
        assert_eq!(
            alerts(body, Timestamp::now()).unwrap_err(),
            vec!["`alerts` is missing"]
        );
    }
}
