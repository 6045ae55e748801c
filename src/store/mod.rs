//! The store: durable, ordered key-value trees behind one narrow trait.
//!
//! Owns the [`Store`] trait, the names of every logical tree ([`Tree`]), key encoding and the
//! versioned value codec. It knows nothing of tickets or rules: the engine decides what to
//! write, the store only makes a batch atomic and, on [`Store::flush`], durable.
//!
//! Every value is written with [`encode`] (a format-version byte, then JSON), index entries
//! included, so that export, import and migrations can treat all trees alike.
//!
//! Three implementations: [`SledStore`] (the embedded default, sled 0.34.7), [`PostgresStore`]
//! and [`MemoryStore`] (tests). All pass the same conformance suite (`conformance.rs`).

pub mod checkpoint;
mod codec;
#[cfg(test)]
mod conformance;
mod disk_sync;
pub use disk_sync::{memory_file_system, sync_parent, sync_path};
mod failpoint;
mod keys;
pub mod layout;
mod memory;
mod overlay;
mod postgres;
mod sled_store;

pub use codec::{FORMAT_VERSION, decode, encode};
pub use keys::{prefix_end, u64_key};
pub use memory::MemoryStore;
pub use overlay::Overlay;
pub use postgres::PostgresStore;
pub use sled_store::SledStore;

use std::ops::Bound;
use std::sync::Arc;

use crate::config::StoreConfig;

/// Runs a read on a blocking thread, for async callers: a read may wait for the disk (or, on
/// a networked backend, the network), which must not stall the runtime's workers.
pub async fn read<T, F>(store: &Arc<dyn Store>, read: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || read(&*store))
        .await
        .map_err(|e| StoreError::Io {
            op: "read on a blocking thread",
            source: e.into(),
        })?
}

/// The configured store in a few words, for logs (never a password).
pub fn describe(config: &StoreConfig) -> String {
    match config.backend {
        crate::config::StoreBackend::Embedded => {
            format!("embedded at {}", config.data_dir.display())
        }
        crate::config::StoreBackend::Postgres => {
            postgres::describe(config.url.as_deref().unwrap_or_default())
        }
    }
}

/// What is wrong with a PostgreSQL connection string, found without connecting.
pub fn url_problem(url: &str) -> Option<String> {
    postgres::problem(url)
}

/// The error for a data directory that cannot be written for a reason the operator fixes
/// outside itsmd (a read-only file system, another user's folder), saying how; `None` for
/// any other error.
pub(crate) fn unwritable(dir: &std::path::Path, error: &std::io::Error) -> Option<StoreError> {
    let advice = match error.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => {
            "itsmd needs to write its store; remount the file system read-write or point \
             --data-dir (store.data_dir) at a writable directory"
                .to_string()
        }
        std::io::ErrorKind::PermissionDenied => format!(
            "the user itsmd runs as (uid {}) may not write there; give it the folder (`chown \
             -R itsmd: {}` for the Debian package's user) or point --data-dir \
             (store.data_dir) at one it owns",
            // SAFETY: getuid(2) cannot fail and touches no memory.
            unsafe { libc::getuid() },
            dir.display()
        ),
        _ => return None,
    };
    Some(StoreError::Unwritable {
        path: dir.display().to_string(),
        error: format!("{error}: {advice}"),
    })
}

/// Opens the configured store, creating its directory if needed. The one place that picks a
/// backend: everything else holds an `Arc<dyn Store>`.
pub fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    if config.backend == crate::config::StoreBackend::Postgres {
        let url = config.url.as_deref().unwrap_or_default();
        return Ok(Arc::new(PostgresStore::open(url)?));
    }
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|error| {
        unwritable(dir, &error).unwrap_or_else(|| StoreError::Open {
            path: dir.display().to_string(),
            error: error.into(),
        })
    })?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(
        dir,
        config.cache_mb.saturating_mul(1 << 20),
    )?);
    match failpoint::from_env() {
        Some(while_exists) => {
            tracing::warn!(file = %while_exists.display(), "TEST ONLY failpoint set: store writes fail while the file exists.");
            Ok(Arc::new(failpoint::FailingStore {
                inner: store,
                while_exists,
            }))
        }
        None => Ok(store),
    }
}

