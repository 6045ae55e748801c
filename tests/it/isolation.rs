//! A replay runs a second engine inside the daemon: it must leave the daemon's metrics as
//! they were, and what it logs must carry the `replay` span so nobody mistakes its "Group
//! lead notified." for a real one.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{BIN, Daemon, Setup, alert, groups_config};

/// Routes every alert to `one`, whose lead hears of every new alert and every SLA stage.
const RULES: &[(&str, &str)] = &[
    (
        "10-route.rhai",
        r#"fn on_alert(a, t) { t.group = "one"; t.notify_lead(`alert ${a.summary}`); }"#,
    ),
    (
        "20-clock.rhai",
        r#"fn on_clock(t, c) { t.notify_lead(`${c.name} ${c.stage} on ${t.id}`); }"#,
    ),
];

/// Tiny targets: every stage of both clocks fires within about two seconds.
const TINY: &str = r#"
[[sla.policies]]
name = "tiny"
kinds = ["incident"]
response = "1s"
resolution = "2s"
warnings = [50]
"#;

const TICKETS: usize = 2;
/// Response and resolution, a warning and a breach each.
const STAGES_PER_TICKET: usize = 4;
/// The lead hears of the alert and of each stage.
const NOTIFIED: usize = TICKETS * (1 + STAGES_PER_TICKET);

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has_span(line: &Value, name: &str) -> bool {
    line["spans"]
        .as_array()
        .is_some_and(|spans| spans.iter().any(|s| s["name"] == name))
}

fn lead_notified(d: &Daemon) -> Vec<Value> {
    d.logs()
        .into_iter()
        .filter(|l| l["message"] == "Group lead notified.")
        .collect()
}

/// The metrics text without the HTTP request counters: the `/metrics` scrapes and the
/// replay POSTs themselves are counted there, so those lines (and only those) differ.
fn engine_metrics(d: &Daemon) -> String {
    d.metrics()
        .lines()
        .filter(|l| !l.starts_with("itsmd_http_requests_total{"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn replays_leave_the_daemons_metrics_unchanged_and_log_under_their_own_span() {
    let config = groups_config(&[("one", &["ann"])])
        .replace("[groups.one]\n", "[groups.one]\nlead = \"ann\"\n")
        + TINY;
    let setup = Setup::new().rules(RULES).config(&config);
    let d = setup.start();
    for n in 0..TICKETS {
        let (status, r) = d.post(
            "/api/v1/events",
            &alert("firing", "disk full", json!({ "n": n.to_string() })),
        );
        assert_eq!(status, 202, "{r}");
    }
    wait_until("every SLA stage to fire", || {
        lead_notified(&d).len() >= NOTIFIED
    });
    wait_until("no SLA timer left", || {
        d.metrics().contains("itsmd_sla_timers_pending 0")
    });
    // The last commit's batch metrics are counted after its log lines: wait until still.
    let mut before = engine_metrics(&d);
    wait_until("the metrics to settle", || {
        std::thread::sleep(Duration::from_millis(200));
        let now = engine_metrics(&d);
        let still = now == before;
        before = now;
        still
    });
    let breaches = r#"itsmd_sla_stages_total{policy="tiny",clock="resolution",stage="breach"} 2"#;
    assert!(before.contains(breaches), "{before}");
    assert!(
        before.contains(r#"itsmd_rule_evaluations_total{rule="20-clock.rhai",hook="on_clock"} 8"#),
        "{before}"
    );
    assert!(before.contains("itsmd_batch_size_count "), "{before}");

    let rules: serde_json::Map<String, Value> = RULES
        .iter()
        .map(|(name, text)| (name.to_string(), json!(text)))
        .collect();
    for _ in 0..2 {
        let (status, report) = d.post(
            "/api/v1/admin/replay",
            &json!({ "rules": rules }).to_string(),
        );
        assert_eq!(status, 200, "{report}");
        // The alerts and the SLA timer events (whether the replay fires the stages again is
        // not what this test is about).
        assert_eq!(
            report["events"],
            json!(TICKETS * (1 + STAGES_PER_TICKET)),
            "{report}"
        );
    }

    let after = engine_metrics(&d);
    assert_eq!(
        before, after,
        "replays counted into the daemon's metrics (http_requests lines left out)"
    );

    // The replays notified the lead too, in memory; those lines say they were a replay.
    let replayed = |d: &Daemon| {
        lead_notified(d)
            .iter()
            .filter(|l| has_span(l, "replay"))
            .count()
    };
    wait_until("the replays' log lines", || replayed(&d) >= 2 * TICKETS);
    let lines = lead_notified(&d);
    let real = lines.iter().filter(|l| !has_span(l, "replay")).count();
    assert_eq!(real, NOTIFIED, "only the daemon's own: {lines:#?}");
    let engines: Vec<Value> = d
        .logs()
        .into_iter()
        .filter(|l| l["message"] == "Engine started.")
        .collect();
    assert_eq!(
        engines.len(),
        3,
        "the daemon's and two replays': {engines:#?}"
    );
    assert_eq!(
        engines.iter().filter(|l| has_span(l, "replay")).count(),
        2,
        "{engines:#?}"
    );
}

#[test]
fn rules_test_logs_its_engines_under_its_own_span() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let out = Command::new(BIN)
        .args(["--log-format", "json", "rules", "test", rules])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let started: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "Engine started.")
        .collect();
    assert!(!started.is_empty(), "{lines:#?}");
    assert!(
        started.iter().all(|l| has_span(l, "rules_test")),
        "{started:#?}"
    );
}
