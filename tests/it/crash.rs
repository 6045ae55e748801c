//! The crash test: the real daemon, under concurrent alert (two wire formats), mail and
//! vendor-webhook load, is SIGKILLed at seeded random points several times and restarted each
//! time on the same data dir and Maildir. Every restart must open the store and reach ready
//! with no error logged. After the last restart, with the load stopped and everything
//! settled, [`verify`] checks through the HTTP API, the Maildir and the vendor's receiver
//! that nothing acknowledged was lost and nothing was done twice, and the counts are printed.
//!
//! Then two more faults on the same store: a SIGKILL while sled writes a snapshot
//! ([`snapshot`], through a test failpoint that stops the daemon inside that window), and a
//! disk that fills under load ([`disk_full`], on a tmpfs: root only), each followed by a
//! restart that must open the store, before the same final checks.
//!
//! `ITSMD_CRASH_SEED=N cargo test --test it crash -- --nocapture` replays a seed; without it
//! the seed is drawn from the clock and printed.

mod disk_full;
mod load;
mod mail;
mod snapshot;
mod verify;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use load::{Format, Ledger, Rng};
use serde_json::Value;

use crate::receiver::{Receiver, Reply};
use crate::support::{Daemon, Setup};

/// Kill-and-restart cycles.
const CYCLES: usize = 5;
/// How long the load runs before the kill, in milliseconds: drawn from this range.
const RUN_MS: (u64, u64) = (300, 1500);
const SEED_VAR: &str = "ITSMD_CRASH_SEED";
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Every alert ticket and every mail ticket is assigned to the vendor (`ticket.assigned`);
/// every generic alert also notifies it (`ticket.notified`, one outbox row per occurrence).
const RULES: &str = r#"
fn on_alert(alert, ticket) {
    if ticket.is_new {
        ticket.title = alert.summary;
        ticket.vendor = "acme";
    }
    if alert.labels.crash_format == "generic" {
        ticket.notify("acme");
    }
}

fn on_mail(mail, ticket) {
    if ticket.is_new {
        ticket.vendor = "acme";
    }
}
"#;

fn config(url: &str) -> String {
    format!(
        r#"
[groups.triage]
[groups.operations]
[mail]
settle = "100ms"
rescan_every = "1s"
[vendors.acme]
url = "{url}"
secret = "{SECRET}"
timeout = "2s"
retry = {{ max_attempts = 50, base_ms = 10, cap_ms = 200, max_retry_after_ms = 1000 }}
"#
    )
}

fn seed() -> u64 {
    match std::env::var(SEED_VAR) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{SEED_VAR}={v:?}: {e}")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    }
}

/// The vendor fails now and then (retried with the same webhook-id) and is sometimes slow,
/// so kills also land while deliveries are in flight; then it answers 200.
fn vendor_script(rng: &mut Rng) -> Vec<Reply> {
    (0..80)
        .map(|_| match rng.range(0, 4) {
            0 => Reply::Status(503),
            1 => Reply::Status(500),
            2 => Reply::Hang(Duration::from_millis(50)),
            _ => Reply::Status(200),
        })
        .collect()
}

