//! Prometheus' own Alertmanager API, `POST /api/v2/alerts`: a JSON array of alerts with no
//! status; an alert is resolved when its `endsAt` has passed. Prometheus re-sends every
//! active alert about once a minute, so the same alert arrives again and again unchanged.
//! Pure: body → alerts or every problem; no I/O.

use jiff::Timestamp;

use crate::alerts::intake::promalert::WireAlert;
use crate::alerts::{Alert, AlertFormat};

/// Normalises a posted array; every problem is reported with its index.
pub fn alerts(body: Vec<WireAlert>, now: Timestamp) -> Result<Vec<Alert>, Vec<String>> {
    let mut problems = Vec::new();
    let out: Vec<Alert> = body
        .into_iter()
        .enumerate()
        .filter_map(|(i, a)| {
            a.into_alert(
                AlertFormat::Prometheus,
                now,
                &format!("[{i}]"),
                &mut problems,
            )
        })
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

    fn fixture(name: &str) -> (Vec<WireAlert>, Timestamp) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/prometheus/");
        let body = std::fs::read_to_string(format!("{dir}{name}.json")).unwrap();
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}{name}.meta.json")).unwrap(),
        )
        .unwrap();
        let captured = meta["captured_unix"].as_f64().unwrap();
        let now = Timestamp::from_millisecond((captured * 1000.0) as i64).unwrap();
        (serde_json::from_str(&body).unwrap(), now)
    }

    #[test]
    fn a_firing_capture_is_firing_at_capture_time() {
        let (body, now) = fixture("prom2.42_post_api_v2_alerts_firing");
        let alerts = alerts(body, now).unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.format, AlertFormat::Prometheus);
        assert_eq!(a.key, fingerprint(&a.labels));
        assert_eq!(a.key, a.fingerprint);
        assert_eq!(a.severity, "warning");
        assert!(a.summary.starts_with("FlipFlop fires"));
        assert_eq!(a.starts_at.unwrap().to_string(), "2026-11-23T18:43:20.474Z");
        assert!(
            a.generator_url
                .as_deref()
                .unwrap()
                .starts_with("http://vm:19090/graph")
        );
    }

    #[test]
    fn an_end_in_the_past_means_resolved_and_refire_has_a_new_start() {
        let (body, now) = fixture("prom2.42_post_api_v2_alerts_resolved");
        let resolved = alerts(body, now).unwrap();
        assert_eq!(resolved[0].status, AlertStatus::Resolved);
        let (body, now) = fixture("prom2.42_post_api_v2_alerts_refired");
        let refired = alerts(body, now).unwrap();
        assert_eq!(refired[0].status, AlertStatus::Firing);
        assert_eq!(refired[0].key, resolved[0].key);
        assert_ne!(refired[0].starts_at, resolved[0].starts_at);
    }

    #[test]
    fn every_bad_alert_is_reported_with_its_index() {
        let body: Vec<WireAlert> = serde_json::from_str(
            r#"[{"labels":{"a":"1"}},{"labels":{}},{},{"labels":{"":"x"}},
                {"labels":{"a":"1"},"annotations":{"":"y"}},
                {"labels":{"a":"1"},"startsAt":"2026-01-02T00:00:00Z","endsAt":"2026-01-01T00:00:00Z"},
                {"labels":{"a":"1"},"startsAt":"2026-01-02T00:00:00Z","endsAt":"0001-01-01T00:00:00Z"}]"#,
        )
        .unwrap();
        let problems = alerts(body, Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "`[1].labels` must have at least one label",
                "`[2].labels` must have at least one label",
                "`[3].labels` has a label with an empty name",
                "`[4].annotations` has a label with an empty name",
                "`[5].endsAt` 2026-01-01T00:00:00Z is before `[5].startsAt` 2026-01-02T00:00:00Z",
            ]
        );
    }
}