/// Every logical tree of the store. Adding a tree means adding a variant here, so that all
/// names live in one place and a typo cannot create a new tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// Counters and markers: next event id, ticket counters per kind.
    Meta,
    /// The journal of every input event, keyed by event id.
    Events,
    /// Ticket records, keyed by kind prefix + big-endian number.
    Tickets,
    /// Append-only history entries, keyed by ticket key + big-endian sequence.
    History,
    /// Index: correlation key → the latest ticket opened for it.
    TicketByKey,
    /// Index: state \0 ticket key → empty.
    TicketsByState,
    /// Index: group \0 ticket key → empty.
    TicketsByGroup,
    /// Alert occurrences of each ticket: ticket key + big-endian event id → empty (the alert
    /// itself is in the event journal).
    TicketAlerts,
    /// Index: an alert's own key (sender identity or label fingerprint) → the ticket it last
    /// went to, whatever key rules grouped it by.
    TicketByAlert,
    /// Ticket comments, keyed by ticket key + big-endian comment number.
    Comments,
    /// Pending webhook messages (outbox rows), keyed by big-endian row id.
    Outbox,
    /// Index of the rows due for delivery: due time (ordered millis) + row id → empty. Only
    /// the head of each ticket's queue is here, so one ticket's messages go out in order.
    OutboxDue,
    /// Each vendor's queue per ticket: vendor \0 ticket key → pending row ids, head first.
    OutboxQueues,
    /// Dead letters: rows given up on, keyed by big-endian row id, until replayed.
    OutboxDead,
    /// Vendors' delivery state (disabled after 410 Gone), keyed by vendor name.
    VendorState,
    /// Callback webhook-ids seen: vendor \0 webhook-id → the event that applied it.
    VendorCallbacks,
    /// Tickets a vendor was sent messages about: vendor \0 ticket key → empty. A vendor may
    /// call back on these and on tickets assigned to it.
    VendorTickets,
    /// SLA timers not yet fired, keyed by big-endian due time + ticket + clock + stage
    /// (`sla::timers`), so the earliest is the first key.
    SlaTimers,
    /// Index: a mail's Message-ID → what became of it (event, ticket, outcome). Makes
    /// re-delivery idempotent and threads replies by In-Reply-To / References.
    MailByMessageId,
    /// Mails per sender address in the current rate-limit window (loop protection).
    MailSenders,
    /// Alert expiry timers: big-endian due time + the alert's own key → the timer
    /// (`layout::alert_expiry`), so the earliest is the first key.
    AlertExpiry,
    /// Each firing alert's end as last sent: the alert's own key → its expiry record.
    AlertEnds,
    /// Index: service \0 big-endian change time + change ticket key → empty
    /// (`layout::changes`), so an incident finds the changes to its service before it opened.
    ChangesByService,
    /// Each mailed ticket's thread: ticket key → its reply token, caller and Message-IDs
    /// (`mail::outbound`), so what itsmd sends chains References a mail client threads.
    MailThreads,
    /// Console accounts: user name → `layout::accounts::Account` (role, argon2id hash).
    Accounts,
    /// Search index: field byte + value \0 ticket key → empty (assignee, priority, tag,
    /// vendor, caller), and open tickets by state and group with their creation time
    /// (`layout::search`).
    TicketsByField,
    /// Search index: word of a title or description \0 ticket key → empty.
    TicketWords,
    /// Search index: word of a comment \0 ticket key → empty.
    CommentWords,
    /// Report aggregates: day + measure + dimension + value → counts and durations
    /// (`layout::reports`), kept by the engine in each commit.
    ReportBuckets,
    /// What the reports have counted of each ticket: ticket key → its first acknowledgement
    /// and first resolution (`layout::reports`).
    ReportMarks,
    /// Rule queries: service \0 open or not + kind + created + ticket key → the ticket's
    /// summary (`layout::by_service`).
    TicketsByService,
    /// Links on the many side of a relation (a problem's `causes`, …): ticket key +
    /// big-endian position → the link (`layout::links`).
    TicketLinks,
}

