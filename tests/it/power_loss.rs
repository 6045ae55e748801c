//! What a crash of the machine would lose, where `crash.rs` covers a crash of the process.
//!
//! sled 0.34.7 ends its flush with `sync_file_range`, which sends no cache flush to a disk
//! with a volatile write cache and does not commit the log's size, and it writes the values
//! too big for its log to `blobs/` files without syncing them. A power loss can lose what
//! only that reached; so the daemon must `fdatasync` the log and `fsync` each new blob file
//! and the blob folder before it answers 2xx. No test here can pull the plug; the real daemon
//! runs under strace(1), which records its file-sync calls and its HTTP answers in the order
//! they happened, and the trace shows what was synced before each acknowledgement.
//!
//! The same holds for the files the commands leave for an operator to rely on: an export
//! (an archive kept before pruning) is synced before it takes its name and its folder after,
//! and a compaction syncs the copy before it swaps the store and the swap before it removes
//! the old files.

use std::ffi::OsStr;
use std::path::Path;

use crate::support::{BIN, Setup, wait_until};

/// The events sent: one small, then ones with descriptions large enough that sled writes
/// the leaf holding their tickets to blob files.
const SMALL: usize = 1;
const LARGE: usize = 12;
const LARGE_DESCRIPTION: usize = 60_000;

#[test]
fn every_acknowledged_event_was_synced_to_the_disk_log_and_blobs_alike() {
    let setup = Setup::new();
    let trace = setup.dir.path().join("strace.out");
    let daemon = setup.start_wrapped(&[
        OsStr::new("strace"),
        OsStr::new("-f"),
        OsStr::new("-qq"),
        // Each descriptor with its path (or its TCP connection).
        OsStr::new("-yy"),
        OsStr::new("-e"),
        OsStr::new("trace=openat,fdatasync,fsync,sync_file_range,writev,write,sendto"),
        OsStr::new("-o"),
        trace.as_os_str(),
    ]);
    for n in 0..SMALL + LARGE {
        let description = if n < SMALL {
            "a small one".to_string()
        } else {
            "x".repeat(LARGE_DESCRIPTION)
        };
        let body = serde_json::json!({
            "source": "power", "key": format!("k{n}"), "status": "firing",
            "severity": "critical", "summary": format!("event {n}"),
            "description": description,
        });
        let (status, answer) = daemon.post("/api/v1/events", &body.to_string());
        assert_eq!(status, 202, "{answer}");
    }
    let data = setup.data_dir();
    wait_until("the trace to hold every answer", || {
        answers(&read(&trace)) >= SMALL + LARGE
    });
    exported_file_is_synced_before_and_after_its_rename(&setup, &daemon.url(""));
    // strace exits with the daemon it traces, which it does not signal itself.
    let tracee = child_of(daemon.pid());
    // SAFETY: kill(2) on a process this test started.
    assert_eq!(unsafe { libc::kill(tracee, libc::SIGTERM) }, 0);
    assert!(daemon.wait().success());

    let lines = read(&trace);
    let log = format!("{}/db>", data.display());
    let blobs = format!("{}/blobs", data.display());
    let mut checked = 0;
    let mut blobs_synced = 0;
    // Blob files created and not yet synced, and whether the folder changed since its sync.
    let mut unsynced_blobs: Vec<String> = Vec::new();
    let mut folder_dirty = false;
    let mut last_log_sync = None;
    for line in &lines {
        if line.contains("openat(")
            && line.contains(&format!("{blobs}/"))
            && line.contains("O_CREAT")
        {
            let name = quoted_path(line).expect("a blob's path");
            unsynced_blobs.push(name);
            folder_dirty = true;
        } else if line.contains("fsync(") && line.contains(&format!("{blobs}/")) {
            unsynced_blobs.retain(|b| !line.contains(&format!("{b}>")));
            blobs_synced += 1;
        } else if line.contains("fsync(") && line.contains(&format!("{blobs}>")) {
            folder_dirty = false;
        } else if line.contains(&log) && line.contains("fdatasync(") {
            last_log_sync = Some("fdatasync");
        } else if line.contains(&log) && line.contains("sync_file_range(") {
            last_log_sync = Some("sync_file_range");
        } else if is_accepted(line) {
            assert_eq!(
                last_log_sync,
                Some("fdatasync"),
                "the last sync of the log before answer {checked} was not an fdatasync:\n{}",
                lines.join("\n")
            );
            assert!(
                unsynced_blobs.is_empty() && !folder_dirty,
                "answer {checked} was sent with blobs {unsynced_blobs:?} (folder synced: {}) not synced",
                !folder_dirty
            );
            checked += 1;
        }
    }
    assert_eq!(checked, SMALL + LARGE, "answers found in the trace");
    // The names are durable too: the data directory sled made, and the files in it.
    let first_answer = position(&lines, is_accepted);
    for folder in [data.as_path(), setup.dir.path()] {
        let synced = format!("{}>)", folder.display());
        assert!(
            lines[..first_answer]
                .iter()
                .any(|l| l.contains("fsync(") && l.contains(&synced)),
            "{} was not synced before the first answer",
            folder.display()
        );
    }
    assert!(
        blobs_synced > 0,
        "no blob file was written: the large events no longer exercise them"
    );

    compaction_syncs_the_copy_and_the_swap(&setup);
}

