//! Where each record lives in the store: key layouts, the index entries a ticket has, and
//! typed reads. The engine writes through these layouts; the API and tools read through them.

pub mod accounts;
pub mod alert_expiry;
pub mod by_service;
pub mod changes;
mod check;
pub mod links;
pub mod outbox;
pub mod reports;
pub mod search;
pub mod sla_timers;
mod sorted;

pub use check::{Report, check_record, check_store};
pub use sorted::{Sort, SortKey, list_tickets_sorted};

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::store::{Store, StoreError, Tree, decode, prefix_end, u64_key};
use crate::tickets::{Comment, HistoryEntry, Kind, State, Ticket, TicketId};

/// Meta key of the last event id handed out.
pub const EVENT_SEQ: &[u8] = b"seq/event";

/// The counter stored under `key` in Meta (sequences, ticket counts); 0 when never set.
pub fn counter(store: &dyn Store, key: &[u8]) -> Result<u64, StoreError> {
    match store.get(Tree::Meta, key)? {
        Some(bytes) => decode::<u64>(Tree::Meta, &bytes),
        None => Ok(0),
    }
}

/// Meta key of the last ticket number handed out for `kind`.
pub fn ticket_seq_key(kind: Kind) -> Vec<u8> {
    format!("seq/ticket/{}", kind.prefix()).into_bytes()
}

/// Meta prefix of the durable ticket counts by kind and state.
pub const TICKET_COUNT_PREFIX: &[u8] = b"count/tickets/";

/// Meta key counting tickets of `kind` in `state`.
pub fn ticket_count_key(kind: Kind, state: State) -> Vec<u8> {
    let mut k = TICKET_COUNT_PREFIX.to_vec();
    k.extend_from_slice(format!("{}/{}", kind.as_str(), state.as_str()).as_bytes());
    k
}

/// Tickets by kind and state, as the engine counts them in each commit.
pub fn ticket_counts(store: &dyn Store) -> Result<Vec<(Kind, State, u64)>, StoreError> {
    let mut out = Vec::new();
    for item in store.scan_prefix(Tree::Meta, TICKET_COUNT_PREFIX) {
        let (key, value) = item?;
        let name = String::from_utf8_lossy(&key[TICKET_COUNT_PREFIX.len()..]).into_owned();
        let Some((kind, state)) = name.split_once('/') else {
            continue;
        };
        let (Ok(kind), Ok(state)) = (kind.parse(), state.parse()) else {
            continue;
        };
        out.push((kind, state, decode::<u64>(Tree::Meta, &value)?));
    }
    Ok(out)
}

/// The journal record of one event: the input and what the engine did with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event: Event,
    /// The ticket the event opened or updated, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketId>,
    pub outcome: Outcome,
    /// Rules that failed on this event ("file:line: message").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_failures: Vec<String>,
    /// The first event of the batch this one was committed in, when that is another event
    /// (absent on a batch's first event): a replay commits the same batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<crate::event::EventId>,
    /// For a delivery result or a row replay: the outbox row it is about, by what the row
    /// is rather than its number, so a replay finds the same message among its own rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<RowRef>,
}

/// What an outbox row is: the event that queued it, its ticket, destination and type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowRef {
    pub event: crate::event::EventId,
    pub ticket: TicketId,
    pub vendor: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What the engine did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new ticket was opened.
    Opened,
    /// An existing ticket was updated.
    Updated,
    /// A rule suppressed it: recorded, no ticket.
    Suppressed,
    /// Recorded only: nothing to open or update (e.g. a resolved alert with no ticket).
    Recorded,
    /// A resolved incident was reopened: its alert fired again within the reopen window.
    Reopened,
    /// An unchanged re-send (same alert, same start, same status): only its last-seen time
    /// was updated; no event, history or occurrence written. The receipt names the event
    /// that first recorded it.
    Seen,
    /// Cluster mode only: stored in the shared inbox, not yet processed by the leader within
    /// `cluster.answer_wait_ms`. It will be, exactly once; the receipt has no event id yet.
    Queued,
}

pub fn history_key(id: TicketId, seq: u64) -> Vec<u8> {
    let mut k = id.key();
    k.extend_from_slice(&u64_key(seq));
    k
}

/// Key of one alert occurrence of a ticket.
pub fn ticket_alert_key(id: TicketId, event: u64) -> Vec<u8> {
    let mut k = id.key();
    k.extend_from_slice(&u64_key(event));
    k
}

/// One page of a ticket's alert occurrences (the journal records of its alert events) in
/// event order, after event `after`; the second value is the cursor of the next page.
pub fn ticket_alerts(
    store: &dyn Store,
    id: TicketId,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<StoredEvent>, Option<u64>), StoreError> {
    ticket_alerts_within(store, id, after, limit, usize::MAX)
}

