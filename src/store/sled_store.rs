//! The embedded default store: one sled tree, each logical [`Tree`] under its one-byte prefix.
//!
//! One physical tree makes every [`WriteBatch`] a single `apply_batch`, which sled applies
//! atomically, and avoids sled's slower multi-tree transactions on the hot path.
//!
//! Checkpoints: sled 0.34.7 writes its recovery snapshot (the page table) only while it
//! opens, so an open replays every byte written since the previous open.
//! [`Store::checkpoint`] closes and reopens the database while the daemon runs, when
//! [`super::checkpoint`]'s policy says so; every store call waits during the reopen, which
//! costs what a start would have replayed.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::store::checkpoint::{CheckpointPolicy, Checkpointed};
use crate::store::disk_sync::DiskSync;
use crate::store::{ScanIter, Store, StoreError, Tree, Write, WriteBatch};

pub struct SledStore {
    dir: PathBuf,
    cache_bytes: u64,
    /// The open database; a checkpoint swaps it for a fresh open under the write lock. A
    /// call holds the read lock while it runs; a scan holds a clone of the `Arc` instead (it
    /// outlives the call), so a checkpoint knows when no scan still reads the old one.
    /// `None` only after a checkpoint's reopen failed (every call then reports that).
    open: RwLock<Option<Arc<Opened>>>,
    /// Key and value bytes applied since the database was last opened: the log an open
    /// would replay, as the checkpoint policy weighs it.
    since_open: AtomicU64,
    /// When the last batch was applied, in milliseconds since `opened_at`: a quiet
    /// checkpoint waits for a quiet store.
    last_apply_ms: AtomicU64,
    opened_at: Instant,
    /// Set when a sync of the files failed: the kernel may have dropped the pages it could
    /// not write and report the next sync as a success, so nothing written after is
    /// acknowledged again until a restart (every apply and flush then fails saying so).
    sync_failed: std::sync::OnceLock<String>,
}

/// One open of the database.
struct Opened {
    /// Kept so the database lives as long as the store (sled closes it with the last handle).
    db: sled::Db,
    /// The single physical tree holding every logical tree.
    tree: sled::Tree,
    /// What makes sled's flush survive a power loss ([`DiskSync`]).
    sync: DiskSync,
}

/// How long a checkpoint waits for scans still reading the old database (one started just
/// before it took the write lock) before it gives up until the next try. It first looks
/// without blocking anyone and goes on only when no scan is open, so this bounds the wait of
/// the calls that queue behind the write lock meanwhile.
const DRAIN_WAIT: Duration = Duration::from_millis(50);

impl SledStore {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        refuse_unwritable(dir)?;
        let opened = open_handles(dir, cache_bytes)?;
        Ok(SledStore {
            dir: dir.to_path_buf(),
            cache_bytes,
            open: RwLock::new(Some(Arc::new(opened))),
            since_open: AtomicU64::new(0),
            last_apply_ms: AtomicU64::new(0),
            opened_at: Instant::now(),
            sync_failed: std::sync::OnceLock::new(),
        })
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_apply_ms.load(Ordering::Relaxed));
        self.opened_at.elapsed().saturating_sub(last)
    }

    /// Refuses a write once a sync has failed ([`SledStore::sync_failed`]).
    fn refuse_after_failed_sync(&self, op: &'static str) -> Result<(), StoreError> {
        match self.sync_failed.get() {
            None => Ok(()),
            Some(error) => Err(StoreError::Io {
                op,
                source: format!(
                    "an earlier sync of the store's files failed ({error}), so what was written \
                     since may not be on the disk; nothing more is acknowledged: check the \
                     disk (dmesg) and restart itsmd"
                )
                .into(),
            }),
        }
    }

    /// Runs one call on the open database, holding the read lock (a checkpoint waits).
    fn with<T>(
        &self,
        call: impl FnOnce(&Opened) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let open = self.open.read().unwrap_or_else(|e| e.into_inner());
        call(open.as_deref().ok_or_else(closed)?)
    }

    /// The open database, for a scan that outlives the call.
    fn opened(&self) -> Result<Arc<Opened>, StoreError> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(closed)
    }
}

/// After a checkpoint's reopen failed, every call says so until the next try opens the
/// store again (the checkpoint task retries every second).
fn closed() -> StoreError {
    StoreError::Io {
        op: "open",
        source: "the embedded store could not be reopened after a checkpoint; restart itsmd".into(),
    }
}

/// Opens the database and its tree; both the first open and a checkpoint's reopen.
fn open_handles(dir: &Path, cache_bytes: u64) -> Result<Opened, StoreError> {
    remove_interrupted_snapshots(dir);
    // TEST ONLY (unset in production): held while sled opens, which is when it snapshots.
    let _stop = crate::store::failpoint::stop_in_snapshot(dir);
    let db = open_db(dir, cache_bytes).map_err(|error| match &error {
        sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
            StoreError::Locked {
                path: dir.display().to_string(),
            }
        }
        _ => StoreError::Open {
            path: dir.display().to_string(),
            error: error.into(),
        },
    })?;
    let tree = db.open_tree("itsmd").map_err(|error| StoreError::Open {
        path: dir.display().to_string(),
        error: error.into(),
    })?;
    let sync = DiskSync::open(dir).map_err(|error| StoreError::Open {
        path: dir.display().to_string(),
        error: format!("cannot open its files to sync them: {error}").into(),
    })?;
    Ok(Opened { db, tree, sync })
}

