//! The embedded default store: one sled tree, each logical [`Tree`] under its one-byte prefix.
//!
//! One physical tree makes every [`WriteBatch`] a single `apply_batch`, which sled applies
//! atomically, and avoids sled's slower multi-tree transactions on the hot path.

use std::ops::Bound;
use std::path::Path;

use crate::store::ScanIter;

use crate::store::Store;

use crate::store::StoreError;

use crate::store::Tree;

use crate::store::Write;

use crate::store::WriteBatch;

pub struct SledStore {
    /// Kept so the database (and its background flusher) lives as long as the store.
    db: sled::Db,
    /// The single physical tree holding every logical tree.
    tree: sled::Tree,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Every commit flushes explicitly; a background flusher would only hold the file
            // lock after drop (spacejam/sled#1289) and flush nothing new.
            .flush_every_ms(None)
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.display().to_string(),
                source: source.into(),
            })?;
        let tree = db.open_tree("itsmd").map_err(|source| StoreError::Open {
            path: dir.display().to_string(),
            source: source.into(),
        })?;
        Ok(SledStore { db, tree })
    }
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
