//! The embedded default store: one sled tree, each logical [`Tree`] under its one-byte prefix.
//!
//! One physical tree makes every [`WriteBatch`] a single `apply_batch`, which sled applies
//! atomically, and avoids sled's slower multi-tree transactions on the hot path.

use std::ops::Bound;
use std::path::Path;

use crate::store::{ScanIter, Store, StoreError, Tree, Write, WriteBatch};

pub struct SledStore {
    /// Kept so the database (and its background flusher) lives as long as the store.
    db: sled::Db,
    /// The single physical tree holding every logical tree.
    tree: sled::Tree,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        refuse_read_only(dir)?;
        remove_interrupted_snapshots(dir);
        // TEST ONLY (unset in production): held while sled opens, which is when it snapshots.
        let _stop = crate::store::failpoint::stop_in_snapshot(dir);
        let db = open_db(dir, cache_bytes).map_err(|error| StoreError::Open {
            path: dir.display().to_string(),
            error: error.into(),
        })?;
        let tree = db.open_tree("itsmd").map_err(|error| StoreError::Open {
            path: dir.display().to_string(),
            error: error.into(),
        })?;
        Ok(SledStore { db, tree })
    }
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

/// Refuses a data directory on a read-only file system before sled touches it, saying what
/// to do: the store is left exactly as it was.
fn refuse_read_only(dir: &Path) -> Result<(), StoreError> {
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
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => Err(StoreError::Open {
            path: dir.display().to_string(),
            error: format!(
                "{e}: itsmd needs to write its store; remount the file system read-write or \
                 point --data-dir (store.data_dir) at a writable directory, nothing was changed"
            )
            .into(),
        }),
        // A directory not made yet (sled creates it), or another problem sled reports itself.
        Err(_) => Ok(()),
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

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree
            .get(physical(tree, key))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|source| StoreError::Io {
                op: "get",
                source: source.into(),
            })
    }

    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        let range = (
            physical_bound(tree, start, false),
            physical_bound(tree, end, true),
        );
        Box::new(self.tree.range::<Vec<u8>, _>(range).map(|item| {
            item.map(|(k, v)| (k[1..].to_vec(), v.to_vec()))
                .map_err(|source| StoreError::Io {
                    op: "scan",
                    source: source.into(),
                })
        }))
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for w in batch.writes {
            match w {
                Write::Put { tree, key, value } => b.insert(physical(tree, &key), value),
                Write::Delete { tree, key } => b.remove(physical(tree, &key)),
            }
        }
        self.tree.apply_batch(b).map_err(|source| StoreError::Io {
            op: "apply",
            source: source.into(),
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|source| StoreError::Io {
                op: "flush",
                source: source.into(),
            })
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