/// How long an open waits for the file lock a store closed in this process may still hold:
/// sled's I/O threads drop their handle on the files a moment after the last `Db` is dropped,
/// so a reopen right after a close (a compaction's swap, a restart in tests) can find the lock
/// taken by nobody that still runs. Another process holding it is reported after this wait.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn open_db(dir: &Path, cache_bytes: u64) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Every commit flushes explicitly; a background flusher would only hold the file
            // lock after drop (spacejam/sled#1289) and flush nothing new.
            .flush_every_ms(None)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Refuses a data directory on a read-only file system, or one the daemon's user may not
/// write, before sled touches it, saying what to do: the store is left exactly as it was.
fn refuse_unwritable(dir: &Path) -> Result<(), StoreError> {
    let probe = dir.join(".itsmd-write-probe");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    match result {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => match crate::store::unwritable(dir, &e) {
            Some(refused) => Err(refused),
            // A directory not made yet (sled creates it), or another problem sled reports
            // itself.
            None => Ok(()),
        },
    }
}

/// Removes the `snap.<LSN>.generating` files an interrupted snapshot left behind (a start on a
/// full disk leaves an empty one). sled 0.34.7 writes a snapshot to `snap.<LSN>.generating`,
/// syncs it and only then renames it to `snap.<LSN>`; but on open it reads the last snapshot
/// file by name, `.generating` included, and an incomplete one makes every later start fail
/// with "Read corrupted data" although the log is intact. Such a file holds nothing the log
/// does not: the snapshot is an index rebuilt from the log. A `.generating` file that is
/// complete (length and CRC as sled writes them) is left alone: sled reads it fine.
fn remove_interrupted_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        // A missing or unreadable directory: sled's open reports it with its own error.
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with("snap.") && name.ends_with(".generating")) {
            continue;
        }
        let path = entry.path();
        match std::fs::read(&path) {
            Ok(bytes) if snapshot_is_complete(&bytes) => {}
            Ok(bytes) => match std::fs::remove_file(&path) {
                Ok(()) => tracing::warn!(
                    file = %path.display(),
                    bytes = bytes.len(),
                    "Removed an incomplete snapshot left by an interrupted write (a full disk?); the store is rebuilt from its log."
                ),
                Err(error) => tracing::warn!(
                    file = %path.display(),
                    %error,
                    "Cannot remove an incomplete snapshot left by an interrupted write; opening the store may fail."
                ),
            },
            Err(error) => tracing::warn!(
                file = %path.display(),
                %error,
                "Cannot read a snapshot left by an interrupted write."
            ),
        }
    }
}

/// Whether a snapshot file ends as sled 0.34.7 ends one: the body, its length (8 bytes), and
/// the CRC-32 of the body (4 bytes, little-endian).
fn snapshot_is_complete(bytes: &[u8]) -> bool {
    if bytes.len() <= 12 {
        return false;
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 12);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&trailer[8..]);
    crc32fast::hash(body) == u32::from_le_bytes(crc)
}

fn physical(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(tree.prefix());
    k.extend_from_slice(key);
    k
}

fn physical_bound(tree: Tree, bound: Bound<Vec<u8>>, is_end: bool) -> Bound<Vec<u8>> {
    match bound {
        Bound::Included(k) => Bound::Included(physical(tree, &k)),
        Bound::Excluded(k) => Bound::Excluded(physical(tree, &k)),
        // An unbounded end stops at the next tree's prefix.
        Bound::Unbounded if is_end => match tree.prefix().checked_add(1) {
            Some(next) => Bound::Excluded(vec![next]),
            None => Bound::Unbounded,
        },
        Bound::Unbounded => Bound::Included(vec![tree.prefix()]),
    }
}

/// A scan, holding the open database it reads from (so a checkpoint waits for it).
struct Scan {
    _opened: Arc<Opened>,
    iter: sled::Iter,
}

/// A scanned pair as a logical entry (the tree prefix taken off the key).
fn entry(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<crate::store::Entry, StoreError> {
    item.map(|(k, v)| (k[1..].to_vec(), v.to_vec()))
        .map_err(|source| StoreError::Io {
            op: "scan",
            source: source.into(),
        })
}

impl Iterator for Scan {
    type Item = Result<crate::store::Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.iter.next().map(entry)
    }
}

impl DoubleEndedIterator for Scan {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.iter.next_back().map(entry)
    }
}

