//! The big-store load: `passes` × `keys` Prometheus alerts in batches, as Prometheus sends
//! them (every pass re-sends every active alert), from `conns` closed-loop senders. By default
//! 10 × 100,000 = 1,000,000 alerts into 100,000 tickets. A 503 or 429 (queue full, shedding)
//! is retried after a pause, as Prometheus retries, so every alert is delivered in the end.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::bodies;
use crate::report::Line;

/// Pause before retrying a shed batch.
const BACKOFF: Duration = Duration::from_millis(50);

/// Attempts per batch before the run gives up.
const MAX_ATTEMPTS: u32 = 100;

/// The load's shape.
pub struct Plan {
    /// The server's base URL.
    pub url: String,
    /// Distinct alert keys (tickets expected).
    pub keys: usize,
    /// Times every key is sent.
    pub passes: usize,
    /// Alerts per request.
    pub batch: usize,
    /// Concurrent senders, each with one request in flight.
    pub conns: usize,
}

/// Counters shared by the senders.
struct Tally {
    /// When the load started.
    started: Instant,
    /// The next batch to send, over all passes.
    next: AtomicUsize,
    /// Batches acknowledged so far.
    acked: AtomicUsize,
    /// When the first pass' worth of batches had been acknowledged: about the time it took
    /// to open every ticket, the costly part (later passes are mostly reads).
    first_pass: OnceLock<Duration>,
    /// Batches retried after a 503/429.
    retries: AtomicU64,
    /// Batches given up on (other status, connection error, or too many attempts).
    failed: AtomicU64,
}

/// Sends the whole load and prints its line.
pub async fn run(client: &reqwest::Client, plan: Plan) -> anyhow::Result<()> {
    anyhow::ensure!(
        plan.batch > 0 && plan.keys.is_multiple_of(plan.batch),
        "keys must be a multiple of the batch size"
    );
    let plan = Arc::new(plan);
    let tally = Arc::new(Tally {
        started: Instant::now(),
        next: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
        first_pass: OnceLock::new(),
        retries: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let senders: Vec<_> = (0..plan.conns)
        .map(|_| tokio::spawn(sender(client.clone(), plan.clone(), tally.clone())))
        .collect();
    for s in senders {
        s.await?;
    }
    let secs = tally.started.elapsed().as_secs_f64();
    let first = tally.first_pass.get().copied().unwrap_or_default();
    let alerts = plan.keys * plan.passes;
    Line::default()
        .add("alerts", alerts)
        .add("keys", plan.keys)
        .add("secs", format!("{secs:.1}"))
        .add("alerts_per_s", format!("{:.0}", alerts as f64 / secs))
        .add("first_pass_secs", format!("{:.1}", first.as_secs_f64()))
        .add("retries", tally.retries.load(Ordering::Relaxed))
        .add("failed_batches", tally.failed.load(Ordering::Relaxed))
        .print();
    Ok(())
}

/// Takes batches in order until all are sent.
async fn sender(client: reqwest::Client, plan: Arc<Plan>, tally: Arc<Tally>) {
    let url = format!("{}/api/v2/alerts", plan.url);
    let per_pass = plan.keys / plan.batch;
    loop {
        let n = tally.next.fetch_add(1, Ordering::Relaxed);
        if n >= per_pass * plan.passes {
            return;
        }
        let body = bodies::prometheus_batch("BenchBig", (n % per_pass) * plan.batch, plan.batch);
        if !send(&client, &url, body, &tally).await {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        } else if tally.acked.fetch_add(1, Ordering::Relaxed) + 1 == per_pass {
            let _ = tally.first_pass.set(tally.started.elapsed());
        }
    }
}

/// Delivers one batch, retrying while shed; true once it got a 2xx.
async fn send(client: &reqwest::Client, url: &str, body: String, tally: &Tally) -> bool {
    for _ in 0..MAX_ATTEMPTS {
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let status = match sent {
            // Read to the end, so the connection goes back to the pool.
            Ok(r) => {
                let status = r.status().as_u16();
                r.bytes().await.map(|_| status)
            }
            Err(e) => Err(e),
        };
        match status {
            Ok(s) if (200..300).contains(&s) => return true,
            Ok(503 | 429) => {
                tally.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(BACKOFF).await;
            }
            Ok(_) | Err(_) => return false,
        }
    }
    false
}
