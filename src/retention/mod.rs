//! Bounded growth: the event journal is kept for `[retention] journal` (30 days by default),
//! and what only matters for a while goes with it.
//!
//! The sweep task (`task.rs`) wakes every `sweep_every`, finds read-only what is due, and
//! submits it to the engine as [`Sweep`] events of at most `chunk` records each, so deleting
//! happens in the one writer, in order with everything else, a chunk per commit (intake is
//! committed between chunks). The engine step (`step.rs`) checks each record again on its own
//! view and deletes: journal records received before `now − journal` with the alert
//! occurrences (`ticket_alerts`) that point at them, vendor callback-ids whose event was
//! pruned, and mail senders' rate windows that have ended. Tickets, history and comments are
//! kept. A sweep is not journaled. The store records where the journal now starts
//! ([`JournalStart`]), which replay and `itsmd rules test --replay` report.
//!
//! Deleting frees pages inside sled's files for reuse; the files themselves shrink only by an
//! offline compaction (`compact.rs`, `itsmd compact --data-dir`), which copies the live
//! records into a fresh store.

pub mod compact;
pub mod config;
mod step;
pub mod task;
#[cfg(test)]
mod tests;

pub use config::RetentionConfig;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Tree, decode};

/// One chunk of the sweep: what the task found due. The engine re-checks every item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Delete journal records up to and including this event id (those received before the
    /// cut-off; at most `chunk` of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_through: Option<u64>,
    /// Vendor callback-id keys (`layout::outbox::callback_key`) whose event was pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<Vec<u8>>,
    /// Mail sender addresses whose rate-limit window has ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub senders: Vec<String>,
}

impl Sweep {
    pub fn is_empty(&self) -> bool {
        self.journal_through.is_none() && self.callbacks.is_empty() && self.senders.is_empty()
    }
}

/// Where the journal starts after pruning (the [`Tree::Meta`] key [`JOURNAL_START`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStart {
    /// Every event up to this id was pruned.
    pub pruned_through: u64,
    /// The cut-off of the last sweep: events received before it are gone.
    pub before: Timestamp,
}

/// The meta key of [`JournalStart`].
pub const JOURNAL_START: &[u8] = b"retention/journal";

/// Where the journal starts, if it was ever pruned.
pub fn journal_start(store: &dyn Store) -> Result<Option<JournalStart>, StoreError> {
    store
        .get(Tree::Meta, JOURNAL_START)?
        .map(|b| decode(Tree::Meta, &b))
        .transpose()
}
