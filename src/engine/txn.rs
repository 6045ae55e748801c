//! The working state of one batch: reads see the batch's own pending writes, tickets are
//! decoded once and encoded once, and index entries are derived at the end from each
//! ticket's before and after. Dropping a Txn discards everything; [`Txn::rollback`] discards
//! what happened since the last [`Txn::savepoint`] (one event's worth), so a refused command
//! leaves no trace in its batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::engine::ticket_cache::TicketCache;
use crate::store::layout::{EVENT_SEQ, field_index_entries, index_entries};
use crate::store::{Store, StoreError, Tree, WriteBatch, encode, layout};
use crate::tickets::{HistoryEntry, Kind, State, Ticket, TicketId};

struct Slot {
    ticket: Ticket,
    /// Kind and state as stored before this batch, to keep the counts by state exact.
    counted: Option<(Kind, State)>,
    /// Saved in this batch: only then is it written back (a ticket that was only read is not).
    dirty: bool,
    /// The ticket as read from the store (`None` for a ticket created in this batch), so
    /// [`Txn::ticket_at_savepoint`] need not decode it a second time.
    loaded: Option<Arc<Ticket>>,
}

pub struct Txn<'s> {
    store: &'s dyn Store,
    /// Tickets as the store holds them, decoded, kept between batches by the engine.
    cache: &'s mut TicketCache,
    /// Pending raw writes: `None` is a delete.
    writes: BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
    /// Values read ahead for the whole batch ([`Txn::prefetch`]), as stored before it.
    read: HashMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
    /// Tickets touched in this batch, decoded. A storm of updates to one ticket rewrites it
    /// once per batch, not once per event.
    tickets: HashMap<TicketId, Slot>,
    /// Counters (event id, ticket numbers) as advanced in this batch.
    counters: HashMap<Vec<u8>, u64>,
    /// Every history entry this batch wrote, as written, by ticket and seq: a ticket's latest
    /// one, so that a storm of like changes can be folded into one entry instead of one per
    /// event; and what the report aggregates read at [`Txn::finish`] without decoding what
    /// was just encoded.
    written_history: HashMap<(TicketId, u64), HistoryEntry>,
    /// Tickets that got history entries during the current event, with their history length
    /// before it: what `on_ticket` rules are told changed.
    touched: BTreeMap<TicketId, u64>,
    /// How to undo each change since the savepoint, in order. Old values are moved here,
    /// not cloned, so keeping the log costs next to nothing.
    undo: Vec<Undo>,
    /// History entries appended since the savepoint (this event's), which the outbox turns
    /// into messages for the tickets' vendors.
    appended: Vec<(TicketId, HistoryEntry)>,
    /// Vendors rules asked to notify since the savepoint: ticket, vendor, and the rule.
    notices: Vec<Notice>,
    /// The store's state index as read once in this batch, per state asked: it does not move
    /// while the batch runs (the batch's own tickets are in `tickets`), and every new
    /// incident asks for the changes being implemented.
    stored_in_state: HashMap<State, Vec<TicketId>>,
}

/// A rule's request to notify a vendor: the ticket, the vendor, and the rule as actor.
pub type Notice = (TicketId, String, crate::tickets::Actor);

/// The previous value of one thing the Txn changed.
enum Undo {
    Write((Tree, Vec<u8>), Option<Option<Vec<u8>>>),
    Counter(Vec<u8>, Option<u64>),
    /// `None`: the ticket had no slot. Boxed: tickets are large, the other entries small.
    Ticket(TicketId, Option<Box<Ticket>>),
    /// The entry this batch had written at a ticket's seq before (`None`: none).
    WrittenHistory((TicketId, u64), Option<Box<HistoryEntry>>),
}

