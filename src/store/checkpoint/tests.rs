use std::path::Path;
use std::time::Duration;

use super::CheckpointPolicy;
use crate::store::{SledStore, Store, Tree, WriteBatch};

/// Checkpoint whenever anything was written, quiet or not.
const ALWAYS: CheckpointPolicy = CheckpointPolicy {
    quiet_bytes: 0,
    quiet: Duration::ZERO,
    busy_bytes: 1,
};

/// Writes `n` tickets of 1 KiB under `prefix` and flushes.
fn write(s: &SledStore, prefix: &str, n: usize) {
    let mut b = WriteBatch::default();
    for i in 0..n {
        b.put(
            Tree::Tickets,
            format!("{prefix}{i:05}").into_bytes(),
            vec![b'x'; 1024],
        );
    }
    s.apply(b).unwrap();
    s.flush().unwrap();
}

/// The log position of the newest snapshot sled wrote (`snap.<LSN hex>` files).
fn snapshot_lsn(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
        })
        .max()
}

#[test]
fn a_checkpoint_snapshots_the_log_and_keeps_every_record_readable_and_writable() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 8 << 20).unwrap();
    write(&s, "a", 500);
    assert!(s.log_bytes() > 500 * 1024, "{}", s.log_bytes());
    let before = snapshot_lsn(dir.path());

    let done = s
        .checkpoint(&ALWAYS)
        .unwrap()
        .expect("a checkpoint was due");
    assert!(done.replayed_bytes > 500 * 1024);
    assert!(done.busy);
    assert_eq!(s.log_bytes(), 0);
    // The reopen wrote a snapshot past the log written before it: the next open starts there.
    let after = snapshot_lsn(dir.path()).expect("a snapshot after the checkpoint");
    assert!(before.is_none_or(|b| after > b), "{before:?} → {after}");

    assert_eq!(
        s.get(Tree::Tickets, b"a00499").unwrap(),
        Some(vec![b'x'; 1024])
    );
    write(&s, "b", 10);
    assert_eq!(s.scan_prefix(Tree::Tickets, b"").count(), 510);
    drop(s);
    let s = SledStore::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(s.scan_prefix(Tree::Tickets, b"").count(), 510);
}

#[test]
fn a_checkpoint_waits_for_a_scan_being_read_and_the_scan_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 8 << 20).unwrap();
    write(&s, "a", 100);
    let mut scan = s.scan_prefix(Tree::Tickets, b"");
    assert!(scan.next().is_some());
    assert_eq!(
        s.checkpoint(&ALWAYS).unwrap(),
        None,
        "the scan holds the store"
    );
    assert_eq!(scan.count(), 99);
    assert!(s.checkpoint(&ALWAYS).unwrap().is_some());
}

#[test]
fn a_quiet_checkpoint_waits_for_quiet_and_for_enough_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 8 << 20).unwrap();
    write(&s, "a", 10);
    let hour = CheckpointPolicy {
        quiet_bytes: 1,
        quiet: Duration::from_secs(3600),
        busy_bytes: 0,
    };
    assert_eq!(s.checkpoint(&hour).unwrap(), None, "written just now");
    let much = CheckpointPolicy {
        quiet_bytes: 1 << 30,
        quiet: Duration::ZERO,
        busy_bytes: 0,
    };
    assert_eq!(s.checkpoint(&much).unwrap(), None, "too little written");
    let now = CheckpointPolicy {
        quiet_bytes: 1,
        quiet: Duration::ZERO,
        busy_bytes: 0,
    };
    let done = s.checkpoint(&now).unwrap().expect("due");
    assert!(!done.busy);
    assert_eq!(s.checkpoint(&now).unwrap(), None, "nothing written since");
}

#[test]
fn stores_that_replay_no_log_take_no_checkpoint() {
    let s = crate::store::MemoryStore::new();
    let mut b = WriteBatch::default();
    b.put(Tree::Tickets, b"t".to_vec(), b"v".to_vec());
    s.apply(b).unwrap();
    assert_eq!(s.log_bytes(), 0);
    assert_eq!(s.checkpoint(&ALWAYS).unwrap(), None);
}

#[test]
fn the_quiet_a_checkpoint_waits_for_grows_with_what_it_would_replay() {
    let mib = 1 << 20;
    let policy = CheckpointPolicy {
        quiet_bytes: 64 * mib,
        quiet: Duration::from_secs(1),
        busy_bytes: 0,
    };
    let secs = Duration::from_secs;
    assert_eq!(policy.due(63 * mib, secs(3600)), None, "too little written");
    assert_eq!(policy.due(64 * mib, secs(1)), Some(false));
    assert_eq!(policy.due(100 * mib, Duration::from_millis(900)), None);
    // A gigabyte after a storm: sixteen quiet seconds, not one.
    assert_eq!(policy.due(1024 * mib, secs(15)), None);
    assert_eq!(policy.due(1024 * mib, secs(16)), Some(false));
    // Never more than half a minute.
    assert_eq!(policy.due(1 << 50, secs(30)), Some(false));
    let busy = CheckpointPolicy {
        busy_bytes: 512 * mib,
        ..policy
    };
    assert_eq!(busy.due(512 * mib, Duration::ZERO), Some(true));
    assert_eq!(busy.due(512 * mib, secs(8)), Some(false));
}
