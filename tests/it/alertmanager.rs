//! End to end with the real Alertmanager (Debian's `prometheus-alertmanager`): alerts posted
//! to Alertmanager reach itsmd through its webhook receiver and become incidents; when they
//! resolve in Alertmanager, the incidents resolve in itsmd.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{Daemon, Setup, free_port, groups_config, incidents, wait_until};

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, killed when dropped (also when a test fails).
pub struct Alertmanager {
    child: Child,
    pub url: String,
    http: reqwest::blocking::Client,
    _dir: TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts Alertmanager with one webhook receiver pointing at `itsmd`, grouping by
    /// alertname and instance, flushing groups every second and sending resolved alerts.
    fn start(itsmd: &Daemon) -> Alertmanager {
        Alertmanager::start_with(itsmd, &["--cluster.listen-address=".to_string()])
    }

    /// Starts Alertmanager as [`Alertmanager::start`] does, with `cluster` arguments (an HA
    /// pair: `--cluster.listen-address`, `--cluster.peer`; none: `--cluster.listen-address=`).
    pub fn start_with(itsmd: &Daemon, cluster: &[String]) -> Alertmanager {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: apt-get install prometheus-alertmanager (.ci/run does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            r#"route:
  receiver: itsmd
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: itsmd
    webhook_configs:
      - url: {}
        send_resolved: true
"#,
            itsmd.url("/webhook/alertmanager")
        );
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write config");
        let port = free_port();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(cluster)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn alertmanager");
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            _dir: dir,
        };
        am.wait_ready();
        am
    }

    fn wait_ready(&self) {
        let ready = || {
            self.http
                .get(format!("{}/-/ready", self.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
        };
        wait_until("Alertmanager to be ready", ready);
    }

    /// Alertmanager's own metrics text.
    pub fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    pub fn post_alerts(&self, alerts: Value) {
        let r = self
            .http
            .post(format!("{}/api/v2/alerts", self.url))
            .json(&alerts)
            .send()
            .expect("POST to Alertmanager");
        assert!(r.status().is_success(), "Alertmanager said {}", r.status());
    }
}

fn alert(instance: &str, ends_at: Option<String>) -> Value {
    let mut a = json!({
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": "critical", "team": "dba"},
        "annotations": {"summary": format!("Disk almost full on {instance}")},
        "generatorURL": "http://prometheus.example.org:9090/graph",
    });
    if let Some(end) = ends_at {
        a["endsAt"] = json!(end);
    }
    a
}

#[test]
fn alerts_through_a_real_alertmanager_open_and_resolve_incidents() {
    let d = Setup::new().config(&groups_config(&[("dba", &[])])).start();
    let am = Alertmanager::start(&d);

    am.post_alerts(json!([alert("db01:9100", None), alert("db02:9100", None)]));
    wait_until("two incidents", || incidents(&d).len() == 2);
    let opened = incidents(&d);
    for t in &opened {
        assert_eq!(t["state"], "new");
        assert_eq!(t["group"], "dba");
        assert_eq!(
            t["priority"].as_u64(),
            Some(2),
            "critical in an unknown env: high urgency, medium impact"
        );
        let id = t["id"].as_str().unwrap();
        let occurrence = &d.get_ok(&format!("/api/v1/tickets/{id}/alerts"))["alerts"][0];
        assert_eq!(occurrence["format"], "alertmanager");
        assert_eq!(
            occurrence["generator_url"],
            "http://prometheus.example.org:9090/graph"
        );
        assert_eq!(
            t["correlation_key"], occurrence["fingerprint"],
            "Alertmanager's fingerprint is Prometheus' hash"
        );
    }

    // Resolve db01 in Alertmanager: its end time is now.
    let now = jiff::Timestamp::now().to_string();
    am.post_alerts(json!([alert("db01:9100", Some(now))]));
    let state_of = |instance: &str| {
        incidents(&d)
            .into_iter()
            .find(|t| t["title"].as_str().is_some_and(|s| s.ends_with(instance)))
            .map(|t| t["state"].as_str().unwrap_or_default().to_string())
    };
    wait_until("db01's incident to resolve", || {
        state_of("db01:9100").as_deref() == Some("resolved")
    });
    assert_eq!(state_of("db02:9100").as_deref(), Some("new"));
    let resolved = incidents(&d)
        .into_iter()
        .find(|t| t["state"] == "resolved")
        .unwrap();
    assert_eq!(resolved["resolution"], "alert_cleared");

    let now = jiff::Timestamp::now().to_string();
    am.post_alerts(json!([alert("db02:9100", Some(now))]));
    wait_until("db02's incident to resolve", || {
        state_of("db02:9100").as_deref() == Some("resolved")
    });
    assert_eq!(incidents(&d).len(), 2, "no incident opened twice");
}
