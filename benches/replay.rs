//! Replay at scale: `itsmd replay`'s code (`rules::replay`) over a journal of 1,000,000
//! events, with the shipped rules as the candidate (the "no differences" case an operator
//! runs before deploying).
//!
//!   cargo bench --bench replay                 # 1,000,000 events
//!   EVENTS=100000 KEYS=10000 cargo bench --bench replay
//!
//! The journal is built first, through the real engine on the real sled store, in big
//! batches (submissions of 1,000 alerts from 4 senders): KEYS alerts (10,000 by default),
//! each sent EVENTS / KEYS times; an alert without a start time is never an unchanged
//! re-send, so every event is journaled and updates its incident. Then the replay runs over
//! it; it prints the replay's events/s and the peak RSS of the replay alone (the high-water
//! mark is reset once the journal is built, `/proc/self/clear_refs`).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use itsmd::clock::SystemClock;
use itsmd::config::Config;
use itsmd::engine::{self, EngineHandle};
use itsmd::event::EventBody;
use itsmd::rules::{Limits, Rules};
use itsmd::store::Store;

/// The daemon's allocator, so memory is measured as the daemon would use it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Alerts per submission while building the journal.
const CHUNK: usize = 1_000;
/// Concurrent senders while building the journal.
const SENDERS: usize = 4;

fn alert(n: usize, keys: usize) -> EventBody {
    let id = n % keys;
    let labels = [
        ("alertname".to_string(), "Bench".to_string()),
        ("instance".to_string(), format!("host-{id}")),
    ]
    .into();
    let severity = if n.is_multiple_of(2) {
        "critical"
    } else {
        "warning"
    };
    common::firing(labels, severity, format!("bench {id}"))
}

async fn sender(engine: EngineHandle, from: usize, events: usize, keys: usize) {
    let mut start = from * CHUNK;
    while start < events {
        let bodies = (start..(start + CHUNK).min(events))
            .map(|n| alert(n, keys))
            .collect();
        if let Err(e) = engine.submit_many(bodies).await {
            eprintln!("submit failed: {e}");
            std::process::exit(1);
        }
        start += SENDERS * CHUNK;
    }
}

/// This process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb >> 10)
}

fn main() {
    let events = common::env("EVENTS", 1_000_000);
    let keys = common::env("KEYS", 10_000).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.store.data_dir = dir.path().to_path_buf();
    config.rules.dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    // As large a queue as one submission needs.
    config.engine.queue_capacity = config.engine.queue_capacity.max(SENDERS * CHUNK);
    let store: Arc<dyn Store> = itsmd::store::open(&config.store).expect("store");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    let built = Instant::now();
    runtime.block_on(async {
        let rules = Rules::load(Limits::from(&config.rules), &config.rules.dir).expect("rules");
        let (engine, thread) = engine::start(
            &config,
            store.clone(),
            rules,
            Arc::new(SystemClock),
            Arc::new(itsmd::metrics::Metrics::new()),
            tracing::Span::none(),
        )
        .expect("engine");
        let tasks: Vec<_> = (0..SENDERS)
            .map(|s| tokio::spawn(sender(engine.clone(), s, events, keys)))
            .collect();
        for t in tasks {
            t.await.expect("sender");
        }
        drop(engine);
        thread.join().await;
    });
    let journaled = itsmd::store::layout::counter(&*store, itsmd::store::layout::EVENT_SEQ)
        .expect("event counter");
    println!(
        "journal: {journaled} events ({keys} alerts) built in {:.1} s ({:.0} events/s); data dir {} MiB",
        built.elapsed().as_secs_f64(),
        journaled as f64 / built.elapsed().as_secs_f64(),
        store.size_on_disk() >> 20
    );
    assert!(journaled as usize >= events, "every event is journaled");

    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&config.rules.dir).expect("rules dir") {
        let path = entry.expect("rules entry").path();
        if path.extension().is_some_and(|x| x == "rhai") {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            sources.push((name, std::fs::read_to_string(&path).expect("rule file")));
        }
    }
    sources.sort();
    // Measure the replay's own peak, not the build's.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = peak_rss_mib();
    let started = Instant::now();
    let report = itsmd::rules::replay::replay(&config, &*store, sources, None, &Default::default())
        .expect("replay");
    let took = started.elapsed();
    println!(
        "replay: {} events in {:.1} s: {:.0} events/s; peak RSS {} MiB{} (before the replay: {before} MiB); {} event and {} ticket differences",
        report.events,
        took.as_secs_f64(),
        report.events as f64 / took.as_secs_f64(),
        peak_rss_mib(),
        if reset {
            ""
        } else {
            " (of the whole run: clear_refs refused)"
        },
        report.event_differences.len(),
        report.ticket_differences.len(),
    );
}
