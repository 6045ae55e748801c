//! Growth of the data dir over simulated weeks: alerts at a fixed rate over a fixed set of
//! keys, through the engine directly (as `benches/engine.rs`) on the real sled store, with a
//! manual clock that the bench moves a minute per minute's alerts, so 30 days take minutes.
//! Runs twice: without retention, then with `[retention] journal = RETAIN_DAYS` (the sweep
//! every simulated hour, as `sweep_every = "1h"` does, and `itsmd compact`'s copy at the end
//! of each day, with the engine stopped). Prints the data dir's size per day for both.
//!
//!   cargo bench --bench growth                                  # 30 days × 1,000/min, 5,000 keys
//!   DAYS=30 PER_MIN=100 KEYS=5000 RETAIN_DAYS=7 cargo bench --bench growth
//!   ONLY=retention cargo bench --bench growth                   # one of the two runs
//!
//! Every alert is a generic event without a start time (as PagerDuty triggers and
//! `/api/v1/events` are), so every one is journaled: the worst case for the journal. (A
//! Prometheus re-send of an unchanged alert is a read and writes nothing.)

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use itsmd::clock::ManualClock;
use itsmd::config::Config;
use itsmd::engine::{self, EngineHandle, EngineThread};
use itsmd::event::EventBody;
use itsmd::retention::compact;
use itsmd::rules::{Limits, Rules};
use itsmd::store::{Store, Tree};
use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Senders at once, each waiting for its receipt (as connections do).
const SENDERS: usize = 16;

fn alert(key: usize) -> EventBody {
    let labels = [
        ("alertname".to_string(), "Growth".to_string()),
        ("instance".to_string(), format!("host-{key}")),
    ]
    .into();
    common::firing(labels, "warning", format!("growth {key}"))
}

struct Running {
    engine: EngineHandle,
    thread: EngineThread,
    store: Arc<dyn Store>,
}

fn start(config: &Config, clock: &Arc<ManualClock>) -> Running {
    // sled's threads let go of the file lock a moment after a store is dropped.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let store: Arc<dyn Store> = loop {
        match itsmd::store::open(&config.store) {
            Err(itsmd::store::StoreError::Open { .. }) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => break other.expect("store"),
        }
    };
    let rules = Rules::load(Limits::from(&config.rules), &config.rules.dir).expect("rules");
    let (engine, thread) = engine::start(
        config,
        store.clone(),
        rules,
        clock.clone(),
        Arc::new(itsmd::metrics::Metrics::new()),
        tracing::Span::none(),
    )
    .expect("engine");
    Running {
        engine,
        thread,
        store,
    }
}

async fn stop(r: Running) {
    r.store.flush().expect("flush");
    drop(r.engine);
    r.thread.join().await;
    drop(r.store);
}

