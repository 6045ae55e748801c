//! TEST ONLY: a store whose writes fail on demand, so that the integration tests can show
//! what the daemon does when the disk refuses writes (readiness, 503 to senders, recovery).
//!
//! With `ITSMD_FAILPOINT=store-fail-while=PATH`, [`crate::store::open`] wraps the store: every
//! `apply` and `flush` fails while the file PATH exists, and works again once it is removed.
//! With `ITSMD_FAILPOINT=stop-in-snapshot`, the embedded store's open stops the whole process
//! (SIGSTOP) the moment sled creates a `snap.*.generating` file, so that a test can SIGKILL it
//! while the snapshot is being written (sled writes one only while opening, when the log grew
//! since the last). With `ITSMD_FAILPOINT=sync-fails-while=PATH`, the embedded store's sync
//! of its files ([`super::disk_sync`]) fails with EIO while PATH exists, as a failing disk's
//! `fdatasync` does. Nothing else reads these values (the same variable's `mail-after-commit`
//! is the Maildir source's); never set them in production.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::{ScanIter, Store, StoreError, Tree, WriteBatch};

/// The environment variable (shared with the Maildir source's failpoint) and this prefix.
const VAR: &str = "ITSMD_FAILPOINT";
const PREFIX: &str = "store-fail-while=";
const STOP_IN_SNAPSHOT: &str = "stop-in-snapshot";

const SYNC_PREFIX: &str = "sync-fails-while=";

/// The file named by the `sync-fails-while` failpoint, if it is set.
pub fn sync_fails_while() -> Option<PathBuf> {
    let value = std::env::var(VAR).ok()?;
    let path = PathBuf::from(value.strip_prefix(SYNC_PREFIX)?);
    tracing::warn!(file = %path.display(), "TEST ONLY failpoint set: syncs of the store's files fail while the file exists.");
    Some(path)
}

/// The file named by the failpoint, if it is set.
pub fn from_env() -> Option<PathBuf> {
    let value = std::env::var(VAR).ok()?;
    value.strip_prefix(PREFIX).map(PathBuf::from)
}

/// With `stop-in-snapshot` set, watches `dir` and stops this process as soon as a snapshot
/// file is created in it; the watch lasts as long as the returned watcher. `None` when the
/// failpoint is not set (or the directory cannot be watched, which is logged).
pub fn stop_in_snapshot(dir: &Path) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    if std::env::var(VAR).ok()? != STOP_IN_SNAPSHOT {
        return None;
    }
    let watcher = notify::recommended_watcher(|event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let generating = event.paths.iter().any(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap.") && n.ends_with(".generating"))
        });
        if matches!(event.kind, notify::EventKind::Create(_)) && generating {
            // SAFETY: kill(2) on our own pid has no memory-safety concerns.
            unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(error) => {
            tracing::error!(%error, "TEST ONLY failpoint stop-in-snapshot: cannot watch the data directory.");
            return None;
        }
    };
    if let Err(error) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        tracing::error!(dir = %dir.display(), %error, "TEST ONLY failpoint stop-in-snapshot: cannot watch the data directory.");
        return None;
    }
    tracing::warn!(dir = %dir.display(), "TEST ONLY failpoint set: the process stops itself when the store writes a snapshot.");
    Some(watcher)
}

pub struct FailingStore {
    pub inner: Arc<dyn Store>,
    /// Writes fail while this file exists.
    pub while_exists: PathBuf,
}

impl FailingStore {
    fn check(&self, op: &'static str) -> Result<(), StoreError> {
        if self.while_exists.exists() {
            return Err(StoreError::Io {
                op,
                source: format!(
                    "failpoint: writes fail while {} exists (TEST ONLY)",
                    self.while_exists.display()
                )
                .into(),
            });
        }
        Ok(())
    }
}

impl Store for FailingStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)
    }

    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        self.inner.range(tree, start, end)
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.check("apply")?;
        self.inner.apply(batch)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.check("flush")?;
        self.inner.flush()
    }

    fn size_on_disk(&self) -> u64 {
        self.inner.size_on_disk()
    }

    fn log_bytes(&self) -> u64 {
        self.inner.log_bytes()
    }

    fn checkpoint(
        &self,
        policy: &crate::store::checkpoint::CheckpointPolicy,
    ) -> Result<Option<crate::store::checkpoint::Checkpointed>, StoreError> {
        self.inner.checkpoint(policy)
    }
}
