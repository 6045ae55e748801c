//! The engine alone, without HTTP: how fast the single writer turns alerts into durable
//! tickets on the real sled store with the shipped rules. It isolates the engine's hot path
//! (rules, decisions, the store write and the flush) from the HTTP stack and the load
//! generator, which share the machine's cores in `bench/run.sh`.
//!
//!   cargo bench --bench engine                      # storm: every alert a new incident
//!   cargo bench --bench engine -- resend            # re-sends of 1,000 keys
//!   cargo bench --bench engine -- correlation       # the correlation example's cost
//!   EVENTS=20000 SENDERS=16 cargo bench --bench engine
//!
//! SENDERS concurrent senders each wait for their receipt before sending again, as HTTP
//! clients with one connection each do (16 by default). Prints events/s and where commit time
//! went (process, apply, flush), from the engine's own metrics.
//!
//! `correlation` runs the storm on fresh stores, every alert carrying one of 50 `service`
//! labels: with the shipped rules alone, then with the shipped rules plus
//! `rules/examples/95-problem-from-incidents.rhai` (whose `tickets(…)` queries run on every
//! new incident), ROUNDS pairs alternately (3 by default), and prints each pair's rates and
//! ratio and the median ratio.

#[path = "common/mod.rs"]
mod common;

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

/// Distinct `service` labels in the correlation mode.
const SERVICES: usize = 50;

fn alert(n: usize, keys: usize, services: bool) -> EventBody {
    let id = if keys == 0 { n } else { n % keys };
    let mut labels: std::collections::BTreeMap<String, String> = [
        ("alertname".to_string(), "Bench".to_string()),
        ("instance".to_string(), format!("host-{id}")),
    ]
    .into();
    if services {
        labels.insert("service".into(), format!("svc-{}", id % SERVICES));
    }
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

async fn sender(
    engine: EngineHandle,
    from: usize,
    step: usize,
    events: usize,
    keys: usize,
    services: bool,
) {
    let mut n = from;
    while n < events {
        let mut body = alert(n, keys, services);
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

/// What one run measured.
struct Run {
    rate: f64,
    events_per_batch: f64,
    micros: f64,
    stages: Vec<(String, f64)>,
    /// Per tree: keys written and value bytes put, per event.
    writes: std::collections::BTreeMap<String, (f64, f64)>,
    disk_mib: u64,
}

/// Sends `events` alerts from `senders` concurrent senders through a fresh engine on a fresh
/// sled store with the rules of `rules_dir`.
async fn run(
    rules_dir: &std::path::Path,
    events: usize,
    senders: usize,
    keys: usize,
    services: bool,
) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.store.data_dir = dir.path().to_path_buf();
    config.rules.dir = rules_dir.to_path_buf();
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
        .map(|s| tokio::spawn(sender(engine.clone(), s, senders, events, keys, services)))
        .collect();
    for t in tasks {
        t.await.expect("sender");
    }
    let took = started.elapsed();
    let status = engine.status();
    drop(engine);
    thread.join().await;
    let text = metrics.encode();
    let stages = text
        .lines()
        .filter(|l| l.starts_with("itsmd_commit_stage_seconds_total"))
        .map(|line| {
            let (name, secs) = line.rsplit_once(' ').unwrap_or((line, "0"));
            let secs: f64 = secs.parse().unwrap_or(0.0);
            (name.to_string(), secs * 1e6 / events as f64)
        })
        .collect();
    // Keys and value bytes written per event, per tree (itsmd_store_writes_total, …).
    let mut writes: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for line in text.lines() {
        for (metric, slot) in [
            ("itsmd_store_writes_total{tree=\"", 0),
            ("itsmd_store_write_bytes_total{tree=\"", 1),
        ] {
            if let Some(rest) = line.strip_prefix(metric)
                && let Some((tree, value)) = rest.split_once("\"} ")
            {
                let v: f64 = value.parse().unwrap_or(0.0) / events as f64;
                let entry = writes.entry(tree.to_string()).or_default();
                if slot == 0 {
                    entry.0 = v;
                } else {
                    entry.1 = v;
                }
            }
        }
    }
    Run {
        writes,
        rate: events as f64 / took.as_secs_f64(),
        events_per_batch: status.events as f64 / status.batches.max(1) as f64,
        micros: took.as_micros() as f64 / events as f64,
        stages,
        disk_mib: store.size_on_disk() >> 20,
    }
}

fn print(scenario: &str, events: usize, senders: usize, r: &Run) {
    println!(
        "{scenario}: {events} events, {senders} senders: {:.0} events/s, {:.2} events/batch, {:.1} µs/event",
        r.rate, r.events_per_batch, r.micros,
    );
    for (name, micros) in &r.stages {
        println!("  {name}: {micros:.1} µs/event");
    }
    let (keys, bytes) = r
        .writes
        .values()
        .fold((0.0, 0.0), |(k, b), (k2, b2)| (k + k2, b + b2));
    let trees: Vec<String> = r
        .writes
        .iter()
        .filter(|(_, (k, _))| *k >= 0.05)
        .map(|(t, (k, b))| format!("{t} {k:.2} ({b:.0} B)"))
        .collect();
    println!(
        "  store writes: {keys:.2} keys, {bytes:.0} bytes per event: {}",
        trees.join(", ")
    );
    println!("  data dir: {} MiB", r.disk_mib);
}

/// The shipped rules plus the correlation example, in a folder of their own.
fn with_correlation(shipped: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(shipped).expect("rules dir") {
        let path = entry.expect("rules entry").path();
        if path.extension().is_some_and(|x| x == "rhai") {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let example = shipped.join("examples/95-problem-from-incidents.rhai");
    std::fs::copy(&example, dir.path().join("95-problem-from-incidents.rhai")).expect("copy");
    dir
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let resend = std::env::args().any(|a| a == "resend");
    let correlation = std::env::args().any(|a| a == "correlation");
    let events = common::env("EVENTS", 20_000);
    let senders = common::env("SENDERS", 16);
    let keys = if resend { 1_000 } else { 0 };
    let shipped = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    if correlation {
        // The two are run alternately, ROUNDS pairs, and compared pair by pair: a run's rate
        // moves with the disk's flush time from one minute to the next, so one pair says
        // little (one pair measured 55 % and the next 112 %).
        let rounds = common::env("ROUNDS", 3).max(1);
        let both = with_correlation(&shipped);
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            let alone = run(&shipped, events, senders, 0, true).await;
            print(
                &format!("round {round}: shipped rules"),
                events,
                senders,
                &alone,
            );
            let with = run(both.path(), events, senders, 0, true).await;
            print(
                &format!("round {round}: shipped rules + 95-problem-from-incidents"),
                events,
                senders,
                &with,
            );
            let ratio = 100.0 * with.rate / alone.rate;
            println!(
                "round {round}: {:.0} events/s against {:.0} events/s alone: {ratio:.1} % of the rate",
                with.rate, alone.rate
            );
            ratios.push(ratio);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "correlation: median {:.1} % of the rate (min {:.1}, max {:.1}) over {rounds} pairs",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
        return;
    }
    let r = run(&shipped, events, senders, keys, false).await;
    let scenario = if resend {
        "resend (1,000 keys)"
    } else {
        "storm (all keys new)"
    };
    print(scenario, events, senders, &r);
}
