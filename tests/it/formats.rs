//! The monitoring wire formats over HTTP, fed with the captured and constructed fixtures:
//! Prometheus' Alertmanager API, Alertmanager and Grafana webhooks, PagerDuty Events v2
//! (and Zabbix' PagerDuty media type).

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::support::{Daemon, Setup, fixture};

/// A Prometheus capture replayed as if sent now: every timestamp moved by the time since
/// it was captured, so "endsAt in the past" means what it meant then.
fn replayed_now(name: &str) -> String {
    let meta: Value =
        serde_json::from_str(&fixture(&format!("prometheus/{name}.meta.json"))).unwrap();
    let captured =
        Timestamp::from_millisecond((meta["captured_unix"].as_f64().unwrap() * 1000.0) as i64)
            .unwrap();
    let shift = captured.duration_until(Timestamp::now());
    let mut body: Value =
        serde_json::from_str(&fixture(&format!("prometheus/{name}.json"))).unwrap();
    for alert in body.as_array_mut().unwrap() {
        for field in ["startsAt", "endsAt"] {
            let t: Timestamp = alert[field].as_str().unwrap().parse().unwrap();
            alert[field] = json!(t.checked_add(shift).unwrap().to_string());
        }
    }
    body.to_string()
}

fn accepted(d: &Daemon, path: &str, body: &str) -> Vec<Value> {
    let (status, r) = d.post(path, body);
    assert_eq!(status, 202, "{r}");
    r["receipts"].as_array().unwrap().clone()
}

fn history_len(d: &Daemon, id: &str) -> usize {
    d.get_ok(&format!("/api/v1/tickets/{id}/history"))
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn prometheus_fires_resends_resolves_and_refires_one_incident() {
    let d = Setup::new().start();
    let firing = replayed_now("prom2.42_post_api_v2_alerts_firing");
    let r = accepted(&d, "/api/v2/alerts", &firing);
    assert_eq!(r[0]["outcome"], "opened");
    let id = r[0]["ticket"].as_str().unwrap().to_string();
    let t = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(
        t["correlation_key"],
        t["alert"]["alerts"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .as_str()
    );
    let occurrences = d.get_ok(&format!("/api/v1/tickets/{id}/alerts"));
    let first = &occurrences["alerts"][0];
    assert_eq!(first["format"], "prometheus");
    assert_eq!(first["labels"]["service"], "checkout");
    assert!(
        first["generator_url"]
            .as_str()
            .unwrap()
            .starts_with("http://vm:19090/graph")
    );
    assert!(first["starts_at"].is_string() && first["ends_at"].is_string());

    // Prometheus re-sends the same firing alert every minute: seen, nothing else written.
    let before = history_len(&d, &id);
    let again = accepted(&d, "/api/v2/alerts", &firing);
    assert_eq!(again[0]["outcome"], "seen");
    assert_eq!(again[0]["event_id"], r[0]["event_id"]);
    assert_eq!(history_len(&d, &id), before);
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{id}/alerts"))["alerts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let resolved = accepted(
        &d,
        "/api/v2/alerts",
        &replayed_now("prom2.42_post_api_v2_alerts_resolved"),
    );
    assert_eq!(resolved[0]["outcome"], "updated");
    let t = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(
        (t["state"].as_str(), t["resolution"].as_str()),
        (Some("resolved"), Some("alert_cleared"))
    );

    let refired = accepted(
        &d,
        "/api/v2/alerts",
        &replayed_now("prom2.42_post_api_v2_alerts_refired"),
    );
    assert_eq!(
        (
            refired[0]["outcome"].as_str(),
            refired[0]["ticket"].as_str()
        ),
        (Some("reopened"), Some(id.as_str()))
    );
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{id}"))["state"],
        "in_progress"
    );
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{id}/alerts"))["alerts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn alertmanager_webhooks_keep_fingerprints_and_resolve_their_incidents() {
    let d = Setup::new().start();
    let r = accepted(
        &d,
        "/webhook/alertmanager",
        &fixture("alertmanager/am0.25_webhook_v4_firing_2alerts.json"),
    );
    assert_eq!(r.len(), 2);
    let (db01, db02) = (
        r[0]["ticket"].as_str().unwrap(),
        r[1]["ticket"].as_str().unwrap(),
    );
    assert_ne!(db01, db02);
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{db01}"))["correlation_key"],
        "6d06c5ad803017b7"
    );
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{db02}"))["correlation_key"],
        "ca3057b70fb878d8"
    );

    // db01 still firing (same start: a repeat), db02 resolved.
    let r = accepted(
        &d,
        "/webhook/alertmanager",
        &fixture("alertmanager/am0.25_webhook_v4_firing_mixed_1firing_1resolved.json"),
    );
    assert_eq!(r[0]["outcome"], "seen");
    assert_eq!(r[1]["outcome"], "updated");
    assert_eq!(d.get_ok(&format!("/api/v1/tickets/{db01}"))["state"], "new");
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{db02}"))["state"],
        "resolved"
    );

    accepted(
        &d,
        "/webhook/alertmanager",
        &fixture("alertmanager/am0.25_webhook_v4_resolved.json"),
    );
    let t = d.get_ok(&format!("/api/v1/tickets/{db01}"));
    assert_eq!(t["state"], "resolved");
    let last = t["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"],
        json!({"type": "system", "component": "correlation"})
    );
    let occurrences = d.get_ok(&format!("/api/v1/tickets/{db01}/alerts"));
    let formats: Vec<_> = occurrences["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["format"].clone())
        .collect();
    assert_eq!(formats, vec![json!("alertmanager"), json!("alertmanager")]);
}

