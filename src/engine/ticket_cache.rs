//! Decoded tickets kept between batches. The engine is the store's only writer, so a ticket
//! it read or wrote stays what the store holds until the engine itself changes it: a hot
//! ticket (an alert re-sent every minute, a storm on one service) is decoded once, not once
//! per batch. JSON decoding was the largest single cost of a re-send.
//!
//! Owns only the map. It must not read the store: [`super::txn::Txn`] fills it with what it
//! loads, and the engine with what a batch wrote once the store has applied it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::tickets::{Ticket, TicketId};

/// Tickets kept in each generation: at most twice this many are held (a few KiB each).
const GENERATION: usize = 4096;

/// An approximate LRU in two generations: lookups promote into `current`; when `current`
/// is full it becomes `previous` and the old `previous` is dropped. O(1), no bookkeeping.
#[derive(Default)]
pub(crate) struct TicketCache {
    /// Tickets used since the last turnover.
    current: HashMap<TicketId, Arc<Ticket>>,
    /// Tickets used in the generation before; dropped at the next turnover.
    previous: HashMap<TicketId, Arc<Ticket>>,
}

impl TicketCache {
    pub fn get(&mut self, id: TicketId) -> Option<Arc<Ticket>> {
        if let Some(t) = self.current.get(&id) {
            return Some(t.clone());
        }
        let t = self.previous.remove(&id)?;
        self.put(t.clone());
        Some(t)
    }

    /// Whether `id` is held (without promoting it).
    pub fn contains(&self, id: TicketId) -> bool {
        self.current.contains_key(&id) || self.previous.contains_key(&id)
    }

    /// Keeps `ticket` as the store now holds it.
    pub fn put(&mut self, ticket: Arc<Ticket>) {
        if self.current.len() >= GENERATION && !self.current.contains_key(&ticket.id) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(ticket.id, ticket);
    }

    /// Forgets everything (after a failed commit, when the store's state is not known).
    pub fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::Kind;

    fn ticket(number: u64) -> Arc<Ticket> {
        let mut t: Ticket = serde_json::from_value(serde_json::json!({
            "id": "INC-000001", "state": "new", "title": "t", "impact": "low",
            "urgency": "low", "priority": 5, "history_len": 0,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        }))
        .unwrap();
        t.id = TicketId {
            kind: Kind::Incident,
            number,
        };
        Arc::new(t)
    }

    #[test]
    fn holds_at_most_two_generations_and_keeps_what_is_used() {
        let mut cache = TicketCache::default();
        for n in 0..GENERATION as u64 {
            cache.put(ticket(n));
        }
        // Ticket 0 is used in the next generation, so it survives the one after.
        for n in GENERATION as u64..2 * GENERATION as u64 {
            cache.put(ticket(n));
            if n == GENERATION as u64 {
                assert!(
                    cache
                        .get(TicketId {
                            kind: Kind::Incident,
                            number: 0
                        })
                        .is_some()
                );
            }
        }
        assert!(cache.len() <= 2 * GENERATION);
        cache.put(ticket(2 * GENERATION as u64));
        let zero = TicketId {
            kind: Kind::Incident,
            number: 0,
        };
        let one = TicketId {
            kind: Kind::Incident,
            number: 1,
        };
        assert!(cache.get(zero).is_some(), "promoted, so kept");
        assert!(
            cache.get(one).is_none(),
            "unused for two generations, so dropped"
        );
        cache.clear();
        assert!(cache.get(zero).is_none());
    }
}
