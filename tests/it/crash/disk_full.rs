//! The disk fills under load. The store moves onto a tmpfs a little larger than itself (root
//! only: the tests run as root in CI; otherwise the test fails saying so), the daemon starts
//! on it, and while alerts and mail keep coming a file fills the rest of the disk: commits
//! fail, readiness turns 503 and senders get 503, never a 2xx for what was not stored. The
//! daemon is SIGKILLed on the full disk, a start there must serve or refuse saying what to
//! do, then the space is freed and the crash test goes on on that store.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::load::{self, Format, Ledger, Rng};
use super::{start, wait_until};
use crate::hostile::{Tmpfs, fill, start_or_refuse};
use crate::support::Setup;

/// Room on the tmpfs beside the store as it was moved there, before the disk is filled.
const HEADROOM: u64 = 32 << 20;
/// The annotation each generic alert of this phase carries, in bytes.
const PAD: usize = 8 << 10;

/// What the phase saw.
pub struct Report {
    /// The store's size when it moved onto the tmpfs.
    pub store_bytes: u64,
    /// Alerts acknowledged on this disk before it filled.
    pub acked_before_full: usize,
    /// Whether a start on the full disk served (`true`) or refused saying what to do.
    pub served_when_full: bool,
}

/// Bytes the files under `dir` take on disk.
fn disk_usage(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read data dir")
        .map(|e| {
            let e = e.expect("dir entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                disk_usage(&e.path())
            } else {
                m.blocks() * 512
            }
        })
        .sum()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        if e.metadata().expect("metadata").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy store file");
        }
    }
}

fn acked(ledger: &Ledger) -> usize {
    ledger
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.receipt.is_some())
        .count()
}

fn unacked(ledger: &Ledger) -> usize {
    let sent = ledger.sent.lock().unwrap();
    sent.iter().filter(|s| s.receipt.is_none()).count()
}

/// Moves `setup`'s store onto a tmpfs and runs the phase; the returned tmpfs holds the store
/// from then on (unmounted when dropped).
pub fn fill_under_load(
    setup: &Setup,
    maildir: &Path,
    rng: &mut Rng,
    ledger: &Ledger,
) -> (Tmpfs, Report) {
    let data = setup.data_dir();
    let aside = setup.dir.path().join("data.before-tmpfs");
    std::fs::rename(&data, &aside).expect("move the store aside");
    let store_bytes = disk_usage(&aside);
    let size = (store_bytes + HEADROOM).div_ceil(1 << 20);
    let tmpfs = Tmpfs::mount(&data, &format!("{size}m"));
    copy_tree(&aside, &data);
    std::fs::remove_dir_all(&aside).expect("remove the old store");

    let d = start(setup, maildir);
    let stop = AtomicBool::new(false);
    let seeds: [u64; 3] = std::array::from_fn(|_| rng.next_u64());
    let base = d.url("");
    let before = acked(ledger);
    let (filler, acked_before_full) = std::thread::scope(|s| {
        let (base, stop) = (&base, &stop);
        // Large generic alerts make the store grow (sled reuses its freed log segments).
        s.spawn(move || load::send_alerts(base, Format::Generic, PAD, seeds[0], ledger, stop));
        s.spawn(move || load::send_alerts(base, Format::Prometheus, 0, seeds[1], ledger, stop));
        s.spawn(move || load::write_mails(maildir, seeds[2], ledger, stop));
        let _stop = load::StopOnDrop(stop);
        wait_until("alerts are acknowledged on the tmpfs", || {
            acked(ledger) > before + 20
        });
        let filler = fill(&data);
        wait_until("readiness says the commits fail", || {
            let (status, body) = d.get("/readyz");
            if status == 503 {
                let why = body["error"]["message"].as_str().unwrap_or_default();
                assert!(why.starts_with("the last commit failed"), "{body}");
            }
            status == 503
        });
        let acked_when_full = acked(ledger);
        // The load goes on against the full disk for a while: refused, not acknowledged.
        let refused = unacked(ledger);
        wait_until("senders are refused on the full disk", || {
            unacked(ledger) > refused + 10
        });
        d.kill();
        (filler, acked_when_full - before)
    });
    // A start on the full disk serves or refuses saying what to do; never a broken store.
    let (served_when_full, log) = start_or_refuse(&data);
    assert!(
        served_when_full || log.contains("disk full") || log.contains("free space"),
        "{log}"
    );
    std::fs::remove_file(&filler).expect("free the space");
    (
        tmpfs,
        Report {
            store_bytes,
            acked_before_full,
            served_when_full,
        },
    )
}
