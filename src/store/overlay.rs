//! Reads through a batch that is being committed: the engine works on batch N+1 while the
//! server commits batch N (PostgreSQL, where the commit is a round trip that costs the
//! engine nothing but time), so N+1 must read what N wrote before the store holds it.
//!
//! Owns [`Overlay`], a [`Store`] whose reads see the pending writes of the batch in flight
//! over the store beneath (a write pending there wins, a pending delete hides the key), and
//! whose writes go to the store beneath. The engine sets the pending writes when it hands a
//! batch to the commit and clears them when it hears the commit's outcome.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use crate::store::{Entry, ScanIter, Store, StoreError, Tree, Write, WriteBatch};

/// The last write of each key of a batch: a value, or `None` for a delete.
type Pending = BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>;

pub struct Overlay {
    inner: Arc<dyn Store>,
    /// The writes of the batch being committed (empty when none is). Behind a lock only for
    /// `Sync`: the engine thread sets it and is its only reader while a batch is processed.
    pending: Mutex<Arc<Pending>>,
}

impl Overlay {
    pub fn new(inner: Arc<dyn Store>) -> Overlay {
        Overlay {
            inner,
            pending: Mutex::new(Arc::new(Pending::new())),
        }
    }

    /// Reads see `batch` from now on, until [`Overlay::clear`].
    pub fn set(&self, batch: &WriteBatch) {
        let mut pending = Pending::new();
        for w in &batch.writes {
            match w {
                Write::Put { tree, key, value } => {
                    pending.insert((*tree, key.clone()), Some(value.clone()));
                }
                Write::Delete { tree, key } => {
                    pending.insert((*tree, key.clone()), None);
                }
            }
        }
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(pending);
    }

    /// The batch is committed (or failed): reads see the store alone again.
    pub fn clear(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(Pending::new());
    }

    fn pending(&self) -> Arc<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The pending writes of `tree` within the bounds, in key order.
fn within(
    pending: &Pending,
    tree: Tree,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
) -> VecDeque<(Vec<u8>, Option<Vec<u8>>)> {
    let low = match start {
        Bound::Included(k) => Bound::Included((tree, k.clone())),
        Bound::Excluded(k) => Bound::Excluded((tree, k.clone())),
        Bound::Unbounded => Bound::Included((tree, Vec::new())),
    };
    pending
        .range((low, Bound::Unbounded))
        .take_while(|((t, k), _)| {
            *t == tree
                && match end {
                    Bound::Included(e) => k <= e,
                    Bound::Excluded(e) => k < e,
                    Bound::Unbounded => true,
                }
        })
        .map(|((_, k), v)| (k.clone(), v.clone()))
        .collect()
}

impl Store for Overlay {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let pending = self.pending();
        if pending.is_empty() {
            return self.inner.get(tree, key);
        }
        match pending.get(&(tree, key.to_vec())) {
            Some(value) => Ok(value.clone()),
            None => self.inner.get(tree, key),
        }
    }

    fn get_many(&self, keys: &[(Tree, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let pending = self.pending();
        if pending.is_empty() {
            return self.inner.get_many(keys);
        }
        let missing: Vec<(Tree, Vec<u8>)> = keys
            .iter()
            .filter(|k| !pending.contains_key(k))
            .cloned()
            .collect();
        let mut stored = self.inner.get_many(&missing)?.into_iter();
        keys.iter()
            .map(|k| match pending.get(k) {
                Some(value) => Ok(value.clone()),
                None => Ok(stored.next().flatten()),
            })
            .collect()
    }

    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        let pending = within(&self.pending(), tree, &start, &end);
        let inner = self.inner.range(tree, start, end);
        if pending.is_empty() {
            return inner;
        }
        Box::new(Merge {
            inner,
            front: None,
            back: None,
            pending,
        })
    }

    fn scan(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let pending = within(&self.pending(), tree, &start, &end);
        // Each pending delete may hide one stored entry: read that many more.
        let hidden = pending.iter().filter(|(_, v)| v.is_none()).count();
        let stored = self
            .inner
            .scan(tree, start, end, limit.saturating_add(hidden))?;
        let merged = Merge {
            inner: Box::new(stored.into_iter().map(Ok)),
            front: None,
            back: None,
            pending,
        };
        merged.take(limit).collect()
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.apply(batch)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    fn size_on_disk(&self) -> u64 {
        self.inner.size_on_disk()
    }

    fn round_trips(&self) -> u64 {
        self.inner.round_trips()
    }

    fn pipelines_apply(&self) -> bool {
        self.inner.pipelines_apply()
    }
}

/// The stored entries of a range merged with the pending writes within it, from either end.
struct Merge<'a> {
    inner: ScanIter<'a>,
    /// A stored entry taken from the front (or back) of `inner` and not yielded yet.
    front: Option<Result<Entry, StoreError>>,
    back: Option<Result<Entry, StoreError>>,
    pending: VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Merge<'_> {
    /// The next stored entry from the front without taking it (the back's held one when the
    /// front has run out: the two ends met).
    fn peek_front(&mut self) -> Option<&Result<Entry, StoreError>> {
        if self.front.is_none() {
            self.front = self.inner.next().or_else(|| self.back.take());
        }
        self.front.as_ref()
    }

    fn peek_back(&mut self) -> Option<&Result<Entry, StoreError>> {
        if self.back.is_none() {
            self.back = self.inner.next_back().or_else(|| self.front.take());
        }
        self.back.as_ref()
    }
}

/// Which side a merge step takes: the stored entry, the pending write, or both (same key,
/// the pending write wins).
enum Take {
    Stored,
    Pending,
    Both,
}

/// Which of a stored key and a pending key comes first, seen from the front (`forward`) or
/// the back.
fn pick(stored: Option<&[u8]>, pending: Option<&[u8]>, forward: bool) -> Option<Take> {
    match (stored, pending) {
        (None, None) => None,
        (Some(_), None) => Some(Take::Stored),
        (None, Some(_)) => Some(Take::Pending),
        (Some(s), Some(p)) => Some(match (s.cmp(p), forward) {
            (std::cmp::Ordering::Equal, _) => Take::Both,
            (std::cmp::Ordering::Less, true) | (std::cmp::Ordering::Greater, false) => Take::Stored,
            _ => Take::Pending,
        }),
    }
}

impl Iterator for Merge<'_> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let stored = match self.peek_front() {
                Some(Err(_)) => None,
                Some(Ok((k, _))) => Some(Some(k.clone())),
                None => Some(None),
            };
            let Some(stored) = stored else {
                return self.front.take();
            };
            let pending = self.pending.front().map(|(k, _)| k.as_slice());
            let (key, value) = match pick(stored.as_deref(), pending, true)? {
                Take::Stored => return self.front.take(),
                Take::Pending => self.pending.pop_front()?,
                Take::Both => {
                    self.front = None;
                    self.pending.pop_front()?
                }
            };
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    }
}

impl DoubleEndedIterator for Merge<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            let stored = match self.peek_back() {
                Some(Err(_)) => None,
                Some(Ok((k, _))) => Some(Some(k.clone())),
                None => Some(None),
            };
            let Some(stored) = stored else {
                return self.back.take();
            };
            let pending = self.pending.back().map(|(k, _)| k.as_slice());
            let (key, value) = match pick(stored.as_deref(), pending, false)? {
                Take::Stored => return self.back.take(),
                Take::Pending => self.pending.pop_back()?,
                Take::Both => {
                    self.back = None;
                    self.pending.pop_back()?
                }
            };
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests;