fn exported_file_is_synced_before_and_after_its_rename(setup: &Setup, server: &str) {
    let file = setup.dir.path().join("archive.jsonl");
    let trace = setup.dir.path().join("export.strace");
    let file_arg = file.to_str().expect("a UTF-8 path");
    let (ok, out) = traced(&["export", file_arg, "--server", server], &trace);
    assert!(ok, "{out}");
    let lines = read(&trace);
    let partial = format!("{file_arg}.partial");
    let synced = position(&lines, |l| {
        l.contains("fsync(") && l.contains(&format!("{partial}>"))
    });
    let renamed = position(&lines, |l| l.contains("rename") && l.contains(&partial));
    let folder = format!("{}>", setup.dir.path().display());
    let folder_synced = lines
        .iter()
        .rposition(|l| l.contains("fsync(") && l.contains(&format!("{folder})")));
    let all = lines.join("\n");
    assert!(
        synced < renamed,
        "the export was renamed before it was synced:\n{all}"
    );
    assert!(
        folder_synced.is_some_and(|f| f > renamed),
        "the export's folder was not synced after the rename:\n{all}"
    );
}

fn compaction_syncs_the_copy_and_the_swap(setup: &Setup) {
    let data = setup.data_dir();
    let data_arg = data.to_str().expect("a UTF-8 path");
    let trace = setup.dir.path().join("compact.strace");
    let (ok, out) = traced(&["compact", "--data-dir", data_arg], &trace);
    assert!(ok, "{out}");
    let lines = read(&trace);
    let all = lines.join("\n");
    let fresh = format!("{data_arg}.compacting/");
    let old = format!("{data_arg}.before-compact/");
    let mut moved = 0;
    let mut last_rename = 0;
    for (at, line) in lines.iter().enumerate() {
        if !line.contains("rename") {
            continue;
        }
        last_rename = at;
        // rename("DATA.compacting/NAME", "DATA/NAME"): the copy's file was synced before.
        let Some(from) = quoted_path(line).filter(|p| p.starts_with(&fresh)) else {
            continue;
        };
        let synced = lines[..at]
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&format!("{from}>")));
        assert!(
            synced,
            "{from} was moved into the store before it was synced:\n{all}"
        );
        moved += 1;
    }
    assert!(moved >= 2, "the swap moved the copy's conf and db:\n{all}");
    let removed = position(&lines, |l| {
        (l.contains("unlink") || l.contains("rmdir")) && l.contains(&old)
    });
    let swap_synced = lines[last_rename..removed]
        .iter()
        .any(|l| l.contains("fsync(") && l.contains(&format!("{data_arg}>)")));
    assert!(
        swap_synced,
        "the old files were removed before the swap was synced:\n{all}"
    );
}