/// Like [`ticket_alerts`], and the page also ends once its journal records come to `budget`
/// bytes (it holds at least one), so a page of large alerts stays near that size.
pub fn ticket_alerts_within(
    store: &dyn Store,
    id: TicketId,
    after: Option<u64>,
    limit: usize,
    budget: usize,
) -> Result<(Vec<StoredEvent>, Option<u64>), StoreError> {
    let prefix = id.key();
    let start = match after {
        Some(event) => Bound::Excluded(ticket_alert_key(id, event)),
        None => Bound::Included(prefix.clone()),
    };
    let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let mut page = Vec::with_capacity(limit.min(1024));
    let mut used = 0usize;
    for (key, _) in store.scan(Tree::TicketAlerts, start, end, limit.saturating_add(1))? {
        let Some(event) = key[prefix.len()..].try_into().ok().map(u64::from_be_bytes) else {
            continue;
        };
        if page.len() == limit || (used >= budget && !page.is_empty()) {
            let next = page.last().map(|e: &StoredEvent| e.event.id);
            return Ok((page, next));
        }
        if let Some(raw) = store.get(Tree::Events, &u64_key(event))? {
            used = used.saturating_add(raw.len());
            page.push(decode(Tree::Events, &raw)?);
        }
    }
    Ok((page, None))
}

/// The secondary-index entries a ticket has in its current form.
pub fn index_entries(t: &Ticket) -> Vec<(Tree, Vec<u8>)> {
    let mut out = field_index_entries(t);
    search::word_entries(t, &mut out);
    out
}

/// The entries of [`index_entries`] but the title's and description's words, which only a
/// change of those two can move: the engine compares a changed ticket's other entries only.
pub fn field_index_entries(t: &Ticket) -> Vec<(Tree, Vec<u8>)> {
    let mut out = vec![(Tree::TicketsByState, index_key(t.state.as_str(), t.id))];
    if let Some(group) = &t.group {
        out.push((Tree::TicketsByGroup, index_key(group, t.id)));
    }
    search::field_entries(t, &mut out);
    out
}

/// Index keys are "value \0 ticket key", so one value's tickets are one prefix.
fn index_prefix(value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + 12);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k
}

fn index_key(value: &str, id: TicketId) -> Vec<u8> {
    let mut k = index_prefix(value);
    k.extend_from_slice(&id.key());
    k
}

/// Comments live under the ticket key, numbered like history.
pub fn comment_key(id: TicketId, seq: u64) -> Vec<u8> {
    history_key(id, seq)
}

/// A ticket's comments, in order.
pub fn comments(store: &dyn Store, id: TicketId) -> Result<Vec<Comment>, StoreError> {
    store
        .scan_prefix(Tree::Comments, &id.key())
        .map(|item| item.and_then(|(_, v)| decode(Tree::Comments, &v)))
        .collect()
}

/// The ticket's comments after `after` (a `seq`) that `keep` takes, as many as fit in
/// `budget` bytes of JSON, and whether more follow (see `api::page::take_within`).
pub fn comments_page(
    store: &dyn Store,
    id: TicketId,
    after: Option<u64>,
    budget: usize,
    keep: impl Fn(&Comment) -> bool,
) -> Result<(Vec<Comment>, bool), StoreError> {
    let start = match after {
        Some(seq) => Bound::Excluded(comment_key(id, seq)),
        None => Bound::Included(id.key()),
    };
    let end = prefix_end(&id.key()).map_or(Bound::Unbounded, Bound::Excluded);
    let comments = store
        .range(Tree::Comments, start, end)
        .map(|item| item.and_then(|(_, v)| decode::<Comment>(Tree::Comments, &v)))
        .filter(|c| c.as_ref().map_or(true, &keep));
    crate::api::page::take_within(comments, budget)
}

/// Ids of the tickets in `state`, from the state index, in id order.
pub fn ticket_ids_in_state(store: &dyn Store, state: State) -> Result<Vec<TicketId>, StoreError> {
    let prefix = index_prefix(state.as_str());
    let mut out = Vec::new();
    for item in store.scan_prefix(Tree::TicketsByState, &prefix) {
        let (key, _) = item?;
        out.extend(TicketId::from_key(&key[prefix.len()..]));
    }
    Ok(out)
}

/// Ticket `id` with all its links ([`links::fill`]).
pub fn get_ticket(store: &dyn Store, id: TicketId) -> Result<Option<Ticket>, StoreError> {
    let Some(bytes) = store.get(Tree::Tickets, &id.key())? else {
        return Ok(None);
    };
    let mut t: Ticket = decode(Tree::Tickets, &bytes)?;
    links::fill(store, &mut t)?;
    Ok(Some(t))
}