#[test]
fn grafana_alerts_correlate_by_grafanas_own_fingerprint() {
    let d = Setup::new().start();
    let r = accepted(
        &d,
        "/webhook/alertmanager",
        &fixture("grafana/grafana_webhook_v1_firing_CONSTRUCTED.json"),
    );
    let id = r[0]["ticket"].as_str().unwrap();
    let t = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(t["correlation_key"], "0b2f2c9e6a4d1f37");
    assert_eq!(t["title"], "CPU above 90% on web01:9100");
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{id}/alerts"))["alerts"][0]["format"],
        "grafana"
    );
    let r = accepted(
        &d,
        "/webhook/alertmanager",
        &fixture("grafana/grafana_webhook_v1_resolved_CONSTRUCTED.json"),
    );
    assert_eq!(r[0]["ticket"].as_str(), Some(id));
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{id}"))["state"],
        "resolved"
    );
}

#[test]
fn pagerduty_trigger_acknowledge_resolve_answer_like_pagerduty() {
    let d = Setup::new().start();
    let (status, body) = d.post(
        "/v2/enqueue",
        &fixture("pagerduty/events_v2_trigger_allfields_CONSTRUCTED.json"),
    );
    assert_eq!(status, 202);
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "dedup_key": "payments-db/replication-lag"})
    );
    let list = d.get_ok("/api/v1/tickets");
    let t = &list["tickets"][0];
    let id = t["id"].as_str().unwrap();
    assert_eq!(t["correlation_key"], "payments-db/replication-lag");
    // No integration keys configured: the routing key is recorded as the source.
    assert_eq!(t["alert"]["source"], "0123456789abcdef0123456789abcdef");
    assert_eq!(
        t["urgency"], "high",
        "severity critical, as the default rule maps it"
    );

    let (status, _) = d.post(
        "/v2/enqueue",
        &fixture("pagerduty/events_v2_acknowledge_CONSTRUCTED.json"),
    );
    assert_eq!(status, 202);
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{id}"))["state"],
        "in_progress"
    );
    let (status, _) = d.post(
        "/v2/enqueue",
        &fixture("pagerduty/events_v2_resolve_CONSTRUCTED.json"),
    );
    assert_eq!(status, 202);
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{id}"))["state"],
        "resolved"
    );

    // A trigger without dedup_key gets one minted and returned; resolving with it works.
    let (status, body) = d.post(
        "/v2/enqueue",
        &fixture("pagerduty/events_v2_trigger_no_dedup_key_CONSTRUCTED.json"),
    );
    assert_eq!((status, body["status"].as_str()), (202, Some("success")));
    let minted = body["dedup_key"].as_str().unwrap().to_string();
    assert_eq!(minted.len(), 32);
    let (_, again) = d.post(
        "/v2/enqueue",
        &fixture("pagerduty/events_v2_trigger_no_dedup_key_CONSTRUCTED.json"),
    );
    assert_ne!(
        again["dedup_key"].as_str(),
        Some(minted.as_str()),
        "each trigger without a key is its own alert"
    );
    let resolve = json!({"routing_key": "k", "event_action": "resolve", "dedup_key": minted});
    let (status, _) = d.post("/v2/enqueue", &resolve.to_string());
    assert_eq!(status, 202);
    assert_eq!(d.get_ok("/api/v1/tickets/INC-000002")["state"], "resolved");
    assert_eq!(d.get_ok("/api/v1/tickets/INC-000003")["state"], "new");
}

#[test]
fn pagerduty_invalid_events_get_pagerdutys_error_shape_and_store_nothing() {
    let d = Setup::new().start();
    let (status, body) = d.post("/v2/enqueue", r#"{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"fatal"}}"#);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["'payload.severity' is \"fatal\"; must be one of critical, error, warning, info"],
        })
    );
    let (status, body) = d.post("/v2/enqueue", r#"{"routing_key":"k","#);
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("invalid event"))
    );
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON: EOF"),
        "{body}"
    );
    let (status, body) = d.post("/v2/enqueue", r#"{"event_action":"acknowledge"}"#);
    assert_eq!(status, 400);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(d.get_ok("/healthz")["events_processed"], 0);
}

