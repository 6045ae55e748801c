//! What rules see of an alert event and of the ticket it goes to, through the real daemon:
//! `alert.action`, the existing ticket on a resolve, and fields a person set by hand that a
//! later alert's rules must not overwrite unless they `ticket.force` them.

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, groups_config, incidents};
use crate::tickets::send;

fn pd(d: &Daemon, action: &str, extra: Value) -> Value {
    let mut body = json!({"routing_key": "k", "event_action": action, "dedup_key": "db-disk"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, answer) = d.post("/v2/enqueue", &body.to_string());
    assert_eq!(status, 202, "{answer}");
    answer
}

fn only(d: &Daemon) -> Value {
    let all = incidents(d);
    assert_eq!(all.len(), 1, "{all:#?}");
    all[0].clone()
}

/// Records what each event was, for the test to read back.
const RECORD_ACTION: &str = r#"fn on_alert(alert, ticket) {
    ticket.set("last_action", alert.action);
}"#;

#[test]
fn a_pagerduty_acknowledge_keeps_the_priority_its_trigger_gave() {
    let d = Setup::new()
        .rules(&[
            (
                "00-defaults.rhai",
                include_str!("../../rules/00-defaults.rhai"),
            ),
            ("50-record.rhai", RECORD_ACTION),
        ])
        .start();
    pd(
        &d,
        "trigger",
        json!({"payload": {"summary": "Disk full on db01", "source": "db01", "severity": "critical"}}),
    );
    let t = only(&d);
    assert_eq!(
        (t["urgency"].clone(), t["priority"].clone()),
        (json!("high"), json!(2))
    );
    assert_eq!(t["custom"]["last_action"], "trigger");
    pd(&d, "acknowledge", json!({}));
    let t = only(&d);
    assert_eq!(t["state"], "in_progress");
    assert_eq!(t["custom"]["last_action"], "acknowledge");
    assert_eq!(
        (
            t["urgency"].clone(),
            t["priority"].clone(),
            t["group"].clone()
        ),
        (json!("high"), json!(2), json!("operations")),
        "an acknowledge carries no severity and changes no urgency"
    );
    pd(&d, "resolve", json!({}));
    let t = only(&d);
    assert_eq!(t["state"], "resolved");
    assert_eq!(t["custom"]["last_action"], "resolve");
    assert_eq!(t["priority"], 2);
}

fn prom(d: &Daemon, starts: &str, labels: Value, ends_at: Option<&str>) {
    let mut a = json!({
        "labels": labels,
        "annotations": {"summary": "Disk full on db01"},
        "startsAt": starts,
    });
    if let Some(e) = ends_at {
        a["endsAt"] = json!(e);
    }
    let (status, answer) = d.post("/api/v2/alerts", &json!([a]).to_string());
    assert_eq!(status, 202, "{answer}");
}

#[test]
fn fields_an_agent_set_survive_the_next_occurrence_unless_a_rule_forces_them() {
    let force = r#"fn on_alert(alert, ticket) {
    if alert.annotations.force == "yes" { ticket.force("group", "dba"); }
}"#;
    let d = Setup::new()
        .config(&groups_config(&[("dba", &[]), ("network", &[])]))
        .rules(&[
            (
                "00-defaults.rhai",
                include_str!("../../rules/00-defaults.rhai"),
            ),
            ("50-record.rhai", RECORD_ACTION),
            ("60-force.rhai", force),
        ])
        .start();
    let labels =
        json!({"alertname": "DiskFull", "instance": "db01", "severity": "critical", "team": "dba"});
    prom(&d, "2026-01-01T10:00:00Z", labels.clone(), None);
    let t = only(&d);
    let id = t["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        (t["group"].clone(), t["urgency"].clone()),
        (json!("dba"), json!("high"))
    );

    let (status, t) = send(
        &d,
        "PATCH",
        &format!("/api/v1/tickets/{id}"),
        &json!({"group": "network", "urgency": "low"}),
        None,
    );
    assert_eq!(status, 200, "{t}");
    // The same alert fires again (a new start: not a mere re-send) and once more as a re-send
    // Alertmanager-style; the rules assign group and urgency each time.
    prom(&d, "2026-01-01T11:00:00Z", labels.clone(), None);
    let t = only(&d);
    assert_eq!(t["custom"]["last_action"], "resend");
    assert_eq!(
        (t["group"].clone(), t["urgency"].clone()),
        (json!("network"), json!("low")),
        "set by hand: kept"
    );
    assert_eq!(t["set_by_hand"], json!(["group", "urgency"]), "{t:#}");

    // An annotation, so that it is the same alert (labels make its fingerprint).
    let forced = json!([{
        "labels": labels,
        "annotations": {"summary": "Disk full on db01", "force": "yes"},
        "startsAt": "2026-01-01T12:00:00Z",
    }]);
    let (status, _) = d.post("/api/v2/alerts", &forced.to_string());
    assert_eq!(status, 202);
    let t = only(&d);
    assert_eq!(t["group"], "dba", "a rule that forces wins");
    assert_eq!(t["urgency"], "low");
}

#[test]
fn a_second_resolve_keeps_the_title() {
    // A rule that titles every ticket it is shown as new: a resolve must show the real one.
    let title = r#"fn on_alert(alert, ticket) {
    if ticket.is_new { ticket.title = alert.summary; }
    ticket.set("last_action", alert.action);
}"#;
    let d = Setup::new().rules(&[("00-title.rhai", title)]).start();
    let labels = json!({"alertname": "DiskFull", "instance": "db01"});
    prom(&d, "2026-01-01T10:00:00Z", labels.clone(), None);
    let id = only(&d)["id"].as_str().unwrap_or_default().to_string();
    let (status, t) = send(
        &d,
        "PATCH",
        &format!("/api/v1/tickets/{id}"),
        &json!({"title": "db01: disk full (vendor case 123)"}),
        None,
    );
    assert_eq!(status, 200, "{t}");
    let end = "2026-01-01T10:05:00Z";
    prom(&d, "2026-01-01T10:00:00Z", labels.clone(), Some(end));
    assert_eq!(only(&d)["state"], "resolved");
    // Prometheus keeps sending the resolved alert for a while, and a sender may resolve with
    // another summary: the ticket keeps its title.
    let again = json!([{
        "labels": labels,
        "annotations": {"summary": "something else entirely"},
        "startsAt": "2026-01-01T09:00:00Z",
        "endsAt": end,
    }]);
    let (status, _) = d.post("/api/v2/alerts", &again.to_string());
    assert_eq!(status, 202);
    let t = only(&d);
    assert_eq!(t["title"], "db01: disk full (vendor case 123)");
    assert_eq!(t["custom"]["last_action"], "resolve");
}
