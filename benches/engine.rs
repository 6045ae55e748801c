//! The engine alone, without HTTP: how fast the single writer turns alerts into durable
//! tickets on the real sled store with the shipped rules. It isolates the engine's hot path
//! (rules, decisions, the store write and the flush) from the HTTP stack and the load
//! generator, which share the machine's cores in `bench/run.sh`.
//!
//!   cargo bench --bench engine                      # storm: every alert a new incident
//!   cargo bench --bench engine -- resend            # re-sends of 1,000 keys
//!   EVENTS=20000 SENDERS=16 cargo bench --bench engine
//!
//! SENDERS concurrent senders each wait for their receipt before sending again, as HTTP
//! clients with one connection each do (16 by default). Prints events/s and where commit time
//! went (process, apply, flush), from the engine's own metrics.

use std::sync::Arc;
use std::time::Instant;

use itsmd::alerts::{Alert, AlertStatus, fingerprint};
use itsmd::clock::SystemClock;
use itsmd::config::Config;
use itsmd::engine::{self, EngineHandle};
use itsmd::event::EventBody;
use itsmd::rules::{Limits, Rules};
use itsmd::store::Store;

/// The daemon's allocator, so the engine is measured as it runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn alert(n: usize, keys: usize) -> EventBody {
    let id = if keys == 0 { n } else { n % keys };
    let labels = [
        ("alertname".to_string(), "Bench".to_string()),
        ("instance".to_string(), format!("host-{id}")),
    ]
    .into();
    EventBody::Alert(Alert {
        source: "bench".into(),
        key: String::new(),
        fingerprint: fingerprint(&labels),
        status: AlertStatus::Firing,
        severity: "critical".into(),
        summary: format!("bench {id}"),
        description: None,
        labels,
        annotations: Default::default(),
        starts_at: None,
        ends_at: None,
        generator_url: None,
        format: Default::default(),
        acknowledged: false,
        expired: None,
    })
}

async fn sender(engine: EngineHandle, from: usize, step: usize, events: usize, keys: usize) {
    let mut n = from;
    while n < events {
        let mut body = alert(n, keys);
        if let EventBody::Alert(a) = &mut body {
            a.key = a.fingerprint.clone();
        }
        if let Err(e) = engine.submit(body).await {
            eprintln!("submit failed: {e}");
            std::process::exit(1);
        }
        n += step;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let resend = std::env::args().any(|a| a == "resend");
    let events = env("EVENTS", 20_000);
    let senders = env("SENDERS", 16);
    let keys = if resend { 1_000 } else { 0 };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.store.data_dir = dir.path().to_path_buf();
    config.rules.dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    let store: Arc<dyn Store> = itsmd::store::open(&config.store).expect("store");
    let rules = Rules::load(Limits::from(&config.rules), &config.rules.dir).expect("rules");
    let metrics = Arc::new(itsmd::metrics::Metrics::new());
    let (engine, thread) = engine::start(
        &config,
        store.clone(),
        rules,
        Arc::new(SystemClock),
        metrics.clone(),
        tracing::Span::none(),
    )
    .expect("engine");

    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|s| tokio::spawn(sender(engine.clone(), s, senders, events, keys)))
        .collect();
    for t in tasks {
        t.await.expect("sender");
    }
    let took = started.elapsed();
    let status = engine.status();
    drop(engine);
    thread.join().await;

    let scenario = if resend {
        "resend (1,000 keys)"
    } else {
        "storm (all keys new)"
    };
    println!(
        "{scenario}: {events} events, {senders} senders: {:.0} events/s, {:.2} events/batch, {:.1} µs/event",
        events as f64 / took.as_secs_f64(),
        status.events as f64 / status.batches.max(1) as f64,
        took.as_micros() as f64 / events as f64,
    );
    let text = metrics.encode();
    for line in text
        .lines()
        .filter(|l| l.starts_with("itsmd_commit_stage_seconds_total"))
    {
        let (name, secs) = line.rsplit_once(' ').unwrap_or((line, "0"));
        let secs: f64 = secs.parse().unwrap_or(0.0);
        println!("  {name}: {:.1} µs/event", secs * 1e6 / events as f64);
    }
    println!("  data dir: {} MiB", store.size_on_disk() >> 20);
}