/// One minute's alerts, `from` on, round-robin over `keys`.
async fn minute(engine: &EngineHandle, from: usize, per_min: usize, keys: usize) {
    let tasks: Vec<_> = (0..SENDERS)
        .map(|s| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut i = s;
                while i < per_min {
                    if let Err(e) = engine.submit(alert((from + i) % keys)).await {
                        eprintln!("submit failed: {e}");
                        std::process::exit(1);
                    }
                    i += SENDERS;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("sender");
    }
}

fn count(store: &dyn Store, tree: Tree) -> usize {
    store
        .range(tree, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
        .count()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// One day's sample: disk use at the end of the day (before and after compaction, which
/// only the retention run does), and the records of the growing trees.
struct Day {
    disk: u64,
    compacted: Option<u64>,
    journal: usize,
    history: usize,
    tickets: usize,
    secs: f64,
}

async fn run(
    dir: &Path,
    retain_days: Option<usize>,
    days: usize,
    per_min: usize,
    keys: usize,
) -> Vec<Day> {
    let mut config = Config::default();
    config.store.data_dir = dir.to_path_buf();
    config.rules.dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    match retain_days {
        Some(d) => {
            config.retention.journal =
                itsmd::config::duration::Friendly::from_secs(d as i64 * 86_400)
        }
        None => config.retention.enabled = false,
    }
    let start_at: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start_at));
    let mut running = start(&config, &clock);
    let mut sent = 0usize;
    let mut out = Vec::new();
    let none = CancellationToken::new();
    for day in 0..days {
        let began = Instant::now();
        for hour in 0..24 {
            for m in 0..60 {
                clock
                    .set(start_at + SignedDuration::from_mins((day * 1440 + hour * 60 + m) as i64));
                minute(&running.engine, sent, per_min, keys).await;
                sent += per_min;
            }
            if retain_days.is_some() {
                // sweep_every = "1h"
                let _ = itsmd::retention::task::sweep_once(&running.engine, &running.store, &none)
                    .await;
            }
        }
        let secs = began.elapsed().as_secs_f64();
        let journal = count(&*running.store, Tree::Events);
        let history = count(&*running.store, Tree::History);
        let tickets = count(&*running.store, Tree::Tickets);
        stop(running).await;
        let disk = compact::disk_usage(dir).expect("du");
        let compacted = if retain_days.is_some() {
            // sled's threads let go of the file lock a moment after the store is dropped.
            let done = loop {
                match compact::compact(&config.store) {
                    Err(compact::CompactError::Store(itsmd::store::StoreError::Open {
                        ..
                    })) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    other => break other.expect("compact"),
                }
            };
            Some(done.bytes_after)
        } else {
            None
        };
        running = start(&config, &clock);
        let d = Day {
            disk,
            compacted,
            journal,
            history,
            tickets,
            secs,
        };
        eprintln!(
            "day {:>2}: {:>8.1} MiB{}  journal {journal}  history {history}  tickets {tickets}  ({secs:.0} s)",
            day + 1,
            mib(d.disk),
            d.compacted
                .map_or(String::new(), |c| format!(" → compacted {:.1} MiB", mib(c))),
        );
        out.push(d);
    }
    stop(running).await;
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let days = common::env("DAYS", 30);
    let per_min = common::env("PER_MIN", 1_000);
    let keys = common::env("KEYS", 5_000);
    let retain = common::env("RETAIN_DAYS", 7);
    let only = std::env::var("ONLY").unwrap_or_default();
    println!(
        "growth: {days} simulated days, {per_min} alerts/min ({} per day) over {keys} keys; retention run keeps {retain} days",
        per_min * 1440
    );
    let mut plain = Vec::new();
    let mut kept = Vec::new();
    if only != "retention" {
        let dir = tempfile::tempdir().expect("temp dir");
        eprintln!("without retention…");
        plain = run(&dir.path().join("data"), None, days, per_min, keys).await;
    }
    if only != "plain" {
        let dir = tempfile::tempdir().expect("temp dir");
        eprintln!("with {retain}-day journal retention…");
        kept = run(&dir.path().join("data"), Some(retain), days, per_min, keys).await;
    }
    println!(
        "{:>4} {:>14} {:>10} {:>10} | {:>14} {:>14} {:>10} {:>10}",
        "day", "no retention", "journal", "history", "retention", "compacted", "journal", "history"
    );
    for day in 0..days {
        let a = plain.get(day);
        let b = kept.get(day);
        println!(
            "{:>4} {:>10.1} MiB {:>10} {:>10} | {:>10.1} MiB {:>10.1} MiB {:>10} {:>10}",
            day + 1,
            a.map_or(0.0, |d| mib(d.disk)),
            a.map_or(0, |d| d.journal),
            a.map_or(0, |d| d.history),
            b.map_or(0.0, |d| mib(d.disk)),
            b.and_then(|d| d.compacted).map_or(0.0, mib),
            b.map_or(0, |d| d.journal),
            b.map_or(0, |d| d.history),
        );
    }
    let secs: f64 = plain.iter().chain(&kept).map(|d| d.secs).sum();
    let tickets = plain.last().or(kept.last()).map_or(0, |d| d.tickets);
    println!("tickets at the end: {tickets}; simulated in {secs:.0} s of engine time");
}
