//! Alert expiry, as Alertmanager does it, end to end with the real Prometheus (Debian's
//! `prometheus`): an alert whose end passes without a re-send resolves its incident; one
//! posted without an end resolves after `alerts.resolve_timeout`; webhook alerts never expire.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{Daemon, Setup, free_port, incidents, wait_until};

const BINARY: &str = "/usr/bin/prometheus";

/// Short timeouts so the tests wait seconds, not minutes.
const CONFIG: &str = "[alerts]\nresolve_timeout = \"2s\"\n";

const RULE: &str = r#"groups:
  - name: itsmd-test
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels:
          severity: critical
          service: checkout
        annotations:
          summary: The checkout is always on fire
"#;

/// A running Prometheus evaluating every second and sending to itsmd; killed when dropped.
struct Prometheus {
    child: Option<Child>,
    rules: std::path::PathBuf,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Prometheus {
    fn start(itsmd: &Daemon) -> Prometheus {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: apt-get install prometheus (.ci/run does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules.yml");
        std::fs::write(&rules, RULE).expect("write rules");
        let config = format!(
            r#"global:
  evaluation_interval: 1s
  scrape_interval: 1m
rule_files: ["{}"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{}"]
"#,
            rules.display(),
            itsmd.addr
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write config");
        let port = free_port();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--rules.alert.resend-delay=1s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        Prometheus {
            child: Some(child),
            rules,
            _dir: dir,
        }
    }

    /// Removes every rule and reloads (SIGHUP), as an operator deleting the alert would.
    fn remove_rules(&self) {
        std::fs::write(&self.rules, "groups: []\n").expect("write rules");
        if let Some(c) = &self.child {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGHUP) };
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn history(d: &Daemon, id: &str) -> String {
    d.get_ok(&format!("/api/v1/tickets/{id}/history"))
        .to_string()
}

fn only_incident(d: &Daemon) -> Value {
    let all = incidents(d);
    assert_eq!(all.len(), 1, "exactly one incident: {all:#?}");
    all[0].clone()
}

fn opened_by_prometheus(d: &Daemon) -> String {
    wait_until("Prometheus' alert to open an incident", || {
        incidents(d).len() == 1
    });
    let t = only_incident(d);
    assert_eq!(t["title"], "The checkout is always on fire");
    assert_eq!(t["state"], "new");
    t["id"].as_str().unwrap_or_default().to_string()
}

fn state(d: &Daemon, id: &str) -> String {
    d.get_ok(&format!("/api/v1/tickets/{id}"))["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_real_prometheus_alert_stays_open_while_resent_and_resolves_when_its_rule_goes() {
    let d = Setup::new().config(CONFIG).start();
    let p = Prometheus::start(&d);
    let id = opened_by_prometheus(&d);
    // Prometheus re-sends every second with endsAt 4 s ahead: well past its first end and
    // the resolve timeout, the incident is still open and no second one was opened.
    let first_end = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(6);
    wait_until("six seconds of re-sends", || {
        jiff::Timestamp::now() > first_end
    });
    assert_eq!(state(&d, &id), "new", "{}", history(&d, &id));
    assert_eq!(incidents(&d).len(), 1);

    p.remove_rules();
    wait_until("the incident to resolve once the rule is gone", || {
        state(&d, &id) == "resolved"
    });
    let h = history(&d, &id);
    // Prometheus 2.42 sends no resolve for a rule removed by a reload: the alert expires.
    assert!(h.contains("expired, not re-sent since"), "{h}");
    assert_eq!(
        d.get_ok(&format!("/api/v1/tickets/{id}"))["resolution"],
        "alert_cleared"
    );
}

#[test]
fn a_prometheus_that_dies_leaves_alerts_that_expire() {
    let d = Setup::new().config(CONFIG).start();
    let mut p = Prometheus::start(&d);
    let id = opened_by_prometheus(&d);
    p.kill();
    wait_until("the alert to expire", || state(&d, &id) == "resolved");
    let h = history(&d, &id);
    assert!(h.contains("expired, not re-sent since"), "{h}");
}

fn api_alert(name: &str) -> String {
    json!([{
        "labels": {"alertname": name, "severity": "warning"},
        "annotations": {"summary": format!("{name} without an end")},
    }])
    .to_string()
}

#[test]
fn an_alert_without_an_end_expires_after_the_resolve_timeout_even_across_a_restart() {
    let setup = Setup::new().config("[alerts]\nresolve_timeout = \"3s\"\n");
    let d = setup.start();
    let (status, _) = d.post("/api/v2/alerts", &api_alert("NoEnd"));
    assert_eq!(status, 202);
    // A webhook alert (Alertmanager resolves its own) must never expire.
    let webhook = json!({
        "version": "4", "status": "firing", "receiver": "itsmd", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "labels": {"alertname": "Webhook", "severity": "warning"},
                    "annotations": {"summary": "Webhook alert"},
                    "startsAt": jiff::Timestamp::now().to_string(),
                    "endsAt": "0001-01-01T00:00:00Z"}]
    });
    let (status, _) = d.post("/webhook/alertmanager", &webhook.to_string());
    assert_eq!(status, 202);
    // The timer is durable: it fires after a restart.
    assert!(d.terminate().success());
    let d = setup.start();
    let find = |d: &Daemon, title: &str| {
        incidents(d)
            .into_iter()
            .find(|t| t["title"] == title)
            .unwrap_or_else(|| panic!("no incident {title}"))
    };
    wait_until("the alert without an end to expire", || {
        find(&d, "NoEnd without an end")["state"] == "resolved"
    });
    let id = find(&d, "NoEnd without an end")["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let h = history(&d, &id);
    assert!(h.contains("expired, not re-sent since"), "{h}");
    assert_eq!(find(&d, "Webhook alert")["state"], "new");
    // Its timer is gone, and a re-send fires it again (within the reopen window: reopens).
    let (status, _) = d.post("/api/v2/alerts", &api_alert("NoEnd"));
    assert_eq!(status, 202);
    wait_until("the re-fired alert to reopen", || {
        find(&d, "NoEnd without an end")["state"] == "in_progress"
    });
}

#[test]
fn a_generic_event_with_an_end_expires_at_it_and_one_without_stays() {
    let d = Setup::new().start();
    let event = |key: &str, ends_at: Option<jiff::Timestamp>| {
        let mut e = json!({
            "source": "backup-job", "key": key, "status": "firing",
            "severity": "warning", "summary": format!("{key} is late"),
        });
        if let Some(end) = ends_at {
            e["ends_at"] = json!(end.to_string());
        }
        let (status, answer) = d.post("/api/v1/events", &e.to_string());
        assert_eq!(status, 202, "{answer}");
        answer["ticket"].as_str().unwrap_or_default().to_string()
    };
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let ending = event("nightly", Some(soon));
    let staying = event("weekly", None);
    wait_until("the event with an end to expire", || {
        state(&d, &ending) == "resolved"
    });
    assert!(history(&d, &ending).contains("expired, not re-sent since"));
    assert_eq!(state(&d, &staying), "new");
}

#[test]
fn prometheus_re_sends_within_a_second_do_not_rewrite_the_alerts_end() {
    let d = Setup::new().start();
    let body = json!([{
        "labels": {"alertname": "Hammered", "severity": "warning"},
        "annotations": {"summary": "Re-sent in a loop"},
        "startsAt": jiff::Timestamp::now().to_string(),
    }])
    .to_string();
    let series = "itsmd_store_writes_total{tree=\"alert_ends\"}";
    let started = std::time::Instant::now();
    const SENDS: u32 = 20;
    for _ in 0..SENDS {
        let (status, answer) = d.post("/api/v2/alerts", &body);
        assert_eq!(status, 202, "{answer}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = d.metric(series);
    // Each post is its own batch: one write of the end per second of sending at most (and
    // the first), instead of one per post.
    assert!(writes >= 1.0, "the first send records the end: {writes}");
    assert!(
        writes <= 2.0 + elapsed.floor(),
        "{writes} writes of the alert's end for {SENDS} sends in {elapsed:.1} s"
    );
    assert_eq!(incidents(&d).len(), 1);
}
