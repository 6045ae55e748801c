//! The daemon's own life: restarts, graceful shutdown, backpressure, health.

use std::time::Duration;

use serde_json::json;

use crate::support::{Setup, alert, wait_until};

#[test]
fn a_restart_sees_every_acknowledged_event_and_ticket() {
    let setup = Setup::new();
    let d = setup.start();
    for i in 0..3 {
        let (status, _) = d.post(
            "/api/v1/events",
            &alert("firing", "x", json!({"i": i.to_string()})),
        );
        assert_eq!(status, 202);
    }
    d.post("/api/v1/events", &alert("firing", "x", json!({"i": "0"})));
    let status = d.terminate();
    assert!(status.success(), "exit status {status}");

    let d = setup.start();
    let list = d.get_ok("/api/v1/tickets");
    assert_eq!(list["tickets"].as_array().unwrap().len(), 3);
    assert_eq!(d.get_ok("/api/v1/tickets/INC-000001")["alert"]["count"], 2);
    // Counters continue: the next ticket and event ids do not reuse old ones.
    let (_, r) = d.post("/api/v1/events", &alert("firing", "x", json!({"i": "new"})));
    assert_eq!(r["ticket"], "INC-000004");
    assert_eq!(r["event_id"], 5);
}

#[test]
fn an_acknowledged_event_survives_a_crash() {
    let setup = Setup::new();
    let d = setup.start();
    let (status, r) = d.post(
        "/api/v1/events",
        &alert("firing", "x", json!({"crash": "1"})),
    );
    assert_eq!(status, 202);
    d.kill();
    let d = setup.start();
    assert_eq!(
        d.get_ok(&format!(
            "/api/v1/tickets/{}",
            r["ticket"].as_str().unwrap()
        ))["state"],
        "new"
    );
}

/// A store that checkpoints after 1 MiB.
const CHECKPOINT_SOON: &str = "[store]\ncheckpoint_mb = 1\n";

/// A 32 KiB description: 40 alerts with it write some 2 MiB (journal, ticket, history).
fn long_description() -> String {
    "disk ".repeat(32 * 1024 / 5)
}

/// Sends 40 alerts with long descriptions, each acknowledged and each a new incident (the
/// `from`th to the `from + 39`th).
fn send_two_mib(d: &crate::support::Daemon, from: usize) {
    for i in from..from + 40 {
        let body = json!({
            "source": "test", "status": "firing", "severity": "critical",
            "summary": format!("disk {i}"), "description": long_description(),
            "labels": {"instance": format!("db{i}")},
        });
        let (status, r) = d.post("/api/v1/events", &body.to_string());
        assert_eq!(status, 202, "{r}");
    }
}

#[test]
fn a_quiet_daemon_checkpoints_its_store_keeps_serving_and_a_restart_finds_everything() {
    let setup = Setup::new().config(CHECKPOINT_SOON);
    let d = setup.start();
    send_two_mib(&d, 0);
    wait_until("a checkpoint", || {
        d.metric("itsmd_store_checkpoints_total") >= 1.0
    });
    let line = d.wait_for_log(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Store checkpointed"))
    });
    assert_eq!(line["busy"], false, "{line}");
    assert!(line["replayed_mib"].as_u64().unwrap() >= 1, "{line}");
    assert!(d.metric("itsmd_store_checkpoint_seconds_total") > 0.0);

    // The reopened store reads and writes.
    assert_eq!(d.get_ok("/api/v1/tickets/INC-000040")["title"], "disk 39");
    let (status, r) = d.post(
        "/api/v1/events",
        &alert("firing", "after", json!({"i": "after"})),
    );
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["ticket"], "INC-000041");
    assert!(d.terminate().success());

    let d = setup.start();
    let list = d.get_ok("/api/v1/tickets?limit=100");
    assert_eq!(list["tickets"].as_array().unwrap().len(), 41);
    assert_eq!(
        d.get_ok("/api/v1/tickets/INC-000001")["description"],
        long_description()
    );
}

