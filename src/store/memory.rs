//! In-memory store for tests: a BTreeMap under a lock, same key layout as sled.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::store::{ScanIter, Store, StoreError, Tree, Write, WriteBatch};

/// (tree, key) → value; the tree is part of the map key so ranges stay inside a tree.
type Map = BTreeMap<(Tree, Vec<u8>), Vec<u8>>;

#[derive(Default)]
pub struct MemoryStore {
    /// Every tree's entries, behind one lock: writes come from the single engine thread.
    map: Mutex<Map>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        // A panic while holding this lock can only come from a bug in a test; keep going with
        // the data as it is rather than poisoning every later test.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(&(tree, key.to_vec())).cloned())
    }

    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        let lo = match start {
            Bound::Included(k) => Bound::Included((tree, k)),
            Bound::Excluded(k) => Bound::Excluded((tree, k)),
            Bound::Unbounded => Bound::Included((tree, Vec::new())),
        };
        let map = self.lock();
        // Snapshot the range: the lock is not held while the caller iterates.
        let items: Vec<_> = map
            .range((lo, Bound::Unbounded))
            .take_while(|((t, k), _)| {
                *t == tree
                    && match &end {
                        Bound::Included(e) => k <= e,
                        Bound::Excluded(e) => k < e,
                        Bound::Unbounded => true,
                    }
            })
            .map(|((_, k), v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(items.into_iter())
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut map = self.lock();
        for w in batch.writes {
            match w {
                Write::Put { tree, key, value } => {
                    map.insert((tree, key), value);
                }
                Write::Delete { tree, key } => {
                    map.remove(&(tree, key));
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        0
    }
}
