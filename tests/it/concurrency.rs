//! Concurrent senders of the same alerts through the real daemon: three real Alertmanagers
//! (an HA pair clustered on loopback and a third on its own) notified of the same alerts at
//! the same moment, and 50 PagerDuty triggers racing with one dedup_key. Each alert must
//! become exactly one incident and no sender may get a 5xx.

use serde_json::{Value, json};

use crate::alertmanager::Alertmanager;
use crate::support::{Daemon, Setup, free_port, incidents, wait_until};

/// The sum of every series of `name` in itsmd's metrics.
fn total(d: &Daemon, name: &str) -> f64 {
    d.metrics()
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn am_alert(i: usize) -> Value {
    json!({
        "labels": {"alertname": "Saturation", "instance": format!("node{i:03}:9100"), "severity": "warning"},
        "annotations": {"summary": format!("node{i:03} saturated")},
    })
}

#[test]
fn three_alertmanagers_posting_the_same_group_open_one_incident_per_alert() {
    let d = Setup::new().start();
    let (p1, p2) = (free_port(), free_port());
    let cluster = |own: u16, peer: Option<u16>| {
        let mut args = vec![
            format!("--cluster.listen-address=127.0.0.1:{own}"),
            format!("--cluster.advertise-address=127.0.0.1:{own}"),
            "--cluster.settle-timeout=1s".to_string(),
            "--cluster.peer-timeout=1s".to_string(),
            "--cluster.gossip-interval=100ms".to_string(),
        ];
        if let Some(p) = peer {
            args.push(format!("--cluster.peer=127.0.0.1:{p}"));
        }
        args
    };
    let ams = [
        Alertmanager::start_with(&d, &cluster(p1, Some(p2))),
        Alertmanager::start_with(&d, &cluster(p2, Some(p1))),
        Alertmanager::start_with(&d, &["--cluster.listen-address=".to_string()]),
    ];
    let members = |am: &Alertmanager| {
        am.metrics()
            .lines()
            .find_map(|l| {
                l.strip_prefix("alertmanager_cluster_members ")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    wait_until("the HA pair to form one cluster", || {
        members(&ams[0]) == 2.0 && members(&ams[1]) == 2.0
    });
    let alerts = json!((0..100).map(am_alert).collect::<Vec<_>>());
    // The same 100 alerts to all three at the same moment.
    std::thread::scope(|s| {
        for am in &ams {
            let alerts = alerts.clone();
            s.spawn(move || am.post_alerts(alerts));
        }
    });
    wait_until("100 incidents", || incidents(&d).len() >= 100);
    // Alertmanager groups by alertname and instance: 100 webhooks from the pair (which
    // deduplicates between its members) and 100 from the third, racing.
    wait_until("the webhooks of the pair and of the third", || {
        total(&d, "itsmd_events_received_total{source=\"alertmanager\"}") >= 200.0
    });
    let all = incidents(&d);
    assert_eq!(all.len(), 100, "exactly one incident per alert");
    let mut titles: Vec<&str> = all.iter().filter_map(|t| t["title"].as_str()).collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 100);
    assert_eq!(
        total(&d, "itsmd_events_rejected_total"),
        0.0,
        "no request refused: {}",
        d.metrics()
    );
    for am in &ams {
        let failed: f64 = am
            .metrics()
            .lines()
            .filter(|l| l.starts_with("alertmanager_notifications_failed_total{"))
            .filter(|l| l.contains("webhook"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(failed, 0.0, "Alertmanager {} saw failed webhooks", am.url);
    }
}

#[test]
fn fifty_concurrent_pagerduty_triggers_with_one_dedup_key_open_one_incident() {
    let d = Setup::new().start();
    let body = json!({
        "routing_key": "k", "event_action": "trigger", "dedup_key": "checkout/5xx",
        "payload": {"summary": "Checkout 5xx above 5%", "source": "checkout", "severity": "critical"}
    })
    .to_string();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(|| d.post("/v2/enqueue", &body).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let all = incidents(&d);
    assert_eq!(all.len(), 1, "{all:#?}");
    let alerts = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        all[0]["id"].as_str().unwrap_or_default()
    ));
    assert_eq!(alerts["alert"]["count"], 50, "{alerts:#}");
}
