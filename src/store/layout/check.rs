//! What each tree's values must decode as: the one table `itsmd check` and `itsmd import`
//! verify records against.

use serde::de::DeserializeOwned;

use crate::mail::step::{MailRecord, SenderWindow};
use crate::store::layout::StoredEvent;
use crate::store::layout::sla_timers::Timer;
use crate::store::{StoreError, Tree, decode};
use crate::tickets::{Comment, HistoryEntry, Ticket, TicketId};
use crate::vendors::{OutboxRow, VendorState};

/// Decodes `value` as the record type its tree (and, in meta, its key) holds; the error names
/// the tree and the problem.
pub fn check_record(tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    fn is<T: DeserializeOwned>(tree: Tree, value: &[u8]) -> Result<(), StoreError> {
        decode::<T>(tree, value).map(drop)
    }
    match tree {
        // Meta holds counters, but for the journal's start after retention and the people's
        // notification windows.
        Tree::Meta if key == crate::retention::JOURNAL_START => {
            is::<crate::retention::JournalStart>(tree, value)
        }
        Tree::Meta if key.starts_with(crate::mail::outbound::coalesce::KEY_PREFIX) => {
            crate::mail::outbound::coalesce::check_window(value)
        }
        Tree::Meta | Tree::VendorCallbacks => is::<u64>(tree, value),
        Tree::Events => is::<StoredEvent>(tree, value),
        Tree::Tickets => is::<Ticket>(tree, value),
        Tree::History => is::<HistoryEntry>(tree, value),
        Tree::TicketByKey | Tree::TicketByAlert => is::<TicketId>(tree, value),
        Tree::TicketsByState
        | Tree::TicketsByGroup
        | Tree::TicketAlerts
        | Tree::OutboxDue
        | Tree::VendorTickets
        | Tree::ChangesByService
        | Tree::TicketsByField
        | Tree::TicketWords
        | Tree::CommentWords => is::<()>(tree, value),
        Tree::ReportBuckets => is::<crate::store::layout::reports::Bucket>(tree, value),
        Tree::ReportMarks => is::<crate::store::layout::reports::Marks>(tree, value),
        Tree::TicketsByService => is::<crate::store::layout::by_service::Summary>(tree, value),
        Tree::TicketLinks => is::<crate::tickets::Link>(tree, value),
        Tree::AlertExpiry => is::<crate::store::layout::alert_expiry::Expiry>(tree, value),
        Tree::AlertEnds => is::<crate::store::layout::alert_expiry::Ends>(tree, value),
        Tree::Comments => is::<Comment>(tree, value),
        Tree::Outbox | Tree::OutboxDead => is::<OutboxRow>(tree, value),
        Tree::OutboxQueues => is::<Vec<u64>>(tree, value),
        Tree::VendorState => is::<VendorState>(tree, value),
        Tree::SlaTimers => is::<Timer>(tree, value),
        Tree::MailByMessageId => is::<MailRecord>(tree, value),
        Tree::MailSenders => is::<SenderWindow>(tree, value),
        Tree::MailThreads => is::<crate::mail::outbound::thread::Thread>(tree, value),
        Tree::Accounts => is::<crate::store::layout::accounts::Account>(tree, value),
    }
}

/// What `itsmd check --data-dir` found: entries per tree and every unreadable record.
#[derive(Debug, Default)]
pub struct Report {
    /// Entries per tree, in [`Tree::ALL`] order.
    pub counts: Vec<(Tree, u64)>,
    /// One line per problem: tree, key in hex, what is wrong.
    pub problems: Vec<String>,
}

/// Reads every entry of every tree and decodes it as its record type.
pub fn check_store(store: &dyn crate::store::Store) -> Result<Report, StoreError> {
    let mut report = Report::default();
    for tree in Tree::ALL {
        let mut n = 0;
        for item in store.range(tree, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded) {
            let (key, value) = item?;
            n += 1;
            if let Err(e) = check_record(tree, &key, &value) {
                let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
                report
                    .problems
                    .push(format!("{} key {key}: {e}", tree.name()));
            }
        }
        report.counts.push((tree, n));
    }
    Ok(report)
}