impl<'s> Txn<'s> {
    pub fn new(store: &'s dyn Store, cache: &'s mut TicketCache) -> Txn<'s> {
        Txn {
            store,
            cache,
            writes: BTreeMap::new(),
            read: HashMap::new(),
            tickets: HashMap::new(),
            counters: HashMap::new(),
            written_history: HashMap::new(),
            undo: Vec::new(),
            appended: Vec::new(),
            notices: Vec::new(),
            touched: BTreeMap::new(),
            stored_in_state: HashMap::new(),
        }
    }

    /// Marks the point [`Txn::rollback`] returns to (the previous mark is forgotten).
    pub fn savepoint(&mut self) {
        self.undo.clear();
        self.appended.clear();
        self.notices.clear();
        self.touched.clear();
    }

    /// The tickets changed since the last call (or savepoint), each with its history length
    /// before the change.
    pub fn take_touched(&mut self) -> BTreeMap<TicketId, u64> {
        std::mem::take(&mut self.touched)
    }

    /// Discards every change since the last savepoint.
    pub fn rollback(&mut self) {
        self.appended.clear();
        self.notices.clear();
        self.touched.clear();
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Write(key, Some(old)) => {
                    self.writes.insert(key, old);
                }
                Undo::Write(key, None) => {
                    self.writes.remove(&key);
                }
                Undo::Counter(key, Some(old)) => {
                    self.counters.insert(key, old);
                }
                Undo::Counter(key, None) => {
                    self.counters.remove(&key);
                }
                Undo::Ticket(id, Some(old)) => {
                    if let Some(slot) = self.tickets.get_mut(&id) {
                        slot.ticket = *old;
                    }
                }
                Undo::Ticket(id, None) => {
                    self.tickets.remove(&id);
                }
                Undo::WrittenHistory(at, Some(old)) => {
                    self.written_history.insert(at, *old);
                }
                Undo::WrittenHistory(at, None) => {
                    self.written_history.remove(&at);
                }
            }
        }
    }

    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let at = (tree, key.to_vec());
        match self.writes.get(&at).or_else(|| self.read.get(&at)) {
            Some(value) => Ok(value.clone()),
            None => self.store.get(tree, key),
        }
    }

    /// Reads `keys` from the store in one call (one round trip on PostgreSQL) for later
    /// [`Txn::get`]s, skipping what the batch already wrote or read ahead.
    pub fn prefetch(&mut self, keys: Vec<(Tree, Vec<u8>)>) -> Result<(), StoreError> {
        // A batch of Prometheus re-sends names thousands of keys: a set, not a scan per key.
        let wanted: HashSet<(Tree, Vec<u8>)> = keys
            .into_iter()
            .filter(|k| !self.writes.contains_key(k) && !self.read.contains_key(k))
            .collect();
        let wanted: Vec<(Tree, Vec<u8>)> = wanted.into_iter().collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let values = self.store.get_many(&wanted)?;
        self.read.extend(wanted.into_iter().zip(values));
        Ok(())
    }

    /// Whether ticket `id` is decoded already (this batch's or the engine's cache).
    pub fn has_ticket(&self, id: TicketId) -> bool {
        self.tickets.contains_key(&id) || self.cache.contains(id)
    }

    /// A counter in Meta as this batch found it stored.
    fn stored_counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.get(Tree::Meta, key)? {
            Some(bytes) => crate::store::decode::<u64>(Tree::Meta, &bytes),
            None => Ok(0),
        }
    }

    pub fn put(&mut self, tree: Tree, key: Vec<u8>, value: Vec<u8>) {
        let old = self.writes.insert((tree, key.clone()), Some(value));
        self.undo.push(Undo::Write((tree, key), old));
    }

    /// Deletes `key` from `tree` as of the end of this batch.
    pub fn delete(&mut self, tree: Tree, key: Vec<u8>) {
        let old = self.writes.insert((tree, key.clone()), None);
        self.undo.push(Undo::Write((tree, key), old));
    }

    /// Advances the counter stored under `key` in Meta (e.g. the outbox's row ids).
    pub fn next_seq(&mut self, key: &[u8]) -> Result<u64, StoreError> {
        self.next(key.to_vec())
    }

    /// Every ticket loaded or saved since the last savepoint (what one event touched).
    pub fn touched_since_savepoint(&self) -> Vec<TicketId> {
        let mut ids = Vec::new();
        for u in &self.undo {
            if let Undo::Ticket(id, _) = u
                && !ids.contains(id)
            {
                ids.push(*id);
            }
        }
        ids
    }

    /// Tickets created since the last savepoint (what one event opened), in creation order.
    pub fn created_since_savepoint(&self) -> Vec<TicketId> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for u in &self.undo {
            if let Undo::Ticket(id, old) = u
                && !seen.contains(id)
            {
                seen.push(*id);
                // First touched by this event with no slot and no stored copy: new.
                if old.is_none() && self.tickets.get(id).is_some_and(|s| s.loaded.is_none()) {
                    out.push(*id);
                }
            }
        }
        out
    }

    /// Ids of the tickets of `kind` this batch has loaded or saved so far.
    pub fn batch_ticket_ids(&self, kind: Kind) -> Vec<TicketId> {
        self.tickets
            .keys()
            .filter(|id| id.kind == kind)
            .copied()
            .collect()
    }

    /// Ids of the tickets the store holds in `state` (its state index before this batch), in
    /// id order: read once per batch.
    pub fn stored_ids_in_state(&mut self, state: State) -> Result<Vec<TicketId>, StoreError> {
        if let Some(ids) = self.stored_in_state.get(&state) {
            return Ok(ids.clone());
        }
        let ids = layout::ticket_ids_in_state(self.store, state)?;
        self.stored_in_state.insert(state, ids.clone());
        Ok(ids)
    }

    /// Ticket `id` as it was at the last savepoint (`None`: it did not exist yet).
    pub fn ticket_at_savepoint(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        for u in &self.undo {
            if let Undo::Ticket(i, old) = u
                && *i == id
            {
                return match old {
                    Some(t) => Ok(Some((**t).clone())),
                    // It had no slot then: it was read (or created) since.
                    None => Ok(self
                        .tickets
                        .get(&id)
                        .and_then(|slot| slot.loaded.as_deref().cloned())),
                };
            }
        }
        Ok(self.tickets.get(&id).map(|s| s.ticket.clone()))
    }

    /// Advances the counter stored under `key` in Meta and returns the new value.
    fn next(&mut self, key: Vec<u8>) -> Result<u64, StoreError> {
        let current = match self.counters.get(&key) {
            Some(v) => *v,
            None => self.stored_counter(&key)?,
        };
        let next = current + 1;
        let old = self.counters.insert(key.clone(), next);
        self.undo.push(Undo::Counter(key, old));
        Ok(next)
    }

    /// The counter under `key` as this batch left it, if the batch advanced it.
    pub fn counter(&self, key: &[u8]) -> Option<u64> {
        self.counters.get(key).copied()
    }

    pub fn next_event_id(&mut self) -> Result<u64, StoreError> {
        self.next(EVENT_SEQ.to_vec())
    }

    pub fn next_ticket_id(&mut self, kind: Kind) -> Result<TicketId, StoreError> {
        let number = self.next(layout::ticket_seq_key(kind))?;
        Ok(TicketId { kind, number })
    }

    /// Ticket `id` as this batch sees it, for a look only: a ticket the batch has not
    /// touched is not copied (nor given a slot), so a re-send that changes nothing costs no
    /// clone of its ticket. Take [`Txn::ticket`] to change it.
    pub fn peek_ticket(&mut self, id: TicketId) -> Result<Option<Arc<Ticket>>, StoreError> {
        if let Some(slot) = self.tickets.get(&id) {
            return Ok(Some(Arc::new(slot.ticket.clone())));
        }
        self.stored_ticket(id)
    }

    /// Ticket `id` as the store holds it: the engine's cached copy, or decoded (with its
    /// many-side links) and cached.
    fn stored_ticket(&mut self, id: TicketId) -> Result<Option<Arc<Ticket>>, StoreError> {
        if let Some(t) = self.cache.get(id) {
            return Ok(Some(t));
        }
        let Some(bytes) = self.get(Tree::Tickets, &id.key())? else {
            return Ok(None);
        };
        let mut t: Ticket = crate::store::decode(Tree::Tickets, &bytes)?;
        layout::links::fill(self.store, &mut t)?;
        let t = Arc::new(t);
        self.cache.put(t.clone());
        Ok(Some(t))
    }

    pub fn ticket(&mut self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        if let Some(slot) = self.tickets.get(&id) {
            return Ok(Some(slot.ticket.clone()));
        }
        let Some(ticket) = self.stored_ticket(id)? else {
            return Ok(None);
        };
        let counted = Some((ticket.kind(), ticket.state));
        let slot = Slot {
            ticket: (*ticket).clone(),
            counted,
            dirty: false,
            loaded: Some(ticket.clone()),
        };
        self.tickets.insert(id, slot);
        self.undo.push(Undo::Ticket(id, None));
        Ok(Some(Arc::unwrap_or_clone(ticket)))
    }

    /// Stores a ticket (new or changed) as of the end of this batch.
    pub fn save_ticket(&mut self, ticket: Ticket) {
        match self.tickets.get_mut(&ticket.id) {
            Some(slot) => {
                let id = ticket.id;
                slot.dirty = true;
                let old = std::mem::replace(&mut slot.ticket, ticket);
                self.undo.push(Undo::Ticket(id, Some(Box::new(old))));
            }
            None => {
                self.undo.push(Undo::Ticket(ticket.id, None));
                let slot = Slot {
                    ticket,
                    counted: None,
                    dirty: true,
                    loaded: None,
                };
                self.tickets.insert(slot.ticket.id, slot);
            }
        }
    }

    /// Appends a history entry to `ticket` (numbering it) and stores it.
    pub fn append_history(&mut self, ticket: &mut Ticket, mut entry: HistoryEntry) {
        self.touched.entry(ticket.id).or_insert(ticket.history_len);
        ticket.history_len += 1;
        entry.seq = ticket.history_len;
        self.put(
            Tree::History,
            layout::history_key(ticket.id, entry.seq),
            encode(&entry),
        );
        self.appended.push((ticket.id, entry.clone()));
        self.remember_written(ticket.id, entry);
    }

    /// Keeps `entry` as written at its seq, undoably.
    fn remember_written(&mut self, id: TicketId, entry: HistoryEntry) {
        let at = (id, entry.seq);
        let old = self.written_history.insert(at, entry);
        self.undo.push(Undo::WrittenHistory(at, old.map(Box::new)));
    }

    /// Records a rule's request to notify `vendor` about `ticket`.
    pub fn notice(&mut self, ticket: TicketId, vendor: String, by: crate::tickets::Actor) {
        self.notices.push((ticket, vendor, by));
    }

    /// Takes this event's appended history entries and notify requests, in order.
    pub fn take_outbox_work(&mut self) -> (Vec<(TicketId, HistoryEntry)>, Vec<Notice>) {
        (
            std::mem::take(&mut self.appended),
            std::mem::take(&mut self.notices),
        )
    }

    /// The ticket's latest history entry, if this batch wrote it (and none after it).
    pub fn latest_history_in_batch(&self, ticket: &Ticket) -> Option<&HistoryEntry> {
        let (id, seq) = (ticket.id, ticket.history_len);
        if self.written_history.contains_key(&(id, seq + 1)) {
            return None;
        }
        self.written_history.get(&(id, seq))
    }

    /// Rewrites the ticket's latest history entry, which this batch wrote (see
    /// [`Txn::latest_history_in_batch`]); anything else is left alone.
    pub fn amend_latest_history(&mut self, ticket: &Ticket, entry: HistoryEntry) {
        if self.latest_history_in_batch(ticket).map(|e| e.seq) != Some(entry.seq) {
            return;
        }
        self.put(
            Tree::History,
            layout::history_key(ticket.id, entry.seq),
            encode(&entry),
        );
        self.remember_written(ticket.id, entry);
    }

    /// Adds what the ticket's history entries of this batch and its clocks' ends count to
    /// `deltas`, and stores its report marks when they moved.
    fn report(
        &mut self,
        slot: &Slot,
        sla: crate::reports::aggregate::SlaSetup<'_>,
        deltas: &mut crate::reports::aggregate::Deltas,
    ) -> Result<(), StoreError> {
        let before = slot.loaded.as_deref();
        let id = slot.ticket.id;
        let from = before.map_or(0, |b| b.history_len);
        let mut entries = Vec::new();
        for seq in from + 1..=slot.ticket.history_len {
            // Entries are taken as written (finish is the last use); one only found among
            // the writes is decoded.
            if let Some(entry) = self.written_history.remove(&(id, seq)) {
                entries.push(entry);
            } else if let Some(Some(bytes)) = self
                .writes
                .get(&(Tree::History, layout::history_key(id, seq)))
            {
                entries.push(crate::store::decode(Tree::History, bytes)?);
            }
        }
        let clocks_moved = before.is_none_or(|b| b.sla.clocks != slot.ticket.sla.clocks);
        if entries.is_empty() && !clocks_moved {
            return Ok(());
        }
        let mut marks: layout::reports::Marks = match before {
            Some(_) => match self.get(Tree::ReportMarks, &id.key())? {
                Some(b) => crate::store::decode(Tree::ReportMarks, &b)?,
                None => Default::default(),
            },
            None => Default::default(),
        };
        let old = marks.clone();
        crate::reports::aggregate::facts(&slot.ticket, before, &entries, &mut marks, sla, deltas);
        if marks != old {
            self.writes
                .insert((Tree::ReportMarks, id.key()), Some(encode(&marks)));
        }
        Ok(())
    }

    /// Everything this batch wrote, as one atomic store batch, and the tickets it changed as
    /// they will be stored.
    /// The report aggregates follow each changed ticket's new history entries and clock
    /// ends (`reports::aggregate`), judged under `sla`.
    pub fn finish(
        mut self,
        sla: crate::reports::aggregate::SlaSetup<'_>,
    ) -> Result<(WriteBatch, Vec<Ticket>), StoreError> {
        let mut changed = Vec::new();
        let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut deltas = crate::reports::aggregate::Deltas::new();
        // The stored report marks of every changed ticket, in one read (one round trip on
        // PostgreSQL, not one per ticket).
        let marks: Vec<(Tree, Vec<u8>)> = self
            .tickets
            .values()
            .filter(|s| s.dirty && s.loaded.is_some())
            .map(|s| (Tree::ReportMarks, s.ticket.id.key()))
            .collect();
        self.prefetch(marks)?;
        for (id, mut slot) in std::mem::take(&mut self.tickets) {
            if !slot.dirty {
                continue;
            }
            self.report(&slot, sla, &mut deltas)?;
            let now_counted = (slot.ticket.kind(), slot.ticket.state);
            if slot.counted != Some(now_counted) {
                if let Some((kind, state)) = slot.counted {
                    *counts
                        .entry(layout::ticket_count_key(kind, state))
                        .or_default() -= 1;
                }
                *counts
                    .entry(layout::ticket_count_key(now_counted.0, now_counted.1))
                    .or_default() += 1;
            }
            // Worked out here, for the tickets a batch changed, not for every ticket it read;
            // the words only when the title or the description changed.
            let same_text = slot.loaded.as_deref().is_some_and(|b| {
                b.title == slot.ticket.title && b.description == slot.ticket.description
            });
            let entries = if same_text {
                field_index_entries
            } else {
                index_entries
            };
            let indexed = slot.loaded.as_deref().map(entries).unwrap_or_default();
            let now: HashSet<(Tree, Vec<u8>)> = entries(&slot.ticket).into_iter().collect();
            let was: HashSet<&(Tree, Vec<u8>)> = indexed.iter().collect();
            for old in &indexed {
                if !now.contains(old) {
                    self.writes.insert(old.clone(), None);
                }
            }
            for new in now {
                if !was.contains(&new) {
                    // Index entries carry no data; still a versioned value like every other.
                    self.writes.insert(new, Some(encode(&())));
                }
            }
            for (key, value) in layout::by_service::changes(slot.loaded.as_deref(), &slot.ticket) {
                self.writes.insert((Tree::TicketsByService, key), value);
            }
            let (record, links) = layout::links::split(slot.loaded.as_deref(), &mut slot.ticket);
            for (key, value) in links {
                self.writes.insert((Tree::TicketLinks, key), value);
            }
            self.writes.insert((Tree::Tickets, id.key()), Some(record));
            changed.push(slot.ticket);
        }
        crate::reports::aggregate::merge(self.store, deltas, &mut self.writes)?;
        for (key, value) in std::mem::take(&mut self.counters) {
            self.writes.insert((Tree::Meta, key), Some(encode(&value)));
        }
        for (key, delta) in counts.into_iter().filter(|(_, d)| *d != 0) {
            let stored = self.stored_counter(&key)?;
            let value = stored.saturating_add_signed(delta);
            self.writes.insert((Tree::Meta, key), Some(encode(&value)));
        }
        let mut batch = WriteBatch::default();
        for ((tree, key), value) in self.writes {
            match value {
                Some(v) => batch.put(tree, key, v),
                None => batch.delete(tree, key),
            }
        }
        Ok((batch, changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    /// A new incident with nothing set, at the epoch.
    fn new_ticket(id: TicketId) -> Ticket {
        Ticket {
            title: "t".into(),
            ..Ticket::blank(id, jiff::Timestamp::UNIX_EPOCH)
        }
    }

    #[test]
    fn rollback_forgets_an_amendment_of_the_batchs_latest_history_entry() {
        let store = MemoryStore::default();
        let mut cache = TicketCache::default();
        let mut txn = Txn::new(&store, &mut cache);
        let mut ticket = new_ticket(TicketId {
            kind: Kind::Incident,
            number: 1,
        });
        let entry = |reason: &str| HistoryEntry {
            seq: 0,
            at: jiff::Timestamp::UNIX_EPOCH,
            actor: crate::tickets::Actor::User { name: "ann".into() },
            changes: Vec::new(),
            reason: Some(reason.into()),
            event: None,
            rules_version: None,
        };
        txn.savepoint();
        txn.append_history(&mut ticket, entry("first event"));
        txn.save_ticket(ticket.clone());

        // The next event amends that entry, then fails and is rolled back.
        txn.savepoint();
        let mut amended = txn.latest_history_in_batch(&ticket).unwrap().clone();
        amended.reason = Some("rolled back".into());
        txn.amend_latest_history(&ticket, amended);
        txn.rollback();

        let latest = txn.latest_history_in_batch(&ticket).unwrap();
        assert_eq!(latest.reason.as_deref(), Some("first event"));
        let stored: HistoryEntry = crate::store::decode(
            Tree::History,
            &txn.get(Tree::History, &layout::history_key(ticket.id, 1))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(stored.reason.as_deref(), Some("first event"));
        let kept = &txn.written_history[&(ticket.id, 1)];
        assert_eq!(
            kept, &stored,
            "the entry the report aggregates read is the one stored"
        );
    }

    #[test]
    fn rollback_undoes_everything_since_the_savepoint_and_nothing_before() {
        let store = MemoryStore::default();
        let mut cache = TicketCache::default();
        let mut txn = Txn::new(&store, &mut cache);
        txn.savepoint();
        assert_eq!(txn.next_event_id().unwrap(), 1);
        txn.put(Tree::Events, b"kept".to_vec(), b"1".to_vec());

        txn.savepoint();
        assert_eq!(txn.next_event_id().unwrap(), 2);
        let id = txn.next_ticket_id(Kind::Incident).unwrap();
        txn.put(Tree::Events, b"kept".to_vec(), b"overwritten".to_vec());
        txn.put(Tree::Events, b"new".to_vec(), b"2".to_vec());
        txn.save_ticket(new_ticket(id));
        txn.rollback();

        assert_eq!(txn.next_event_id().unwrap(), 2, "the event id is reused");
        assert_eq!(txn.next_ticket_id(Kind::Incident).unwrap().number, 1);
        assert_eq!(txn.get(Tree::Events, b"kept").unwrap(), Some(b"1".to_vec()));
        assert_eq!(txn.get(Tree::Events, b"new").unwrap(), None);
        assert_eq!(txn.ticket(id).unwrap(), None);
    }
}
