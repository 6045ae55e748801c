//! The working state of one batch: reads see the batch's own pending writes, tickets are
//! decoded once and encoded once, and index entries are derived at the end from each
//! ticket's before and after. Dropping a Txn discards everything.

use std::collections::{BTreeMap, HashMap};

use crate::model::{HistoryEntry, Kind, State, Ticket, TicketId};
use crate::records::{self, EVENT_SEQ, index_entries};
use crate::store::{Store, StoreError, Tree, WriteBatch, decode, encode};

struct Slot {
    ticket: Ticket,
    /// Index entries of the ticket as stored before this batch (empty for a new ticket).
    indexed: Vec<(Tree, Vec<u8>)>,
    /// Kind and state as stored before this batch, to keep the counts by state exact.
    counted: Option<(Kind, State)>,
}

pub struct Txn<'s> {
    store: &'s dyn Store,
    /// Pending raw writes: `None` is a delete.
    writes: BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
    /// Tickets touched in this batch, decoded. A storm of updates to one ticket rewrites it
    /// once per batch, not once per event.
    tickets: HashMap<TicketId, Slot>,
    /// Counters (event id, ticket numbers) as advanced in this batch.
    counters: HashMap<Vec<u8>, u64>,
    /// The latest history entry appended to each ticket in this batch, so that a storm of
    /// like changes can be folded into one entry instead of one per event.
    last_history: HashMap<TicketId, HistoryEntry>,
}

impl<'s> Txn<'s> {
    pub fn new(store: &'s dyn Store) -> Txn<'s> {
        Txn {
            store,
            writes: BTreeMap::new(),
            tickets: HashMap::new(),
            counters: HashMap::new(),
            last_history: HashMap::new(),
        }
    }

    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(&(tree, key.to_vec())) {
            Some(pending) => Ok(pending.clone()),
            None => self.store.get(tree, key),
        }
    }

    pub fn put(&mut self, tree: Tree, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert((tree, key), Some(value));
    }

    /// Advances the counter stored under `key` in Meta and returns the new value.
    fn next(&mut self, key: Vec<u8>) -> Result<u64, StoreError> {
        let current = match self.counters.get(&key) {
            Some(v) => *v,
            None => match self.store.get(Tree::Meta, &key)? {
                Some(bytes) => decode::<u64>(Tree::Meta, &bytes)?,
                None => 0,
            },
        };
        let next = current + 1;
        self.counters.insert(key, next);
        Ok(next)
    }

    pub fn next_event_id(&mut self) -> Result<u64, StoreError> {
        self.next(EVENT_SEQ.to_vec())
    }

    pub fn next_ticket_id(&mut self, kind: Kind) -> Result<TicketId, StoreError> {
        let number = self.next(records::ticket_seq_key(kind))?;
        Ok(TicketId { kind, number })
    }

    pub fn ticket(&mut self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        if let Some(slot) = self.tickets.get(&id) {
            return Ok(Some(slot.ticket.clone()));
        }
        let Some(ticket) = records::get_ticket(self.store, id)? else {
            return Ok(None);
        };
        let indexed = index_entries(&ticket);
        let counted = Some((ticket.kind(), ticket.state));
        let slot = Slot {
            ticket: ticket.clone(),
            indexed,
            counted,
        };
        self.tickets.insert(id, slot);
        Ok(Some(ticket))
    }

    /// Stores a ticket (new or changed) as of the end of this batch.
    pub fn save_ticket(&mut self, ticket: Ticket) {
        match self.tickets.get_mut(&ticket.id) {
            Some(slot) => slot.ticket = ticket,
            None => {
                let slot = Slot {
                    ticket,
                    indexed: Vec::new(),
                    counted: None,
                };
                self.tickets.insert(slot.ticket.id, slot);
            }
        }
    }

    /// Appends a history entry to `ticket` (numbering it) and stores it.
    pub fn append_history(&mut self, ticket: &mut Ticket, mut entry: HistoryEntry) {
        ticket.history_len += 1;
        entry.seq = ticket.history_len;
        self.put(
            Tree::History,
            records::history_key(ticket.id, entry.seq),
            encode(&entry),
        );
        self.last_history.insert(ticket.id, entry);
    }

    /// The ticket's latest history entry, if this batch wrote it.
    pub fn latest_history_in_batch(&self, ticket: &Ticket) -> Option<&HistoryEntry> {
        self.last_history
            .get(&ticket.id)
            .filter(|e| e.seq == ticket.history_len)
    }

    /// Rewrites the ticket's latest history entry, which this batch wrote (see
    /// [`Txn::latest_history_in_batch`]); anything else is left alone.
    pub fn amend_latest_history(&mut self, ticket: &Ticket, entry: HistoryEntry) {
        if self.latest_history_in_batch(ticket).map(|e| e.seq) != Some(entry.seq) {
            return;
        }
        self.put(
            Tree::History,
            records::history_key(ticket.id, entry.seq),
            encode(&entry),
        );
        self.last_history.insert(ticket.id, entry);
    }

    /// Everything this batch wrote, as one atomic store batch.
    pub fn finish(mut self) -> Result<WriteBatch, StoreError> {
        let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
        for (id, slot) in std::mem::take(&mut self.tickets) {
            let now_counted = (slot.ticket.kind(), slot.ticket.state);
            if slot.counted != Some(now_counted) {
                if let Some((kind, state)) = slot.counted {
                    *counts
                        .entry(records::ticket_count_key(kind, state))
                        .or_default() -= 1;
                }
                *counts
                    .entry(records::ticket_count_key(now_counted.0, now_counted.1))
                    .or_default() += 1;
            }
            let now = index_entries(&slot.ticket);
            for old in &slot.indexed {
                if !now.contains(old) {
                    self.writes.insert(old.clone(), None);
                }
            }
            for new in now {
                if !slot.indexed.contains(&new) {
                    // Index entries carry no data; still a versioned value like every other.
                    self.writes.insert(new, Some(encode(&())));
                }
            }
            self.writes
                .insert((Tree::Tickets, id.key()), Some(encode(&slot.ticket)));
        }
        for (key, value) in std::mem::take(&mut self.counters) {
            self.writes.insert((Tree::Meta, key), Some(encode(&value)));
        }
        for (key, delta) in counts.into_iter().filter(|(_, d)| *d != 0) {
            let stored = match self.store.get(Tree::Meta, &key)? {
                Some(bytes) => decode::<u64>(Tree::Meta, &bytes)?,
                None => 0,
            };
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
        Ok(batch)
    }
}
