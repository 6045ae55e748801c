//! Durable alert expiry, as Alertmanager does it: a firing alert whose end time passes
//! without a re-send resolves. Two trees:
//!
//! - `AlertEnds`: the alert's own key → [`Ends`]: the end its sender last gave (or the
//!   resolve timeout gave), when it was last sent, and when its timer row is armed for;
//! - `AlertExpiry`: due time (big-endian, as SLA timers) + the alert's key → [`Expiry`].
//!
//! A re-send only rewrites the small `Ends` record; the timer row stays where it was armed.
//! When it falls due the engine looks at `Ends`: a later end re-arms the row there, a passed
//! one resolves the alert. So a re-send every second costs one small write, not a move.
//!
//! Owns the key layout and the read side. It must not write: the engine puts and deletes
//! both in the batch that handles the alert.

use std::ops::Bound;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::store::layout::sla_timers::{due_end, due_prefix};
use crate::store::{Store, StoreError, Tree, decode};

/// One expiry timer: when to look at whether the alert `key` was re-sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// The alert's own key (sender identity or label fingerprint).
    pub key: String,
    /// When the row falls due.
    pub due: Timestamp,
}

impl Expiry {
    /// The row key in `AlertExpiry`: due time, then the alert key.
    pub fn row_key(&self) -> Vec<u8> {
        let mut k = due_prefix(self.due);
        k.extend_from_slice(self.key.as_bytes());
        k
    }
}

/// A firing alert's end as last sent (the value in `AlertEnds`, keyed by the alert key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ends {
    /// When the alert ends unless it is sent again.
    pub ends_at: Timestamp,
    /// When a sender last sent it (the "not re-sent since" of the history).
    pub last_sent: Timestamp,
    /// The due time of its row in `AlertExpiry`.
    pub armed: Timestamp,
}

/// The `Ends` record of alert `key`, if it is armed.
pub fn ends(store: &dyn Store, key: &str) -> Result<Option<Ends>, StoreError> {
    store
        .get(Tree::AlertEnds, key.as_bytes())?
        .map(|v| decode(Tree::AlertEnds, &v))
        .transpose()
}

/// The due time of the earliest expiry row, if any.
pub fn earliest(store: &dyn Store) -> Result<Option<Timestamp>, StoreError> {
    match store
        .scan(Tree::AlertExpiry, Bound::Unbounded, Bound::Unbounded, 1)?
        .first()
    {
        Some((_, value)) => Ok(Some(decode::<Expiry>(Tree::AlertExpiry, value)?.due)),
        None => Ok(None),
    }
}

/// Every expiry row due at or before `now`, earliest first, at most `limit`.
pub fn due(store: &dyn Store, now: Timestamp, limit: usize) -> Result<Vec<Expiry>, StoreError> {
    store
        .scan(
            Tree::AlertExpiry,
            Bound::Unbounded,
            Bound::Excluded(due_end(now)),
            limit,
        )?
        .iter()
        .map(|(_, v)| decode(Tree::AlertExpiry, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::store::WriteBatch;
    use crate::store::encode;

    #[test]
    fn rows_order_by_due_time_and_due_reads_up_to_now() {
        let store = MemoryStore::default();
        let rows = [
            Expiry {
                key: "b".into(),
                due: "2026-03-02T12:00:05Z".parse().unwrap(),
            },
            Expiry {
                key: "a".into(),
                due: "2026-03-02T12:00:01Z".parse().unwrap(),
            },
        ];
        let mut batch = WriteBatch::default();
        for r in &rows {
            batch.put(Tree::AlertExpiry, r.row_key(), encode(r));
        }
        store.apply(batch).unwrap();
        assert_eq!(earliest(&store).unwrap(), Some(rows[1].due));
        let now: Timestamp = "2026-03-02T12:00:05Z".parse().unwrap();
        let keys: Vec<String> = due(&store, now, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(due(&store, rows[1].due, 10).unwrap().len(), 1);
    }
}
