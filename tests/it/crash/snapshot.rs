//! SIGKILL during a snapshot. sled writes a snapshot of its page table only while it opens,
//! when the log grew since the last one: to `snap.<LSN>.generating`, synced, then renamed to
//! `snap.<LSN>`. A start with the test failpoint `stop-in-snapshot` stops itself (SIGSTOP) the
//! moment sled creates that file; the test checks that the process is stopped with the file
//! still there, and SIGKILLs it. The next start must open the store with no error, and the
//! crash test's final checks show that nothing acknowledged was lost.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{names, wait_until};
use crate::support::{BIN, Setup, process_state};

/// What the kill left in the data directory.
pub struct Left {
    /// The snapshot being written when the process was killed.
    pub file: String,
    /// How much of it was written (an empty one is what a full disk leaves too).
    pub bytes: u64,
}

/// Starts the daemon with the failpoint on `setup`'s store, SIGKILLs it while it writes a
/// snapshot, and returns what that left.
pub fn kill_during_snapshot(setup: &Setup, maildir: &Path) -> Left {
    let data = setup.data_dir();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut cmd = Command::new(BIN);
    cmd.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--rules-dir")
        .arg(setup.rules_dir.as_deref().unwrap_or(&shipped))
        .arg("--maildir")
        .arg(maildir)
        .env("RUST_LOG", "info")
        .env("ITSMD_FAILPOINT", "stop-in-snapshot")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("log file"));
    if let Some(config) = &setup.config {
        cmd.arg("--config").arg(config);
    }
    let mut child = cmd.spawn().expect("spawn itsmd");
    let logs = || std::fs::read_to_string(log.path()).unwrap_or_default();
    wait_until("the daemon stopped itself writing a snapshot", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited before a snapshot: {status:?}\n{}", logs());
        }
        assert!(
            !logs().contains("\"Listening.\""),
            "served without writing a snapshot (had the log not grown?)\n{}",
            logs()
        );
        process_state(child.id()) == Some('T')
    });
    let generating: Vec<String> = names(&data)
        .into_iter()
        .filter(|n| n.starts_with("snap.") && n.ends_with(".generating"))
        .collect();
    let [file] = generating.as_slice() else {
        let _ = child.kill();
        panic!(
            "stopped, but not with one snapshot being written: {:?}",
            names(&data)
        );
    };
    let bytes = std::fs::metadata(data.join(file))
        .expect("snapshot file")
        .len();
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    Left {
        file: file.clone(),
        bytes,
    }
}
