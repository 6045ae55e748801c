//! TEST ONLY: a store whose writes fail on demand, so that the integration tests can show
//! what the daemon does when the disk refuses writes (readiness, 503 to senders, recovery).
//!
//! With `ITSMD_FAILPOINT=store-fail-while=PATH`, [`crate::store::open`] wraps the store: every
//! `apply` and `flush` fails while the file PATH exists, and works again once it is removed.
//! Nothing else reads this value (the same variable's `mail-after-commit` is the Maildir
//! source's); never set it in production.

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use crate::store::{ScanIter, Store, StoreError, Tree, WriteBatch};

/// The environment variable (shared with the Maildir source's failpoint) and this prefix.
const VAR: &str = "ITSMD_FAILPOINT";
const PREFIX: &str = "store-fail-while=";

/// The file named by the failpoint, if it is set.
pub fn from_env() -> Option<PathBuf> {
    let value = std::env::var(VAR).ok()?;
    value.strip_prefix(PREFIX).map(PathBuf::from)
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
}