fn get(o: &Opened, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    o.tree
        .get(physical(tree, key))
        .map(|v| v.map(|v| v.to_vec()))
        .map_err(|source| StoreError::Io {
            op: "get",
            source: source.into(),
        })
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|o| get(o, tree, key))
    }

    fn get_many(&self, keys: &[(Tree, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.with(|o| keys.iter().map(|(tree, key)| get(o, *tree, key)).collect())
    }

    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        let opened = match self.opened() {
            Ok(opened) => opened,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let range = (
            physical_bound(tree, start, false),
            physical_bound(tree, end, true),
        );
        let iter = opened.tree.range::<Vec<u8>, _>(range);
        Box::new(Scan {
            _opened: opened,
            iter,
        })
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.refuse_after_failed_sync("apply")?;
        let mut b = sled::Batch::default();
        let mut bytes = 0u64;
        for w in batch.writes {
            match w {
                Write::Put { tree, key, value } => {
                    bytes += (key.len() + value.len() + 1) as u64;
                    b.insert(physical(tree, &key), value)
                }
                Write::Delete { tree, key } => {
                    bytes += (key.len() + 1) as u64;
                    b.remove(physical(tree, &key))
                }
            }
        }
        // Counted under the read lock, so a checkpoint sees every batch the database it
        // closes holds, and none it does not.
        self.with(|o| {
            o.tree.apply_batch(b).map_err(|source| StoreError::Io {
                op: "apply",
                source: source.into(),
            })?;
            self.since_open.fetch_add(bytes, Ordering::Relaxed);
            let now = u64::try_from(self.opened_at.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_apply_ms.store(now, Ordering::Relaxed);
            Ok(())
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.refuse_after_failed_sync("flush")?;
        self.with(|o| {
            o.db.flush().map_err(|source| StoreError::Io {
                op: "flush",
                source: source.into(),
            })?;
            o.sync.sync().map_err(|source| {
                tracing::error!(
                    dir = %self.dir.display(),
                    error = %source,
                    "The disk failed to sync the store: nothing more is acknowledged until itsmd restarts; check the disk (dmesg)."
                );
                let _ = self.sync_failed.set(source.to_string());
                StoreError::Io {
                    op: "sync",
                    source: source.into(),
                }
            })
        })
    }

    fn size_on_disk(&self) -> u64 {
        self.with(|o| Ok(o.db.size_on_disk().unwrap_or(0)))
            .unwrap_or(0)
    }

    fn log_bytes(&self) -> u64 {
        self.since_open.load(Ordering::Relaxed)
    }

    /// Closes and reopens the database when `policy` says a checkpoint is due, so the next
    /// open replays only what is written after it. Returns `None` when none was due, or when
    /// a scan kept reading the database for [`DRAIN_WAIT`] (the next try takes it).
    fn checkpoint(&self, policy: &CheckpointPolicy) -> Result<Option<Checkpointed>, StoreError> {
        // A reopen would read back pages the disk may not hold.
        if self.sync_failed.get().is_some() {
            return Ok(None);
        }
        if policy
            .due(self.since_open.load(Ordering::Relaxed), self.quiet_for())
            .is_none()
        {
            return Ok(None);
        }
        // A scan being read (an export, a listing) holds the database: try again later
        // rather than stall every call behind it.
        let in_flight = self
            .open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, Arc::strong_count);
        if in_flight > 1 {
            return Ok(None);
        }
        let started = Instant::now();
        let mut slot = self.open.write().unwrap_or_else(|e| e.into_inner());
        // Under the write lock no call runs; a scan started before holds its clone.
        if let Some(current) = slot.as_ref() {
            while Arc::strong_count(current) > 1 {
                if started.elapsed() >= DRAIN_WAIT {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let since = self.since_open.load(Ordering::Relaxed);
        let Some(busy) = policy.due(since, self.quiet_for()) else {
            return Ok(None);
        };
        if let Some(current) = slot.as_ref() {
            // Every commit flushed already, or is about to (its flush then finds nothing
            // left): the close loses nothing. On an error the store stays as it was.
            current.db.flush().map_err(|source| StoreError::Io {
                op: "flush before a checkpoint",
                source: source.into(),
            })?;
        }
        // The last handle: sled closes the database.
        drop(slot.take());
        // When this fails the slot stays empty: calls report it, and the next try opens again.
        *slot = Some(Arc::new(open_handles(&self.dir, self.cache_bytes)?));
        self.since_open.fetch_sub(since, Ordering::Relaxed);
        Ok(Some(Checkpointed {
            replayed_bytes: since,
            paused: started.elapsed(),
            busy,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder the daemon's user may not write is refused with what to do, before sled
    /// touches it; any other error is left to sled (the tests run as root, so the denial is
    /// built rather than provoked).
    #[test]
    fn an_unwritable_folder_is_refused_saying_what_to_do() {
        let dir = Path::new("/var/lib/itsmd");
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let message = crate::store::unwritable(dir, &denied).unwrap().to_string();
        assert!(
            message.starts_with("cannot write the store at /var/lib/itsmd: permission denied: "),
            "{message}"
        );
        assert!(
            message.contains("`chown -R itsmd: /var/lib/itsmd`"),
            "{message}"
        );
        assert!(message.ends_with("nothing was changed"), "{message}");
        let read_only = std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem);
        let message = crate::store::unwritable(dir, &read_only)
            .unwrap()
            .to_string();
        assert!(
            message.contains("remount the file system read-write"),
            "{message}"
        );
        let other = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(crate::store::unwritable(dir, &other).is_none());
    }
}