pub fn history(store: &dyn Store, id: TicketId) -> Result<Vec<HistoryEntry>, StoreError> {
    store
        .scan_prefix(Tree::History, &id.key())
        .map(|item| item.and_then(|(_, v)| decode(Tree::History, &v)))
        .collect()
}

/// A ticket's history entries after `after` (a `seq`), as many as fit in `budget` bytes of
/// JSON (at least one); `true` when more follow.
pub fn history_page(
    store: &dyn Store,
    id: TicketId,
    after: Option<u64>,
    budget: usize,
) -> Result<(Vec<HistoryEntry>, bool), StoreError> {
    let start = match after {
        Some(seq) => Bound::Excluded(history_key(id, seq)),
        None => Bound::Included(id.key()),
    };
    let end = prefix_end(&id.key()).map_or(Bound::Unbounded, Bound::Excluded);
    let entries = store
        .range(Tree::History, start, end)
        .map(|item| item.and_then(|(_, v)| decode(Tree::History, &v)));
    crate::api::page::take_within(entries, budget)
}

pub fn get_event(store: &dyn Store, id: u64) -> Result<Option<StoredEvent>, StoreError> {
    store
        .get(Tree::Events, &u64_key(id))?
        .map(|b| decode(Tree::Events, &b))
        .transpose()
}

/// The most tickets a time range may hold to be read ahead as a list of its own.
const RANGE_MAX: usize = 10_000;

/// Filters of a ticket listing; all that are set must match.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub state: Option<State>,
    pub kind: Option<Kind>,
    pub group: Option<String>,
    pub assignee: Option<String>,
    pub priority: Option<u8>,
    /// One of the ticket's tags.
    pub tag: Option<String>,
    pub vendor: Option<String>,
    /// The caller's address (`custom.caller`, set on tickets opened by mail), any case.
    pub caller: Option<String>,
    pub created: TimeRange,
    pub updated: TimeRange,
    /// Case-insensitive substring of the title, the description or a comment's body.
    pub text: Option<String>,
    pub sla: Option<SlaFilter>,
}

/// A half-open time range: at or after `after`, strictly before `before`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub after: Option<jiff::Timestamp>,
    pub before: Option<jiff::Timestamp>,
}

impl TimeRange {
    fn contains(&self, at: jiff::Timestamp) -> bool {
        self.after.is_none_or(|a| at >= a) && self.before.is_none_or(|b| at < b)
    }
}

/// Tickets whose SLA stands as `standing` at `at`, under the policies and calendars given.
#[derive(Debug, Clone)]
pub struct SlaFilter {
    pub standing: crate::sla::view::Standing,
    pub config: crate::sla::SlaConfig,
    pub calendars: std::sync::Arc<crate::sla::Calendars>,
    pub at: jiff::Timestamp,
}

impl TicketFilter {
    /// The posting lists of the filters an index serves (state, group, assignee, priority,
    /// tag, vendor, caller, each word of `text`); empty when none is set.
    fn postings(&self) -> Vec<search::Postings> {
        use search::Postings;
        let mut lists = Vec::new();
        let (group, assignee) = (self.group.as_deref(), self.assignee.as_deref());
        // A state with a group or an assignee is one pair list (a queue), not two lists.
        match self.state {
            Some(s) if group.is_some() || assignee.is_some() => {
                lists.extend(group.map(|g| Postings::state_group(s, g)));
                lists.extend(assignee.map(|a| Postings::state_assignee(s, a)));
            }
            state => {
                lists.extend(state.map(Postings::state));
                lists.extend(group.map(Postings::group));
                lists.extend(assignee.map(Postings::assignee));
            }
        }
        lists.extend(self.priority.map(Postings::priority));
        lists.extend(self.tag.as_deref().map(Postings::tag));
        lists.extend(self.vendor.as_deref().map(Postings::vendor));
        lists.extend(self.caller.as_deref().map(Postings::caller));
        if let Some(text) = &self.text {
            let mut words: Vec<String> = search::words(text).collect();
            words.sort();
            words.dedup();
            if words.is_empty() {
                // No word to look for: nothing has it.
                words.push(String::new());
            }
            lists.extend(words.iter().map(|w| Postings::word(w)));
        }
        lists
    }

