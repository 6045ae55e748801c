//! The open-loop sender: requests go out on a fixed schedule (request i at start + i/rate)
//! whether or not earlier ones were answered, and each one's latency is measured from its
//! *scheduled* time. A server that stalls therefore shows its queueing in the latencies
//! instead of slowing the sender down (no coordinated omission, unlike wrk's closed loop).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use crate::bodies::Kind;
use crate::report::Line;

/// Requests in flight at most. Far above what a healthy server needs at the offered rates
/// (latency × rate), and below itsmd's bench `max_concurrent_requests`, so the client never
/// is the bottleneck while a stalled server cannot make the probe open unbounded sockets.
const MAX_IN_FLIGHT: usize = 2048;

/// A request that takes longer than this counts as an error.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One fixed-rate run.
pub struct Plan {
    /// The server's base URL, e.g. `http://127.0.0.1:18080`.
    pub url: String,
    /// What is sent.
    pub kind: Kind,
    /// Offered requests per second.
    pub rate: f64,
    /// How long requests are offered.
    pub secs: f64,
    /// Distinct alert keys, used round-robin.
    pub keys: usize,
    /// Makes this run's keys distinct from every other run's.
    pub prefix: String,
}

/// What became of one request.
struct Done {
    /// From its scheduled send time to the end of its response.
    latency: Duration,
    /// HTTP status, or `None` when no response came (connection error, timeout).
    status: Option<u16>,
    /// Its alert key.
    key: usize,
}

/// What a run measured.
pub struct Outcome {
    /// Requests sent.
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Answers other than 2xx.
    pub non2xx: u64,
    /// Requests without an answer.
    pub errors: u64,
    /// Latencies of the 2xx answers, from their scheduled times.
    pub latencies: Vec<Duration>,
    /// The most any request went out after its scheduled time (client-side delay).
    pub lag_max: Duration,
    /// From the first scheduled send to the last answer.
    pub elapsed: Duration,
    /// Distinct keys acknowledged with a 2xx.
    pub keys_acked: usize,
    /// When request 0 was scheduled: request i was at start + i/rate.
    pub start: Instant,
}

impl Outcome {
    /// The run's line: offered and achieved rates, latencies, failures, keys.
    pub fn line(mut self, plan: &Plan) -> Line {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        Line::default()
            .add("offered", plan.rate)
            .add("sent", self.sent)
            .add("ok_per_s", format!("{:.0}", self.ok as f64 / secs))
            .latencies("", &mut self.latencies)
            .add("non2xx", self.non2xx)
            .add("errors", self.errors)
            .add(
                "lag_max",
                format!("{:.2}", self.lag_max.as_secs_f64() * 1e3),
            )
            .add("keys", self.keys_acked)
    }
}

pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .build()
}

/// Sends `plan`'s requests on schedule and waits for every answer.
pub async fn run(client: &reqwest::Client, plan: &Plan) -> Outcome {
    let total = (plan.rate * plan.secs).round() as u64;
    let url = format!("{}{}", plan.url, plan.kind.path());
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now() + Duration::from_millis(20);
    let mut lag_max = Duration::ZERO;
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / plan.rate);
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        lag_max = lag_max.max(Instant::now().saturating_duration_since(at));
        let key = i as usize % plan.keys.max(1);
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(plan.kind.body(&plan.prefix, key));
        let tx = tx.clone();
        tokio::spawn(async move {
            let status = match request.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    r.bytes().await.ok().map(|_| status)
                }
                Err(_) => None,
            };
            drop(slot);
            let _ = tx.send(Done {
                latency: at.elapsed(),
                status,
                key,
            });
        });
    }
    drop(tx);
    let mut outcome = Outcome {
        sent: total,
        ok: 0,
        non2xx: 0,
        errors: 0,
        latencies: Vec::with_capacity(total as usize),
        lag_max,
        elapsed: Duration::ZERO,
        keys_acked: 0,
        start,
    };
    let mut keys = HashSet::new();
    while let Some(done) = rx.recv().await {
        match done.status {
            Some(s) if (200..300).contains(&s) => {
                outcome.ok += 1;
                outcome.latencies.push(done.latency);
                keys.insert(done.key);
            }
            Some(_) => outcome.non2xx += 1,
            None => outcome.errors += 1,
        }
    }
    outcome.elapsed = start.elapsed();
    outcome.keys_acked = keys.len();
    outcome
}
