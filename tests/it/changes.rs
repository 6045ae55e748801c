//! PagerDuty change events (`POST /v2/change/enqueue`) through the real daemon: PagerDuty's
//! answers, the closed standard change each becomes, and the incident that shows the changes
//! to its service in the hours before it opened.

use serde_json::{Value, json};

use crate::support::{Daemon, Setup};

fn changes(d: &Daemon) -> Vec<Value> {
    d.get_ok("/api/v1/tickets?kind=change")["tickets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn change(d: &Daemon, summary: &str, source: &str, timestamp: jiff::Timestamp) {
    let body = json!({
        "routing_key": "deploys",
        "payload": {
            "summary": summary,
            "timestamp": timestamp.to_string(),
            "source": source,
            "custom_details": {"build": 4711, "author": "alice"}
        },
        "links": [{"href": "https://ci.example.net/4711", "text": "Build 4711"}]
    });
    let (status, answer) = d.post("/v2/change/enqueue", &body.to_string());
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "success", "message": "Change event processed"})
    );
}

#[test]
fn a_change_event_becomes_a_closed_standard_change() {
    let d = Setup::new().start();
    let at: jiff::Timestamp = "2026-03-02T10:00:00Z".parse().unwrap_or_default();
    change(&d, "Deployed checkout v2.3.1", "checkout", at);
    let all = changes(&d);
    assert_eq!(all.len(), 1, "{all:#?}");
    let id = all[0]["id"].as_str().unwrap_or_default().to_string();
    let t = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert!(id.starts_with("CHG-"), "{id}");
    assert_eq!(t["state"], "closed");
    assert_eq!(t["change"]["type"], "standard", "{t:#}");
    assert_eq!(t["title"], "Deployed checkout v2.3.1");
    assert_eq!(t["custom"]["service"], "checkout");
    assert_eq!(t["custom"]["changed_at"], "2026-03-02T10:00:00Z");
    assert_eq!(
        t["custom"]["links"][0]["href"],
        "https://ci.example.net/4711"
    );
    assert_eq!(t["custom"]["custom_details"]["author"], "alice");
    let description = t["description"].as_str().unwrap_or_default();
    assert!(description.contains("Where: checkout"), "{description}");
    assert!(description.contains("Link: Build 4711 <https://ci.example.net/4711>"));
    assert!(t["history"].to_string().contains("PagerDuty change event"));
}

#[test]
fn an_invalid_change_event_is_refused_as_pagerduty_does() {
    let d = Setup::new().start();
    let (status, answer) = d.post(
        "/v2/change/enqueue",
        r#"{"routing_key":"k","payload":{"timestamp":"later"},"links":[{"text":"no href"}]}"#,
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["status"], "invalid event");
    assert_eq!(answer["message"], "Event object is invalid");
    let errors = answer["errors"].to_string();
    assert!(
        errors.contains("'payload.summary' is missing or blank"),
        "{errors}"
    );
    assert!(
        errors.contains("'payload.timestamp' is not an ISO 8601 timestamp"),
        "{errors}"
    );
    assert!(
        errors.contains("'links[0].href' is missing or blank"),
        "{errors}"
    );
    let (status, _) = d.post("/v2/change/enqueue", "not json");
    assert_eq!(status, 400);
    assert!(changes(&d).is_empty(), "nothing recorded");
}

#[test]
fn an_incident_shows_the_changes_to_its_service_before_it_opened() {
    let d = Setup::new().start();
    let now = jiff::Timestamp::now();
    let hours = |h: i64| now - jiff::SignedDuration::from_hours(h);
    change(&d, "Deployed checkout v2.3.1", "checkout", hours(1));
    change(&d, "Deployed checkout v2.3.0", "checkout", hours(6));
    change(&d, "Deployed billing v9", "billing", hours(1));
    let alert = json!([{
        "labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"},
        "annotations": {"summary": "Checkout error rate above 5%"},
        "startsAt": now.to_string(),
    }]);
    let (status, _) = d.post("/api/v2/alerts", &alert.to_string());
    assert_eq!(status, 202);
    let incidents = d.get_ok("/api/v1/tickets?kind=incident")["tickets"].clone();
    let id = incidents[0]["id"].as_str().unwrap_or_default().to_string();
    let t = d.get_ok(&format!("/api/v1/tickets/{id}"));
    let recent = t["recent_changes"].as_array().cloned().unwrap_or_default();
    let summaries: Vec<&str> = recent
        .iter()
        .filter_map(|c| c["summary"].as_str())
        .collect();
    assert_eq!(
        summaries,
        ["Deployed checkout v2.3.1"],
        "within alerts.changes_window (4h) and of its service only: {t:#}"
    );
    assert_eq!(recent[0]["service"], "checkout");
    assert!(recent[0]["id"].as_str().is_some_and(|s| !s.is_empty()));
}