    /// The posting lists of the indexed filters, and of each time range that holds at most
    /// [`RANGE_MAX`] tickets (a wider one is checked on the tickets the others select).
    fn lists(&self, store: &dyn Store) -> Result<Vec<search::Postings>, StoreError> {
        let mut lists = self.postings();
        for (time, range) in [
            (search::Time::Created, self.created),
            (search::Time::Updated, self.updated),
        ] {
            if range != TimeRange::default() {
                lists.extend(search::time_list(
                    store,
                    time,
                    range.after,
                    range.before,
                    RANGE_MAX,
                )?);
            }
        }
        Ok(lists)
    }

    /// The range of ticket keys the kind filter leaves, from the first key after `after`.
    fn key_range(&self, after: Option<TicketId>) -> (Vec<u8>, Option<Vec<u8>>) {
        let kind_prefix = self
            .kind
            .map(|k| k.prefix().as_bytes().to_vec())
            .unwrap_or_default();
        let mut from = kind_prefix.clone();
        if let Some(id) = after {
            let mut k = id.key();
            // The first key after this ticket's (ticket keys all have one length).
            k.push(0);
            from = from.max(k);
        }
        (from, prefix_end(&kind_prefix))
    }

    /// Whether `t` passes every filter but the text (which the word index answers).
    fn matches(&self, t: &Ticket) -> bool {
        let same = |want: &Option<String>, have: Option<&String>| {
            want.as_ref().is_none_or(|w| have == Some(w))
        };
        self.state.is_none_or(|s| t.state == s)
            && self.kind.is_none_or(|k| t.kind() == k)
            && same(&self.group, t.group.as_ref())
            && same(&self.assignee, t.assignee.as_ref())
            && same(&self.vendor, t.process.vendor.as_ref())
            && self.priority.is_none_or(|p| t.priority == p)
            && self.tag.as_ref().is_none_or(|tag| t.tags.contains(tag))
            && self.caller.as_ref().is_none_or(|c| {
                t.custom
                    .get("caller")
                    .and_then(|v| v.as_str())
                    .is_some_and(|have| have.eq_ignore_ascii_case(c))
            })
            && self.created.contains(t.created_at)
            && self.updated.contains(t.updated_at)
            && self.sla.as_ref().is_none_or(|f| {
                crate::sla::view::of(t, &f.config, &f.calendars, f.at).stands(f.standing)
            })
    }
}

/// One page of tickets in id order, starting after `after`; the second value is the cursor
/// for the next page when there is one. The indexed filters are merged from their posting
/// lists ([`search::intersect`]), with a time range that holds few tickets as a list of its
/// own; the other ranges and the SLA standing are checked on the tickets those select. With
/// no list, the tickets (of one kind) are walked.
pub fn list_tickets(
    store: &dyn Store,
    filter: &TicketFilter,
    after: Option<TicketId>,
    limit: usize,
) -> Result<(Vec<Ticket>, Option<TicketId>), StoreError> {
    let (from, end) = filter.key_range(after);
    let mut page = Vec::with_capacity(limit.min(1024));
    let mut next = None;
    let mut take = |t: Ticket| {
        if !filter.matches(&t) {
            return true;
        }
        if page.len() == limit {
            next = page.last().map(|t: &Ticket| t.id);
            return false;
        }
        page.push(t);
        true
    };
    let lists = filter.lists(store)?;
    if lists.is_empty() {
        let stop = end.map_or(Bound::Unbounded, Bound::Excluded);
        for item in store.range(Tree::Tickets, Bound::Included(from), stop) {
            let (_, value) = item?;
            let mut t: Ticket = decode(Tree::Tickets, &value)?;
            links::fill(store, &mut t)?;
            if !take(t) {
                break;
            }
        }
    } else {
        search::intersect(store, &lists, from, end.as_deref(), |id| {
            Ok(match get_ticket(store, id)? {
                Some(t) => take(t),
                None => true,
            })
        })?;
    }
    Ok((page, next))
}

/// The ids of the tickets `filter` selects, in id order, from the indexes alone (no ticket
/// is read): to count a listing, or find its newest. `None` when the filter sets nothing an
/// index serves, or something only the ticket can answer (kind, times, SLA standing).
pub fn indexed_ids(
    store: &dyn Store,
    filter: &TicketFilter,
) -> Result<Option<Vec<TicketId>>, StoreError> {
    let lists = filter.postings();
    if lists.is_empty()
        || filter.kind.is_some()
        || filter.created != TimeRange::default()
        || filter.updated != TimeRange::default()
        || filter.sla.is_some()
    {
        return Ok(None);
    }
    let mut ids = Vec::new();
    search::intersect(store, &lists, Vec::new(), None, |id| {
        ids.push(id);
        Ok(true)
    })?;
    Ok(Some(ids))
}

/// One page of a listing and the cursor of the next page, if there is one.
pub type TicketPage = (Vec<Ticket>, Option<TicketId>);