impl Tree {
    /// All trees, in prefix order: export walks this list.
    pub const ALL: [Tree; 32] = [
        Tree::Meta,
        Tree::Events,
        Tree::Tickets,
        Tree::History,
        Tree::TicketByKey,
        Tree::TicketsByState,
        Tree::TicketsByGroup,
        Tree::TicketAlerts,
        Tree::TicketByAlert,
        Tree::Comments,
        Tree::AlertExpiry,
        Tree::AlertEnds,
        Tree::ChangesByService,
        Tree::TicketsByField,
        Tree::TicketWords,
        Tree::CommentWords,
        Tree::ReportBuckets,
        Tree::ReportMarks,
        Tree::TicketsByService,
        Tree::TicketLinks,
        Tree::Outbox,
        Tree::OutboxDue,
        Tree::OutboxQueues,
        Tree::OutboxDead,
        Tree::VendorState,
        Tree::VendorCallbacks,
        Tree::VendorTickets,
        Tree::SlaTimers,
        Tree::MailByMessageId,
        Tree::MailSenders,
        Tree::MailThreads,
        Tree::Accounts,
    ];

    /// The stable one-byte prefix under which this tree lives on disk. Never renumber.
    pub fn prefix(self) -> u8 {
        match self {
            Tree::Meta => 0,
            Tree::Events => 1,
            Tree::Tickets => 2,
            Tree::History => 3,
            Tree::TicketByKey => 4,
            Tree::TicketsByState => 5,
            Tree::TicketsByGroup => 6,
            Tree::TicketAlerts => 7,
            Tree::TicketByAlert => 8,
            Tree::Comments => 9,
            Tree::Outbox => 40,
            Tree::OutboxDue => 41,
            Tree::OutboxQueues => 42,
            Tree::OutboxDead => 43,
            Tree::VendorState => 44,
            Tree::VendorCallbacks => 45,
            Tree::VendorTickets => 46,
            Tree::SlaTimers => 30,
            Tree::MailByMessageId => 20,
            Tree::MailSenders => 21,
            Tree::AlertExpiry => 10,
            Tree::AlertEnds => 11,
            Tree::ChangesByService => 12,
            Tree::MailThreads => 22,
            Tree::Accounts => 50,
            Tree::TicketsByField => 13,
            Tree::TicketWords => 14,
            Tree::CommentWords => 15,
            Tree::ReportBuckets => 16,
            Tree::ReportMarks => 17,
            Tree::TicketsByService => 18,
            Tree::TicketLinks => 19,
        }
    }

    /// A human name, for errors and export.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Events => "events",
            Tree::Tickets => "tickets",
            Tree::History => "history",
            Tree::TicketByKey => "ticket_by_key",
            Tree::TicketsByState => "tickets_by_state",
            Tree::TicketsByGroup => "tickets_by_group",
            Tree::TicketAlerts => "ticket_alerts",
            Tree::TicketByAlert => "ticket_by_alert",
            Tree::Comments => "comments",
            Tree::Outbox => "outbox",
            Tree::OutboxDue => "outbox_due",
            Tree::OutboxQueues => "outbox_queues",
            Tree::OutboxDead => "outbox_dead",
            Tree::VendorState => "vendor_state",
            Tree::VendorCallbacks => "vendor_callbacks",
            Tree::VendorTickets => "vendor_tickets",
            Tree::SlaTimers => "sla_timers",
            Tree::MailByMessageId => "mail_by_message_id",
            Tree::MailSenders => "mail_senders",
            Tree::AlertExpiry => "alert_expiry",
            Tree::AlertEnds => "alert_ends",
            Tree::ChangesByService => "changes_by_service",
            Tree::MailThreads => "mail_threads",
            Tree::Accounts => "accounts",
            Tree::TicketsByField => "tickets_by_field",
            Tree::TicketWords => "ticket_words",
            Tree::CommentWords => "comment_words",
            Tree::ReportBuckets => "report_buckets",
            Tree::ReportMarks => "report_marks",
            Tree::TicketsByService => "tickets_by_service",
            Tree::TicketLinks => "ticket_links",
        }
    }
}

/// One write in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        tree: Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        tree: Tree,
        key: Vec<u8>,
    },
}

