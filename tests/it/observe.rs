//! What operators watch: /metrics and /readyz.

use serde_json::json;

use crate::support::{Daemon, Setup, alert};

fn metrics(d: &Daemon) -> String {
    let r = d.http.get(d.url("/metrics")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    r.text().unwrap()
}

/// The value of the sample whose name-and-labels part is exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn metrics_count_intake_outcomes_tickets_rules_and_commits() {
    let setup = Setup::new();
    let d = setup.start();
    d.post("/api/v1/events", &alert("firing", "a", json!({"a": "1"})));
    d.post("/api/v1/events", &alert("firing", "a", json!({"a": "1"})));
    d.post("/api/v1/events", &alert("firing", "b", json!({"b": "1"})));
    d.post("/api/v1/events", "{not json");

    let text = metrics(&d);
    assert_eq!(
        sample(&text, r#"itsmd_events_received_total{source="generic"}"#),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"itsmd_events_accepted_total{source="generic"}"#),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"itsmd_events_rejected_total{source="generic",reason="invalid_json"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"itsmd_tickets{kind="incident",state="new"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"itsmd_rule_evaluations_total{rule="00-defaults.rhai",hook="on_alert"}"#
        ),
        Some(3.0)
    );
    assert_eq!(sample(&text, "itsmd_batch_size_count"), Some(3.0));
    assert!(sample(&text, "itsmd_commit_seconds_sum").is_some());
    assert_eq!(sample(&text, "itsmd_queue_depth"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            r#"itsmd_http_requests_total{route="/api/v1/events",status="202"}"#
        ),
        Some(3.0)
    );

    // Ticket counts are stored with the tickets, so they are right after a restart.
    assert!(d.terminate().success());
    let d = setup.start();
    let text = metrics(&d);
    assert_eq!(
        sample(&text, r#"itsmd_tickets{kind="incident",state="new"}"#),
        Some(2.0),
        "{text}"
    );
}

#[test]
fn metrics_count_rule_errors_per_rule_file() {
    let d = Setup::new()
        .rules(&[("10-bad.rhai", "fn on_alert(a, t) { throw \"no\"; }")])
        .start();
    d.post("/api/v1/events", &alert("firing", "a", json!({})));
    let text = metrics(&d);
    assert_eq!(
        sample(
            &text,
            r#"itsmd_rule_errors_total{rule="10-bad.rhai",hook="on_alert"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn readyz_is_ready_while_the_engine_runs() {
    let d = Setup::new().start();
    let body = d.get_ok("/readyz");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["rules_version"], d.get_ok("/healthz")["rules_version"]);
}

/// The human log format written to a pipe (journald, a file) carries no terminal escape
/// codes: colour is for terminals only.
#[test]
fn the_human_log_to_a_pipe_has_no_escape_codes() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let listening = line.contains("Listening.");
        seen.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("Listening.")),
        "the daemon started: {seen:#?}"
    );
    assert!(
        seen.iter().all(|l| !l.contains('\u{1b}')),
        "no escape codes: {seen:#?}"
    );
}