#[test]
fn zabbix_through_a_configured_integration_key() {
    let setup = Setup::new().config(
        "[pagerduty]\nintegration_keys = { e93facc04764012d7bfb002500d5d1a6 = \"zabbix\" }\n",
    );
    let d = setup.start();
    let (status, body) = d.post(
        "/v2/enqueue",
        &fixture("pagerduty/events_v2_trigger_allfields_CONSTRUCTED.json"),
    );
    assert_eq!(status, 400, "a routing key not configured is refused");
    assert_eq!(
        body["errors"],
        json!(["'routing_key' is not a configured integration key or ingest token"])
    );

    let (status, body) = d.post(
        "/v2/enqueue",
        &fixture("zabbix/zabbix_pagerduty_mediatype_trigger_CONSTRUCTED.json"),
    );
    assert_eq!((status, body["dedup_key"].as_str()), (202, Some("12345")));
    let t = d.get_ok("/api/v1/tickets/INC-000001");
    assert_eq!(t["alert"]["source"], "zabbix");
    assert_eq!(
        t["title"],
        "Problem: High CPU utilization (over 90% for 5m)"
    );
    d.post(
        "/v2/enqueue",
        &fixture("zabbix/zabbix_pagerduty_mediatype_acknowledge_CONSTRUCTED.json"),
    );
    assert_eq!(
        d.get_ok("/api/v1/tickets/INC-000001")["state"],
        "in_progress"
    );
    d.post(
        "/v2/enqueue",
        &fixture("zabbix/zabbix_pagerduty_mediatype_resolve_CONSTRUCTED.json"),
    );
    assert_eq!(d.get_ok("/api/v1/tickets/INC-000001")["state"], "resolved");
    let occurrences = d.get_ok("/api/v1/tickets/INC-000001/alerts?limit=2");
    assert_eq!(occurrences["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(occurrences["alerts"][0]["format"], "pagerduty");
    let next = occurrences["next"].as_u64().unwrap();
    let rest = d.get_ok(&format!("/api/v1/tickets/INC-000001/alerts?after={next}"));
    assert_eq!(rest["alerts"].as_array().unwrap().len(), 1);
    assert!(rest.get("next").is_none());
    assert_eq!(rest["alerts"][0]["status"], "resolved");
}

#[test]
fn bad_alert_arrays_are_refused_whole_with_paths() {
    let d = Setup::new().start();
    let (status, body) = d.post(
        "/api/v2/alerts",
        r#"[{"labels":{"a":"1"}},{"labels":{"port":80}}]"#,
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"]["path"], "[1].labels.port");
    let (status, body) = d.post("/api/v2/alerts", r#"[{"labels":{"a":"1"}},{"labels":{}}]"#);
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"]["problems"],
        json!(["`[1].labels` must have at least one label"])
    );
    let (status, body) = d.post(
        "/webhook/alertmanager",
        r#"{"alerts":[{"status":"firing","labels":{"a":"1"},"startsAt":"soon"}]}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"]["path"], "alerts[0].startsAt");
    assert_eq!(d.get_ok("/healthz")["events_processed"], 0);
    let (status, body) = d.post("/api/v2/alerts", "[]");
    assert_eq!((status, body), (202, json!({"receipts": []})));
    let (status, _) = d.get("/api/v1/tickets/INC-000009/alerts");
    assert_eq!(status, 404);
}

#[test]
fn flapping_shows_on_the_ticket_and_to_rules() {
    let rule =
        "fn on_alert(alert, ticket) { if ticket.flapping { ticket.add_tag(\"flapping\"); } }";
    let setup = Setup::new()
        .rules(&[("10-flap.rhai", rule)])
        .config("[alerts]\nflap_changes = 3\nflap_window = \"1h\"\nflap_quiet = \"1h\"\n");
    let d = setup.start();
    let labels = json!({"alertname": "Flappy"});
    for status in ["firing", "resolved", "firing", "resolved", "firing"] {
        let (code, r) = d.post(
            "/api/v1/events",
            &crate::support::alert(status, "flappy", labels.clone()),
        );
        assert_eq!(code, 202, "{r}");
    }
    let t = d.get_ok("/api/v1/tickets/INC-000001");
    let until: Timestamp = t["alert"]["flapping_until"]
        .as_str()
        .expect("flagged")
        .parse()
        .unwrap();
    assert!(
        until
            > Timestamp::now()
                .checked_add(SignedDuration::from_mins(59))
                .unwrap()
    );
    assert_eq!(t["tags"], json!(["flapping"]));
    assert_eq!(
        t["state"], "in_progress",
        "reopened within the window, not a new incident"
    );
    assert_eq!(
        d.get_ok("/api/v1/tickets")["tickets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
