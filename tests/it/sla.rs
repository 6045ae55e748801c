//! SLA clocks in the real daemon: timers that fell due while it was down fire at start, in
//! due order, once; a new timer wakes the sleeping clock task; the ticket's SLA view, the
//! metrics and `itsmd report` show what happened. Targets are a few seconds on the 24x7
//! calendar, polled with a deadline.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{BIN, Daemon, Setup, alert};

/// Every incident gets a 4 s response and 5 s resolution target, warning at 75 %.
const FAST: &str = r#"
[groups.triage]
[groups.operations]

[[sla.policies]]
name = "fast"
kinds = ["incident"]
response = "4s"
resolution = "5s"
warnings = [75]
"#;

/// (clock, stage) of each SLA stage in the ticket's history, in order.
fn fired(d: &Daemon, id: &str) -> Vec<(String, String)> {
    let history = d.get_ok(&format!("/api/v1/tickets/{id}/history"));
    history
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["changes"].as_array().unwrap().clone())
        .filter(|c| c["field"] == "sla_stage")
        .map(|c| {
            (
                c["new"]["clock"].as_str().unwrap().to_string(),
                c["new"]["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn clock<'a>(sla: &'a Value, name: &str) -> &'a Value {
    sla["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} clock in {sla}"))
}

#[test]
fn timers_due_while_down_fire_once_at_start_and_new_ones_wake_the_clock_task() {
    let setup = Setup::new().config(FAST);
    let d = setup.start();
    let opened = Instant::now();
    let (status, r) = d.post(
        "/api/v1/events",
        &alert("firing", "disk full", json!({"n": "1"})),
    );
    assert_eq!(status, 202, "{r}");
    let id = r["ticket"].as_str().unwrap().to_string();
    let sla = d.get_ok(&format!("/api/v1/tickets/{id}/sla"));
    assert_eq!(sla["policy"], "fast");
    assert_eq!(clock(&sla, "resolution")["phase"], "running");
    assert_eq!(clock(&sla, "resolution")["target_secs"], 5);
    assert_eq!(sla["timers"].as_array().unwrap().len(), 4);
    assert!(
        fired(&d, &id).is_empty(),
        "the first stage is due 3 s after opening"
    );
    let status = d.terminate();
    assert!(status.success());

    // Every timer falls due while the daemon is down.
    let overdue = Duration::from_millis(5_500);
    std::thread::sleep(overdue.saturating_sub(opened.elapsed()));
    let d = setup.start();
    wait_until("the four stages to fire", || fired(&d, &id).len() >= 4);
    let stages = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .collect()
    };
    assert_eq!(
        fired(&d, &id),
        stages(&[
            ("response", "warning"),
            ("resolution", "warning"),
            ("response", "breach"),
            ("resolution", "breach"),
        ]),
        "in due order, each once"
    );
    let sla = d.get_ok(&format!("/api/v1/tickets/{id}/sla"));
    let resolution = clock(&sla, "resolution");
    assert_eq!(resolution["breached"], true);
    assert!(resolution["remaining_secs"].as_i64().unwrap() <= 0);
    assert_eq!(resolution["segments"][0]["state"], "running");
    assert_eq!(
        sla["escalation"], 2,
        "the shipped rule escalates each breach"
    );
    assert!(sla["timers"].as_array().unwrap().is_empty());
    let m = d.metrics();
    assert!(
        m.contains(r#"itsmd_sla_stages_total{policy="fast",clock="resolution",stage="breach"} 1"#),
        "{m}"
    );
    assert!(
        m.contains("itsmd_sla_timers_pending 0"),
        "nothing left to fire: {m}"
    );

    // The clock task now sleeps with nothing to do; a new ticket's timers must wake it.
    let (_, r) = d.post(
        "/api/v1/events",
        &alert("firing", "cpu hot", json!({"n": "2"})),
    );
    let second = r["ticket"].as_str().unwrap().to_string();
    wait_until("the second ticket's response breach", || {
        fired(&d, &second).contains(&("response".into(), "breach".into()))
    });
    assert_eq!(
        fired(&d, &id).len(),
        4,
        "the first ticket's stages did not fire again"
    );

    // The report shows both breaches of the first ticket, as a table and as JSON.
    let report = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("report")
            .args(args)
            .args(["--server", &d.url(""), "--last", "1h"])
            .env_remove("ITSMD_TOKEN")
            .output()
            .expect("run itsmd report");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = report(&["breaches"]);
    assert!(text.contains("Breaches"), "{text}");
    assert_eq!(text.matches(id.as_str()).count(), 2, "{text}");
    let json: Value = serde_json::from_str(&report(&["escalations", "--json"])).unwrap();
    let levels: Vec<&Value> = json["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ticket"] == id.as_str())
        .map(|e| &e["level"])
        .collect();
    assert_eq!(levels, [&json!(1), &json!(2)]);
    let (status, body) = d.get("/api/v1/reports/nonsense");
    assert_eq!(status, 404, "{body}");
    let (status, body) = d.get("/api/v1/reports?from=tomorrow");
    assert_eq!(status, 400, "{body}");
}