fn start(setup: &Setup, maildir: &Path) -> Daemon {
    let d = setup.start_with(&[OsStr::new("--maildir"), maildir.as_os_str()], &[]);
    wait_until("the restarted daemon is ready", || {
        d.http
            .get(d.url("/readyz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    assert_no_errors(&d, "after start");
    d
}

/// The store opened cleanly and nothing went wrong since: no ERROR line in the log.
fn assert_no_errors(d: &Daemon, when: &str) {
    let errors: Vec<Value> = d
        .logs()
        .into_iter()
        .filter(|v| v["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "{when}: errors logged: {errors:#?}");
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    out.sort();
    out
}

/// How many mails this daemon found committed but still in new/ (a kill between the commit
/// and the move to cur/), and recognised by Message-ID instead of processing them again.
fn mails_recognised(d: &Daemon) -> usize {
    d.logs()
        .iter()
        .filter(|v| v["message"] == "Mail seen before; nothing new.")
        .count()
}

/// Runs the load against `d` for a random while, then SIGKILLs it under load. Returns how
/// many mails it recognised as committed before.
fn load_then_kill(d: Daemon, rng: &mut Rng, ledger: &Ledger, maildir: &Path) -> usize {
    let stop = AtomicBool::new(false);
    let run_for = Duration::from_millis(rng.range(RUN_MS.0, RUN_MS.1));
    let seeds: [u64; 4] = std::array::from_fn(|_| rng.next_u64());
    let base = d.url("");
    std::thread::scope(|s| {
        let (base, ledger, stop) = (&base, ledger, &stop);
        s.spawn(move || load::send_alerts(base, Format::Generic, 0, seeds[0], ledger, stop));
        s.spawn(move || load::send_alerts(base, Format::Generic, 0, seeds[1], ledger, stop));
        s.spawn(move || load::send_alerts(base, Format::Prometheus, 0, seeds[2], ledger, stop));
        s.spawn(move || load::write_mails(maildir, seeds[3], ledger, stop));
        let _stop = load::StopOnDrop(stop);
        // The kill point: not a synchronisation, a random moment under load.
        std::thread::sleep(run_for);
        assert_no_errors(&d, "under load");
        let recognised = mails_recognised(&d);
        d.kill();
        stop.store(true, Ordering::Relaxed);
        recognised
    })
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged_and_duplicates_nothing() {
    let seed = seed();
    println!("crash test seed {seed} (replay: {SEED_VAR}={seed})");
    let mut rng = Rng::new(seed);
    let receiver = Receiver::start(vendor_script(&mut rng));
    let setup = Setup::new()
        .rules(&[("50-crash.rhai", RULES)])
        .config(&config(&receiver.url));
    let maildir = setup.dir.path().join("Maildir");
    let ledger = Ledger::default();
    let started = Instant::now();

    let (mut left_in_new, mut recognised) = (Vec::new(), 0);
    for _ in 0..CYCLES {
        let d = start(&setup, &maildir);
        recognised += load_then_kill(d, &mut rng, &ledger, &maildir);
        left_in_new.push(names(&maildir.join("new")).len());
    }
    // SIGKILL while a snapshot is written; the next start opens the store, under load again.
    let snapshot = snapshot::kill_during_snapshot(&setup, &maildir);
    let d = start(&setup, &maildir);
    recognised += load_then_kill(d, &mut rng, &ledger, &maildir);
    // The disk fills under load; SIGKILL on the full disk; the space is freed.
    let (_tmpfs, full) = disk_full::fill_under_load(&setup, &maildir, &mut rng, &ledger);

    // The last restart: no more load; let mail and webhooks settle, then check.
    let d = start(&setup, &maildir);
    wait_until("every mail left new/", || {
        names(&maildir.join("new")).is_empty()
    });
    wait_until("the outbox is drained", || verify::outbox_empty(&d));
    let counts = verify::everything(&d, &ledger, &receiver.received(), &maildir);
    recognised += mails_recognised(&d);
    assert_no_errors(&d, "after settling");
    let status = d.terminate();
    assert!(status.success(), "clean stop after the crashes: {status:?}");

    println!(
        "crash test: seed {seed}, {} SIGKILLs in {:.1} s; mails in new/ at each load kill: \
         {left_in_new:?}, {recognised} of them committed before the kill (recognised by \
         Message-ID)\nkilled while writing {} ({} bytes of it written); disk full with a store \
         of {} bytes: {} alerts acknowledged before it filled, a start on the full disk {}\n\
         {counts}",
        CYCLES + 3,
        started.elapsed().as_secs_f64(),
        snapshot.file,
        snapshot.bytes,
        full.store_bytes,
        full.acked_before_full,
        if full.served_when_full {
            "served"
        } else {
            "refused saying what to do"
        },
    );
}