/// SIGKILL while a checkpoint's reopen writes sled's snapshot (the test failpoint stops the
/// daemon inside that window): the next start opens the store, and every acknowledged event
/// is there.
///
/// The failpoint stops the process from a file watch, so on a busy machine the stop can come
/// after sled has finished and renamed its snapshot (seen once in CI). Such a round did not
/// test the window: the daemon is continued, sent another 2 MiB, and stopped at the next
/// checkpoint, up to eight rounds; the kill always falls inside the window.
#[test]
fn an_acknowledged_event_survives_a_kill_during_a_checkpoint() {
    let setup = Setup::new().config(CHECKPOINT_SOON);
    let d = setup.start_with(&[], &[("ITSMD_FAILPOINT", "stop-in-snapshot")]);
    let pid = d.pid() as u32;
    let generating = || {
        std::fs::read_dir(setup.data_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".generating"))
            .count()
    };
    let mut sent = 0;
    loop {
        send_two_mib(&d, sent);
        sent += 40;
        wait_until(
            "the daemon stopped itself in the checkpoint's snapshot",
            || crate::support::process_state(pid) == Some('T'),
        );
        if generating() == 1 {
            break;
        }
        assert!(
            sent < 320,
            "stopped after every snapshot of 8, never while writing one"
        );
        d.signal(libc::SIGCONT);
        wait_until("the daemon continued", || {
            crate::support::process_state(pid) != Some('T')
        });
    }
    d.kill();

    let d = setup.start();
    let list = d.get_ok("/api/v1/tickets?limit=400");
    assert_eq!(list["tickets"].as_array().unwrap().len(), sent);
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/INC-{sent:06}"))["title"],
        format!("disk {}", sent - 1)
    );
    let errors: Vec<_> = d
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// A rule that keeps the engine busy for `ms` milliseconds per alert.
fn slow_rule(ms: u64) -> String {
    format!(
        "fn on_alert(alert, ticket) {{ let t = timestamp(); while t.elapsed * 1000.0 < {ms}.0 {{ }} }}"
    )
}

const SLOW_LIMITS: &str = "[rules]\ntime_budget_ms = 10000\nmax_operations = 10000000000\n";

#[test]
fn shutdown_drains_in_flight_events_before_exiting() {
    let rule = slow_rule(150);
    let setup = Setup::new()
        .rules(&[("10-slow.rhai", &rule)])
        .config(SLOW_LIMITS);
    let d = std::sync::Arc::new(setup.start());
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || {
                d.post(
                    "/api/v1/events",
                    &alert("firing", "x", json!({"i": i.to_string()})),
                )
                .0
            })
        })
        .collect();
    // All four are queued behind the slow rule when the signal arrives.
    std::thread::sleep(Duration::from_millis(200));
    d.signal(libc::SIGTERM);
    let statuses: Vec<u16> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    assert_eq!(statuses, vec![202; 4]);
    let d = std::sync::Arc::into_inner(d).expect("sole owner");
    assert!(d.wait().success());

    let d = setup.start();
    assert_eq!(
        d.get_ok("/api/v1/tickets")["tickets"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let rule = slow_rule(1500);
    let setup = Setup::new()
        .rules(&[("10-slow.rhai", &rule)])
        .config(&format!(
            "[engine]\nqueue_capacity = 1\nmax_batch = 1\nretry_after_secs = 7\n{SLOW_LIMITS}"
        ));
    let d = std::sync::Arc::new(setup.start());
    let post = |i: u32| {
        let d = d.clone();
        std::thread::spawn(move || {
            d.post(
                "/api/v1/events",
                &alert("firing", "x", json!({"i": i.to_string()})),
            )
            .0
        })
    };
    // The first event occupies the engine, the second fills the queue of one.
    let first = post(1);
    std::thread::sleep(Duration::from_millis(300));
    let second = post(2);
    std::thread::sleep(Duration::from_millis(300));
    let r = d
        .http
        .post(d.url("/api/v1/events"))
        .body(alert("firing", "x", json!({"i": "3"})))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "7");
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    // The accepted ones still complete.
    assert_eq!(first.join().unwrap(), 202);
    assert_eq!(second.join().unwrap(), 202);
    assert_eq!(
        d.get_ok("/api/v1/tickets")["tickets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn healthz_reports_the_rule_set_version() {
    let d = Setup::new()
        .rules(&[("a.rhai", "fn on_alert(a, t) {}")])
        .start();
    let h = d.get_ok("/healthz");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["rules_version"].as_str().unwrap().len(), 16);
    let d2 = Setup::new()
        .rules(&[("a.rhai", "fn on_alert(a, t) { }")])
        .start();
    assert_ne!(d2.get_ok("/healthz")["rules_version"], h["rules_version"]);
}