/// A set of writes across trees that the store applies all-or-nothing.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    /// Applied in order; a later write to the same key wins.
    pub writes: Vec<Write>,
}

impl WriteBatch {
    pub fn put(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.push(Write::Put {
            tree,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) {
        self.writes.push(Write::Delete {
            tree,
            key: key.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }
}

/// A key-value pair read from a tree (the tree prefix already stripped).
pub type Entry = (Vec<u8>, Vec<u8>);

/// Iterator returned by scans: ordered by key, reversible.
pub type ScanIter<'a> = Box<dyn DoubleEndedIterator<Item = Result<Entry, StoreError>> + Send + 'a>;

/// What a backend reports, whichever it is: the store's callers never name a backend's types.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the store at {path}: {error}. Is another itsmd using it (stop it first)? \
         Is the disk full (free space and start again)? Otherwise `itsmd check --data-dir \
         {path}` lists what is damaged, and a dump restores it: `itsmd import FILE --data-dir \
         EMPTY_DIR` (docs/operations.md, \"Data, backup and restore\")"
    )]
    Open {
        path: String,
        /// In the message, before what to do; not a `source` so that it is not shown twice.
        error: BackendError,
    },
    #[error(
        "the store at {path} is in use by another process (a running `itsmd serve`, or a \
         backup or compaction of it): stop that first; nothing was changed"
    )]
    Locked { path: String },
    /// The folder may not be written (a read-only file system, or not the daemon's user's):
    /// what to do instead of the guesses of [`StoreError::Open`].
    #[error("cannot write the store at {path}: {error}; nothing was changed")]
    Unwritable { path: String, error: String },
    #[error(
        "cannot reach the store at {target}: {error}. Is PostgreSQL running and reachable from \
         here, and do the URL's user, password and database hold? (docs/operations.md, \
         \"PostgreSQL instead of the embedded store\")"
    )]
    Connect {
        /// The server and database, never the password.
        target: String,
        error: BackendError,
    },
    #[error("store I/O failed during {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("stored value in tree {tree} is unreadable: {message}")]
    Corrupt { tree: &'static str, message: String },
    /// A shared store refused a batch: this node's lease token is no longer the current one
    /// (another node took the lead), so nothing of the batch was written.
    /// The shared inbox holds `limit` unanswered events: the leader is behind (or absent).
    #[error("the shared inbox holds {limit} unprocessed events; retry later")]
    InboxFull { limit: u64 },
    #[error(
        "this node's engine lease (token {token}) was taken over by {holder} (token {current}); \
         the batch was not written"
    )]
    Fenced {
        token: i64,
        current: i64,
        holder: String,
    },
}

/// The engine lease as one node sees it after trying to take or renew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node holding it (empty when nobody ever did).
    pub holder: String,
    /// Its fencing token: raised by one on every change of hands.
    pub token: i64,
    /// True when the asking node holds it now (it just took or renewed it).
    pub mine: bool,
    /// Unanswered inbox rows, read in the same statement.
    pub pending: u64,
}

