//! Per-source alert policies (`[alerts.sources.NAME]`): what a resolve does (`resolve`,
//! `comment`, `nothing`), whether a re-fire reopens (`never`, `window`, `always`; some
//! resolutions never), by source name or wire format; and the correlation key's recipe
//! (`key_source`) on the ticket. Each cell through the real daemon.

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, incidents};

const CONFIG: &str = r#"
[alerts]
reopen_window = "1s"
[alerts.sources.quiet]
resolve = "nothing"
[alerts.sources.noted]
resolve = "comment"
[alerts.sources.once]
reopen = "never"
[alerts.sources.sticky]
reopen = "always"
[alerts.sources.pagerduty]
resolve = "nothing"
"#;

fn daemon() -> Daemon {
    Setup::new().config(CONFIG).start()
}

/// Sends a generic event from `source` for the alert labelled `k`; the ticket it went to.
fn send(d: &Daemon, source: &str, status: &str, k: &str) -> String {
    let body = json!({
        "source": source, "status": status, "severity": "critical",
        "summary": format!("{source} {k}"), "labels": {"k": k, "source": source},
    });
    let (code, r) = d.post("/api/v1/events", &body.to_string());
    assert_eq!(code, 202, "{r}");
    r["ticket"].as_str().unwrap_or_default().to_string()
}

fn ticket(d: &Daemon, id: &str) -> Value {
    d.get_ok(&format!("/api/v1/tickets/{id}"))
}

fn pause_past_the_window() {
    std::thread::sleep(std::time::Duration::from_millis(1300));
}

#[test]
fn resolve_policies_resolve_comment_or_do_nothing() {
    let d = daemon();
    // Default (no entry for "test"): resolve, as alerts.auto_resolve says.
    let id = send(&d, "test", "firing", "a");
    send(&d, "test", "resolved", "a");
    let t = ticket(&d, &id);
    assert_eq!(
        (t["state"].as_str(), t["resolution"].as_str()),
        (Some("resolved"), Some("alert_cleared"))
    );
    assert_eq!(t["key_source"], "fingerprint");

    let id = send(&d, "quiet", "firing", "b");
    send(&d, "quiet", "resolved", "b");
    let t = ticket(&d, &id);
    assert_eq!(t["state"], "new", "resolve = nothing leaves it open");
    assert_eq!(t["alert"]["status"], "resolved");
    assert!(!t["history"].to_string().contains("\"comment\""), "{t}");

    let id = send(&d, "noted", "firing", "c");
    send(&d, "noted", "resolved", "c");
    let t = ticket(&d, &id);
    assert_eq!(t["state"], "new", "resolve = comment leaves it open");
    let last = t["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["changes"][0]["field"], "comment", "{last}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("alerts.sources.noted.resolve"),
        "{last}"
    );
}

#[test]
fn reopen_policies_never_window_always() {
    let d = daemon();
    // window (the default): within it the same incident reopens; after it a new one, linked.
    let first = send(&d, "test", "firing", "w");
    send(&d, "test", "resolved", "w");
    assert_eq!(send(&d, "test", "firing", "w"), first);
    assert_eq!(ticket(&d, &first)["state"], "in_progress");
    send(&d, "test", "resolved", "w");
    pause_past_the_window();
    let later = send(&d, "test", "firing", "w");
    assert_ne!(later, first);
    assert_eq!(ticket(&d, &first)["state"], "resolved");

    // never: a new incident even at once.
    let a = send(&d, "once", "firing", "n");
    send(&d, "once", "resolved", "n");
    let b = send(&d, "once", "firing", "n");
    assert_ne!(a, b);
    assert_eq!(ticket(&d, &a)["state"], "resolved");

    // always: reopens after the window too.
    let s = send(&d, "sticky", "firing", "s");
    send(&d, "sticky", "resolved", "s");
    pause_past_the_window();
    assert_eq!(send(&d, "sticky", "firing", "s"), s);
    let t = ticket(&d, &s);
    assert_eq!(t["state"], "in_progress");
    assert!(
        t["history"]
            .to_string()
            .contains("alerts.sources.sticky.reopen = always"),
        "{t}"
    );
    assert_eq!(incidents(&d).len(), 5);
}

#[test]
fn an_incident_resolved_as_user_error_never_reopens() {
    let d = daemon();
    let id = send(&d, "sticky", "firing", "u");
    for body in [
        json!({"to": "in_progress", "reason": "checked by hand"}),
        json!({"to": "resolved", "reason": "checked by hand", "resolution": "user_error"}),
    ] {
        let (code, r) = d.post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &body.to_string(),
        );
        assert_eq!(code, 200, "{body}: {r}");
    }
    // Even with reopen = always, a re-fire opens a new incident.
    let again = send(&d, "sticky", "firing", "u");
    assert_ne!(again, id);
    assert_eq!(ticket(&d, &id)["resolution"], "user_error");
}

#[test]
fn a_format_policy_applies_to_its_senders_and_the_key_recipe_is_shown() {
    let d = daemon();
    let event = |action: &str| {
        json!({"routing_key": "k", "event_action": action, "dedup_key": "db/lag",
               "payload": {"summary": "lag", "source": "db", "severity": "error"}})
        .to_string()
    };
    assert_eq!(d.post("/v2/enqueue", &event("trigger")).0, 202);
    assert_eq!(d.post("/v2/enqueue", &event("resolve")).0, 202);
    let t = &incidents(&d)[0];
    let t = ticket(&d, t["id"].as_str().unwrap());
    assert_eq!(
        t["state"], "new",
        "alerts.sources.pagerduty.resolve = nothing"
    );
    assert_eq!(t["correlation_key"], "db/lag");
    assert_eq!(t["key_source"], "dedup_key");

    // A generic event's own key.
    let body = json!({"source": "test", "status": "firing", "severity": "info", "summary": "own", "key": "mine/1",
                      "labels": {"x": "1"}});
    let (_, r) = d.post("/api/v1/events", &body.to_string());
    let t = ticket(&d, r["ticket"].as_str().unwrap());
    assert_eq!(
        (t["correlation_key"].as_str(), t["key_source"].as_str()),
        (Some("mine/1"), Some("key"))
    );
}

#[test]
fn a_rules_key_is_shown_as_rule_and_its_file() {
    let d = Setup::new()
        .rules(&[(
            "group.rhai",
            r#"fn on_alert(alert, ticket) { ticket.key = "grp/" + alert.labels.g; }"#,
        )])
        .start();
    let body = json!({"source": "test", "status": "firing", "severity": "info", "summary": "g",
                      "labels": {"g": "one", "i": "1"}});
    let (code, r) = d.post("/api/v1/events", &body.to_string());
    assert_eq!(code, 202, "{r}");
    let t = ticket(&d, r["ticket"].as_str().unwrap());
    assert_eq!(t["correlation_key"], "grp/one");
    let source = t["key_source"].as_str().unwrap();
    assert!(
        source.starts_with("rule:") && source.contains("group.rhai"),
        "{source}"
    );
}
