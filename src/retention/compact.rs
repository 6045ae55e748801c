//! `itsmd compact --data-dir`: returns the space pruning freed to the file system.
//!
//! sled reuses the pages of deleted records for new writes, but does not shrink its files;
//! so with the daemon stopped, compaction copies every live record into a fresh store beside
//! the data directory, checks the counts per tree, and swaps the store's files (the old ones
//! are moved into `NAME.before-compact` first and removed only after the swap, so an
//! interrupted compaction leaves the old files there and the new in `NAME.compacting`; a
//! next run refuses until they are put back). Other files in the directory, such as the
//! Maildir, stay. docs/operations.md, "Retention".

use std::ops::Bound;
use std::path::{Path, PathBuf};

use crate::config::{StoreBackend, StoreConfig};
use crate::store::{Store, StoreError, Tree, WriteBatch};

/// Writes per batch while copying: bounds memory, not correctness.
const COPY_BATCH: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(
        "compaction is for the embedded store; on PostgreSQL run VACUUM FULL itsmd_kv (docs/operations.md)"
    )]
    NotEmbedded,
    #[error("{0} already exists (an interrupted compaction?): check it, remove it and run again")]
    Leftover(PathBuf),
    #[error("{path} is not a data directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "{path} is not an itsmd store (no sled `conf` and `db` files in it): give the data \
         directory the daemon uses"
    )]
    NotAStore { path: PathBuf },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("tree {tree}: copied {copied} records but the source has {source_count}")]
    Mismatch {
        tree: &'static str,
        copied: u64,
        source_count: u64,
    },
    #[error("{op} {path}: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub records: u64,
    /// Bytes the data directory took on disk before and after (allocated blocks).
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Compacts the embedded store of `config` (the daemon must be stopped: the store's lock
/// refuses a second opener).
pub fn compact(config: &StoreConfig) -> Result<Compacted, CompactError> {
    if config.backend != StoreBackend::Embedded {
        return Err(CompactError::NotEmbedded);
    }
    let dir = config.data_dir.clone();
    if !dir.is_dir() {
        return Err(CompactError::NotADirectory { path: dir });
    }
    // Compaction replaces the folder: never one that some typo pointed at.
    if !(dir.join("conf").is_file() && dir.join("db").is_file()) {
        return Err(CompactError::NotAStore { path: dir });
    }
    let fresh = sibling(&dir, "compacting");
    let old = sibling(&dir, "before-compact");
    for leftover in [&fresh, &old] {
        if leftover.exists() {
            return Err(CompactError::Leftover(leftover.clone()));
        }
    }
    let bytes_before = store_usage(&dir)?;
    let records = {
        let source = crate::store::open(config)?;
        let target = crate::store::open(&StoreConfig {
            data_dir: fresh.clone(),
            ..config.clone()
        })?;
        copy_all(&*source, &*target)?
    };
    // The copy is on the disk, names and all, before the old files move: a power loss in
    // the swap leaves both stores whole.
    sync_store(&fresh)?;
    // Only the store's own files are swapped: a data directory may also hold the Maildir and
    // the `.forward` that delivers into it (docs/operations.md), which stay where they are.
    std::fs::create_dir(&old).map_err(io("cannot create", &old))?;
    for name in store_entries(&dir)? {
        std::fs::rename(dir.join(&name), old.join(&name)).map_err(io("cannot move", &dir))?;
    }
    for name in store_entries(&fresh)? {
        std::fs::rename(fresh.join(&name), dir.join(&name)).map_err(io("cannot move", &fresh))?;
    }
    // The swap is durable before the old files go.
    for folder in [&dir, &old, &fresh] {
        sync_path(folder)?;
    }
    std::fs::remove_dir(&fresh).map_err(io("cannot remove", &fresh))?;
    std::fs::remove_dir_all(&old).map_err(io("cannot remove", &old))?;
    Ok(Compacted {
        records,
        bytes_before,
        bytes_after: store_usage(&dir)?,
    })
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CompactError {
    let path = path.to_path_buf();
    move |error| CompactError::Io { op, path, error }
}

/// Whether `name` is one of sled's entries in a data directory: its `conf`, `db` and `blobs`
/// and its snapshots (`snap.<LSN>`).
fn is_store_entry(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    matches!(&*name, "conf" | "db" | "blobs") || name.starts_with("snap.")
}

/// The names of the store's entries in `dir`.
fn store_entries(dir: &Path) -> Result<Vec<std::ffi::OsString>, CompactError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("cannot list", dir))? {
        let name = entry.map_err(io("cannot list", dir))?.file_name();
        if is_store_entry(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// `fsync` of every store entry in `dir` (the files in `blobs/` too) and of `dir` itself.
fn sync_store(dir: &Path) -> Result<(), CompactError> {
    for name in store_entries(dir)? {
        let path = dir.join(&name);
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io("cannot list", &path))? {
                sync_path(&entry.map_err(io("cannot list", &path))?.path())?;
            }
        }
        sync_path(&path)?;
    }
    sync_path(dir)
}

fn sync_path(path: &Path) -> Result<(), CompactError> {
    crate::store::sync_path(path).map_err(io("cannot sync", path))
}

/// Bytes allocated on disk to the store's entries in `dir`.
fn store_usage(dir: &Path) -> Result<u64, CompactError> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for name in store_entries(dir)? {
        let path = dir.join(&name);
        let meta = std::fs::metadata(&path).map_err(io("cannot stat", &path))?;
        total += if meta.is_dir() {
            disk_usage(&path)?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

/// Copies every record of every tree, flushes, and checks the counts; the records copied.
pub fn copy_all(source: &dyn Store, target: &dyn Store) -> Result<u64, CompactError> {
    let mut total = 0;
    for tree in Tree::ALL {
        let mut batch = WriteBatch::default();
        let mut copied = 0u64;
        for item in source.range(tree, Bound::Unbounded, Bound::Unbounded) {
            let (key, value) = item?;
            batch.put(tree, key, value);
            copied += 1;
            if batch.len() == COPY_BATCH {
                target.apply(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            target.apply(batch)?;
        }
        let landed = target
            .range(tree, Bound::Unbounded, Bound::Unbounded)
            .count() as u64;
        if landed != copied {
            return Err(CompactError::Mismatch {
                tree: tree.name(),
                copied: landed,
                source_count: copied,
            });
        }
        total += copied;
    }
    target.flush()?;
    Ok(total)
}

/// `dir` with `.suffix` appended to its last component.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Bytes allocated on disk to the files under `dir` (what `du` counts).
pub fn disk_usage(dir: &Path) -> Result<u64, CompactError> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(|error| CompactError::Io {
        op: "cannot list",
        path: dir.to_path_buf(),
        error,
    })?;
    for entry in entries {
        let entry = entry.map_err(|error| CompactError::Io {
            op: "cannot list",
            path: dir.to_path_buf(),
            error,
        })?;
        let meta = entry.metadata().map_err(|error| CompactError::Io {
            op: "cannot stat",
            path: entry.path(),
            error,
        })?;
        total += if meta.is_dir() {
            disk_usage(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn copies_every_tree_and_checks_the_counts() {
        let source = MemoryStore::new();
        let mut b = WriteBatch::default();
        for i in 0u64..25 {
            b.put(Tree::Events, i.to_be_bytes().to_vec(), vec![1, b'1']);
            b.put(Tree::Tickets, i.to_be_bytes().to_vec(), vec![1, b'2']);
        }
        source.apply(b).unwrap();
        let target = MemoryStore::new();
        assert_eq!(copy_all(&source, &target).unwrap(), 50);
        assert_eq!(
            target.get(Tree::Tickets, &7u64.to_be_bytes()).unwrap(),
            Some(vec![1, b'2'])
        );
    }

    #[test]
    fn a_compacted_sled_store_keeps_its_records_and_shrinks() {
        let parent = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            data_dir: parent.path().join("data"),
            ..StoreConfig::default()
        };
        {
            let store = crate::store::open(&config).unwrap();
            for chunk in 0u64..20 {
                let mut b = WriteBatch::default();
                for i in 0..1_000 {
                    b.put(
                        Tree::Events,
                        (chunk * 1_000 + i).to_be_bytes().to_vec(),
                        vec![1; 512],
                    );
                }
                store.apply(b).unwrap();
            }
            let mut b = WriteBatch::default();
            for i in 0u64..19_000 {
                b.delete(Tree::Events, i.to_be_bytes().to_vec());
            }
            store.apply(b).unwrap();
            store.flush().unwrap();
        }
        // sled's threads let go of the file lock a moment after the store is dropped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let done = loop {
            match compact(&config) {
                Err(CompactError::Store(StoreError::Open { .. } | StoreError::Locked { .. }))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => break other.unwrap(),
            }
        };
        assert_eq!(done.records, 1_000);
        assert!(done.bytes_after < done.bytes_before, "{done:?}");
        let store = crate::store::open(&config).unwrap();
        assert_eq!(
            store
                .range(Tree::Events, Bound::Unbounded, Bound::Unbounded)
                .count(),
            1_000
        );
        assert!(!sibling(&config.data_dir, "before-compact").exists());
    }
}