/// A store several nodes share (PostgreSQL): the engine lease with its fencing token, the
/// inbox every node's intake writes to, and the leader's fenced commits. Only the cluster
/// wiring uses it; a store that is not shared has none.
pub trait Shared: Send + Sync + 'static {
    /// Takes the lease for `node` if it is free or expired, or renews it if `node` holds it,
    /// for `lease_ms` from now (the database's clock).
    fn take_lease(&self, node: &str, lease_ms: u64) -> Result<Lease, StoreError>;
    /// Gives the lease up at once if `node` still holds it with `token` (a clean shutdown).
    fn release_lease(&self, node: &str, token: i64) -> Result<(), StoreError>;
    /// Stores events in the inbox, durably, and wakes the leader; their inbox ids, in order.
    /// Refuses them all ([`StoreError::InboxFull`]) while `limit` rows are unanswered.
    fn push(&self, bodies: Vec<Vec<u8>>, limit: u64) -> Result<Vec<i64>, StoreError>;
    /// Waits up to `timeout` for intake to store new rows (on any node); true if it did.
    /// Sends no query while waiting.
    fn wait_for_inbox(&self, timeout: std::time::Duration) -> bool;
    /// The answers of those of `ids` the leader has processed.
    fn answers(&self, ids: Vec<i64>) -> Result<Vec<(i64, Vec<u8>)>, StoreError>;
    /// Calls `answered`, on a thread and connection of its own, with the highest inbox id of
    /// each batch a leader commits, and with `None` whenever notifications may have been
    /// lost (at the start and after a reconnection); stops once it returns false.
    fn on_answers(
        &self,
        answered: Box<dyn FnMut(Option<i64>) -> bool + Send>,
    ) -> Result<(), StoreError>;
    /// Up to `limit` unanswered inbox rows with ids above `after`, lowest id first (the
    /// leader's next batch while the one before, up to `after`, is committing).
    fn pending(&self, after: i64, limit: usize) -> Result<Vec<(i64, Vec<u8>)>, StoreError>;
    /// Applies `batch` and answers the inbox rows in `answers`, in one transaction, only if
    /// `token` is still the lease's current token ([`StoreError::Fenced`] otherwise). Runs
    /// on a connection of its own, so that reads need not wait for it.
    fn commit_fenced(
        &self,
        batch: WriteBatch,
        token: i64,
        answers: Vec<(i64, Vec<u8>)>,
    ) -> Result<(), StoreError>;
    /// Deletes inbox rows answered more than `older_than_secs` ago; how many.
    fn prune(&self, older_than_secs: u64) -> Result<u64, StoreError>;
    /// Queries sent to the server so far on this connection.
    fn round_trips(&self) -> u64;
}

/// Opens the configured PostgreSQL database as a shared store (its own connection).
pub fn open_shared(config: &StoreConfig) -> Result<Arc<PostgresStore>, StoreError> {
    let url = config.url.as_deref().unwrap_or_default();
    Ok(Arc::new(PostgresStore::open(url)?))
}

/// The narrow storage interface the engine, the API and the tools depend on.
///
/// Writes happen only through [`Store::apply`], which is atomic across trees; reads see every
/// applied batch. Nothing is durable until [`Store::flush`] returns.
pub trait Store: Send + Sync + 'static {
    /// One value, if present.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Entries with `start <= key < end` (as bounds say), in key order.
    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_>;

    /// Apply every write of the batch, or none of them.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Durability barrier: returns once everything applied so far is on disk.
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the store uses on disk (0 for memory).
    fn size_on_disk(&self) -> u64;

    /// Bytes written since the store last opened, which its next open would replay (0 on a
    /// store that does not replay a log when it opens).
    fn log_bytes(&self) -> u64 {
        0
    }

    /// Makes the next open cheap when `policy` says it is due (the embedded store closes and
    /// reopens itself, [`checkpoint`]); `None` when none was taken.
    fn checkpoint(
        &self,
        _policy: &checkpoint::CheckpointPolicy,
    ) -> Result<Option<checkpoint::Checkpointed>, StoreError> {
        Ok(None)
    }

    /// The values of `keys`, in their order, read at once: the engine's reads for a batch
    /// (one round trip on a networked backend; a loop over [`Store::get`] elsewhere).
    fn get_many(&self, keys: &[(Tree, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter()
            .map(|(tree, key)| self.get(*tree, key))
            .collect()
    }

    /// Queries sent to the database server so far (0 for an embedded store), so the engine
    /// can count a batch's round trips.
    fn round_trips(&self) -> u64 {
        0
    }

    /// True when [`Store::apply`] is the durable commit itself, a round trip to a server
    /// that applies it on its own connection and cores (PostgreSQL): the engine then works
    /// on the next batch while one commits, reading through it ([`Overlay`]). False when
    /// apply is in memory and [`Store::flush`] makes it durable (sled).
    fn pipelines_apply(&self) -> bool {
        false
    }

    /// At most `limit` entries with `start <= key < end`, in key order, read at once: the
    /// bounded scan a page, a due list or an earliest-first look-up needs (one round trip on
    /// a networked backend, never more in memory than asked for).
    fn scan(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.range(tree, start, end).take(limit).collect()
    }

    /// Entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> ScanIter<'_> {
        let end = match prefix_end(prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        self.range(tree, Bound::Included(prefix.to_vec()), end)
    }
}
