//! The request bodies the probe sends: one alert per request in the wire format of each
//! target, keyed so that a run's distinct keys can be counted against the tickets created.
//! They match `bench/single.lua` and `bench/storm.lua` in shape.

/// A wire format, with the path it is posted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// PagerDuty Events API v2 trigger (`POST /v2/enqueue`), keyed by `dedup_key`.
    Pagerduty,
    /// itsmd's generic event (`POST /api/v1/events`), keyed by its labels.
    Events,
    /// A one-alert Prometheus/Alertmanager batch (`POST /api/v2/alerts`), for Alertmanager.
    Am,
}

impl Kind {
    pub fn path(self) -> &'static str {
        match self {
            Kind::Pagerduty => "/v2/enqueue",
            Kind::Events => "/api/v1/events",
            Kind::Am => "/api/v2/alerts",
        }
    }

    /// The body of the alert with key `key` (unique within the run through `prefix`).
    pub fn body(self, prefix: &str, key: usize) -> String {
        match self {
            Kind::Pagerduty => format!(
                r#"{{"routing_key":"bench","event_action":"trigger","dedup_key":"{prefix}-{key}","payload":{{"summary":"probe {key}","source":"host-{key}","severity":"critical"}}}}"#
            ),
            Kind::Events => format!(
                r#"{{"source":"bench","status":"firing","severity":"critical","summary":"probe {key}","labels":{{"alertname":"Probe","id":"{prefix}-{key}"}}}}"#
            ),
            Kind::Am => format!(
                "[{}]",
                prometheus_alert("Probe", &format!("{prefix}-{key}"))
            ),
        }
    }
}

/// One Prometheus alert (the `/api/v2/alerts` element) for `instance`, firing since the
/// probe started, so a re-send is byte-for-byte the same alert, as Prometheus re-sends it.
pub fn prometheus_alert(alertname: &str, instance: &str) -> String {
    let starts = started();
    format!(
        r#"{{"labels":{{"alertname":"{alertname}","instance":"{instance}","severity":"warning"}},"annotations":{{"summary":"bench alert {instance}"}},"startsAt":"{starts}"}}"#
    )
}

/// When the probe started, as RFC 3339: the `startsAt` of every alert it sends.
fn started() -> &'static str {
    static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STARTED.get_or_init(|| {
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    })
}

/// A batch of `size` Prometheus alerts for keys `first..first + size`.
pub fn prometheus_batch(alertname: &str, first: usize, size: usize) -> String {
    let alerts: Vec<String> = (first..first + size)
        .map(|k| prometheus_alert(alertname, &format!("host-{k}")))
        .collect();
    format!("[{}]", alerts.join(","))
}
