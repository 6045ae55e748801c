//! End to end: alert received → incident committed → vendor webhook delivered and verified.
//! The probe is the vendor too: a loopback receiver that checks each webhook's Standard
//! Webhooks signature (itsmd's own `vendors::signing::verify`, with the secret the daemon was
//! configured with) and notes when it arrived. Alerts go out open-loop at a fixed rate, each a
//! new key (so each opens an incident, which a bench rule notifies the vendor of); each
//! latency is measured from the alert's *scheduled* send time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use itsmd::vendors::secret::Secret;
use itsmd::vendors::signing::{ReceivedHeaders, verify};
use jiff::SignedDuration;

use crate::bodies::Kind;
use crate::open_loop::{self, Plan};
use crate::report::Line;

/// How long the probe waits for the last webhooks after the last alert was answered.
const DRAIN: Duration = Duration::from_secs(30);

pub struct Receiver {
    secret: Secret,
    /// Alert key → when its webhook arrived, verified (the first one only).
    arrived: Mutex<HashMap<usize, Instant>>,
    /// Webhooks whose signature did not verify or whose ticket title named no probe key.
    bad: Mutex<u64>,
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let verified = ReceivedHeaders::from_header_map(&headers).is_ok_and(|h| {
        verify(
            std::slice::from_ref(&r.secret),
            &h,
            &body,
            jiff::Timestamp::now(),
            SignedDuration::from_mins(5),
        )
        .is_ok()
    });
    // The ticket's title is the alert's summary, "probe KEY".
    let key = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["data"]["ticket"]["title"]
                .as_str()
                .and_then(|t| t.strip_prefix("probe "))
                .and_then(|k| k.parse::<usize>().ok())
        });
    match (verified, key) {
        (true, Some(key)) => {
            let mut arrived = r.arrived.lock().unwrap_or_else(|p| p.into_inner());
            arrived.entry(key).or_insert(at);
            StatusCode::OK
        }
        _ => {
            *r.bad.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            StatusCode::UNAUTHORIZED
        }
    }
}

/// Runs one rate: listens on `listen` for the webhooks, sends `rate` alerts/s for `secs` to
/// `url`, waits for the webhooks, prints one line.
pub async fn run(
    client: &reqwest::Client,
    url: String,
    rate: f64,
    secs: f64,
    prefix: String,
    listen: std::net::SocketAddr,
    secret: &str,
) -> anyhow::Result<()> {
    let secret = Secret::parse(secret, "--secret")?;
    let receiver = Arc::new(Receiver {
        secret,
        arrived: Mutex::new(HashMap::new()),
        bad: Mutex::new(0),
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let total = (rate * secs).round() as usize;
    let plan = Plan {
        url,
        kind: Kind::Events,
        rate,
        secs,
        // Every alert a new key: every one opens an incident, and so sends a webhook.
        keys: total,
        prefix,
    };
    let mut outcome = open_loop::run(client, &plan).await;
    let start = outcome.start;
    let acked = outcome.keys_acked;
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline {
        let n = receiver
            .arrived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        if n >= acked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.abort();
    let arrived = receiver.arrived.lock().unwrap_or_else(|p| p.into_inner());
    let mut e2e: Vec<Duration> = arrived
        .iter()
        .map(|(key, at)| {
            let scheduled = start + Duration::from_secs_f64(*key as f64 / rate);
            at.saturating_duration_since(scheduled)
        })
        .collect();
    let bad = *receiver.bad.lock().unwrap_or_else(|p| p.into_inner());
    Line::default()
        .add("offered", rate)
        .add("acked", acked)
        .latencies("ack_", &mut outcome.latencies)
        .add("webhooks", e2e.len())
        .latencies("", &mut e2e)
        .add("bad_webhooks", bad)
        .add("non2xx", outcome.non2xx)
        .add("errors", outcome.errors)
        .add(
            "lag_max",
            format!("{:.2}", outcome.lag_max.as_secs_f64() * 1e3),
        )
        .print();
    Ok(())
}