/// Runs `itsmd ARGS` under strace, recording its file syncs, renames and removals to `trace`.
fn traced(args: &[&str], trace: &Path) -> (bool, String) {
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-yy", "-e"])
        .arg("trace=fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,rmdir")
        .arg("-o")
        .arg(trace)
        .arg(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run strace (installed by .ci/run)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The first line where `pred` holds (the test fails when none does).
fn position(lines: &[String], pred: impl Fn(&str) -> bool) -> usize {
    lines
        .iter()
        .position(|l| pred(l))
        .unwrap_or_else(|| panic!("no such line in the trace:\n{}", lines.join("\n")))
}

fn read(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A 202 answer written to a client connection.
fn is_accepted(line: &str) -> bool {
    line.contains("TCP:[") && line.contains("HTTP/1.1 202")
}

fn answers(lines: &[String]) -> usize {
    lines.iter().filter(|l| is_accepted(l)).count()
}

/// The first quoted path of a call: `openat(AT_FDCWD<…>, "PATH", …)`, `rename("PATH", …)`.
fn quoted_path(line: &str) -> Option<String> {
    let start = line.find('"')? + 1;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

/// The one child of process `pid` (strace's tracee).
fn child_of(pid: i32) -> i32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("the tracer's children");
    let mut ids = children.split_whitespace();
    let child = ids
        .next()
        .expect("strace runs the daemon")
        .parse()
        .expect("a pid");
    assert_eq!(ids.next(), None, "strace runs one process");
    child
}

/// A store in memory loses everything at a reboot, synced or not: the daemon says so.
#[test]
fn a_data_directory_in_memory_is_warned_of_at_start() {
    let setup = Setup {
        dir: tempfile::tempdir_in("/dev/shm").expect("a folder on /dev/shm (a tmpfs)"),
        rules_dir: None,
        config: None,
    };
    let daemon = setup.start();
    let warning = daemon.wait_for_warning("The data directory is in memory");
    assert_eq!(warning["file_system"], "tmpfs", "{warning}");
    assert_eq!(
        warning["data_dir"],
        setup.data_dir().display().to_string(),
        "{warning}"
    );
    assert!(daemon.terminate().success());
}

/// After a failed `fdatasync` the kernel may have dropped the pages it could not write and
/// report the next sync as a success: nothing is acknowledged again until a restart.
#[test]
fn after_a_failed_sync_nothing_is_acknowledged_until_a_restart() {
    let setup = Setup::new();
    let fail = setup.dir.path().join("disk-fails");
    let failpoint = format!("sync-fails-while={}", fail.display());
    let d = setup.start_with(&[], &[("ITSMD_FAILPOINT", &failpoint)]);
    let event = |key: &str| {
        serde_json::json!({"source": "power", "key": key, "status": "firing",
            "severity": "critical", "summary": key})
        .to_string()
    };
    assert_eq!(d.post("/api/v1/events", &event("before")).0, 202);

    std::fs::write(&fail, b"").unwrap();
    let (status, err) = d.post("/api/v1/events", &event("during"));
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"]["code"], "store_unavailable", "{err}");
    d.wait_for_log(|v| {
        v["level"] == "ERROR"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("The disk failed to sync the store"))
    });

    // The disk answers again, but what it lost is not known: still refused, saying why.
    std::fs::remove_file(&fail).unwrap();
    let (status, err) = d.post("/api/v1/events", &event("after"));
    assert_eq!(status, 503, "{err}");
    let (status, ready) = d.get("/readyz");
    assert_eq!(status, 503, "{ready}");
    let why = ready["error"]["message"].as_str().unwrap_or_default();
    assert!(
        why.contains("an earlier sync of the store's files failed")
            && why.contains("restart itsmd"),
        "{why}"
    );
    // Its final flush is refused too, and the exit says so.
    assert!(!d.terminate().success());

    // A restart reads the store back from the disk and acknowledges again.
    let d = setup.start();
    assert_eq!(d.post("/api/v1/events", &event("after")).0, 202);
    assert_eq!(d.get("/readyz").0, 200);
    let keys: Vec<String> = crate::support::incidents(&d)
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(keys.iter().any(|k| k == "before"), "{keys:?}");
    assert!(keys.iter().any(|k| k == "after"), "{keys:?}");
}
