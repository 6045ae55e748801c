//! Durable SLA timers: one row per ticket, for the earliest (clock, stage) of that ticket
//! that has yet to fall due, in the `SlaTimers` tree, keyed by big-endian due time first so
//! the earliest timer is the first key. A fired timer travels to the engine as the event body
//! [`Timer`]; the engine then recomputes the ticket's schedule and writes the row of the next.
//!
//! Owns the key layout and the read side (earliest, due, count). It must not write: the
//! engine puts and deletes rows in the same batch as the ticket whose clocks they belong to
//! (the ticket record lists its whole schedule, earliest first, so the row is its first).
//! One row per ticket rather than one per stage keeps a new incident's write small: a
//! policy with three warnings on two clocks would otherwise store eight rows per ticket.
//! Rows a recompute leaves behind (from versions that stored every stage) are harmless: the
//! engine re-judges every timer at its due time and records a stale one only.

use std::ops::Bound;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::sla::clock::Stage;
use crate::store::{Store, StoreError, Tree, decode};
use crate::tickets::TicketId;

/// One timer: when `stage` of `clock` on `ticket` falls due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The ticket whose clock it is.
    pub ticket: TicketId,
    /// The clock's name (response, resolution, vendor).
    pub clock: String,
    /// The warning or the breach.
    #[serde(flatten)]
    pub stage: Stage,
    /// When it falls due, as computed when the row was written.
    pub due: Timestamp,
}

impl Timer {
    /// The row key: due time (seconds with the sign bit flipped, then nanoseconds, both
    /// big-endian), ticket key, clock name, a 0 byte, the stage (percent; 100 for breach).
    pub fn key(&self) -> Vec<u8> {
        let mut k = due_prefix(self.due);
        k.extend_from_slice(&self.ticket.key());
        k.extend_from_slice(self.clock.as_bytes());
        k.push(0);
        k.push(match self.stage {
            Stage::Warning(p) => p,
            Stage::Breach => 100,
        });
        k
    }
}

/// The first 12 bytes of the key of every timer due at `at`: keys before it are due earlier.
/// Seconds with the sign bit flipped, then nanoseconds, both big-endian. Alert expiry timers
/// use the same ordering.
pub(crate) fn due_prefix(at: Timestamp) -> Vec<u8> {
    let mut k = Vec::with_capacity(32);
    k.extend_from_slice(&((at.as_second() as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&(at.subsec_nanosecond() as u32).to_be_bytes());
    k
}

/// The exclusive end of a scan for every key due at or before `now`.
pub(crate) fn due_end(now: Timestamp) -> Vec<u8> {
    let mut end = due_prefix(now);
    // Everything due at `now` exactly is due too: end just past the whole instant.
    end.push(0xff);
    end
}

/// The earliest timer, if any.
pub fn earliest(store: &dyn Store) -> Result<Option<Timer>, StoreError> {
    match store
        .scan(Tree::SlaTimers, Bound::Unbounded, Bound::Unbounded, 1)?
        .first()
    {
        Some((_, value)) => Ok(Some(decode(Tree::SlaTimers, value)?)),
        None => Ok(None),
    }
}

/// Every timer due at or before `now`, earliest first, at most `limit`.
pub fn due(store: &dyn Store, now: Timestamp, limit: usize) -> Result<Vec<Timer>, StoreError> {
    let end = due_end(now);
    store
        .scan(
            Tree::SlaTimers,
            Bound::Unbounded,
            Bound::Excluded(end),
            limit,
        )?
        .iter()
        .map(|(_, v)| decode(Tree::SlaTimers, v))
        .collect()
}

/// How many timers are pending (for the metric).
pub fn count(store: &dyn Store) -> Result<u64, StoreError> {
    let mut n = 0;
    for item in store.range(Tree::SlaTimers, Bound::Unbounded, Bound::Unbounded) {
        item?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::store::WriteBatch;
    use crate::store::encode;
    use crate::tickets::Kind;

    fn timer(number: u64, due: &str, stage: Stage) -> Timer {
        Timer {
            ticket: TicketId {
                kind: Kind::Incident,
                number,
            },
            clock: "resolution".into(),
            stage,
            due: due.parse().unwrap(),
        }
    }

    #[test]
    fn a_timer_round_trips_as_a_journaled_event_body() {
        for stage in [Stage::Warning(75), Stage::Breach] {
            let body = crate::event::EventBody::Clock(timer(7, "2026-03-02T11:30:00Z", stage));
            let text = serde_json::to_string(&body).unwrap();
            assert!(text.contains(r#""type":"clock""#), "{text}");
            let back: crate::event::EventBody = serde_json::from_str(&text).unwrap();
            assert_eq!(back, body);
        }
    }

    #[test]
    fn keys_order_by_due_time_and_due_reads_up_to_now() {
        let store = MemoryStore::default();
        let timers = [
            timer(9, "2026-03-02T11:30:00.5Z", Stage::Warning(50)),
            timer(1, "2026-03-02T12:30:00Z", Stage::Breach),
            timer(2, "1969-12-31T23:59:59Z", Stage::Warning(90)),
            timer(3, "2026-03-02T12:30:00Z", Stage::Warning(75)),
        ];
        let mut batch = WriteBatch::default();
        for t in &timers {
            batch.put(Tree::SlaTimers, t.key(), encode(t));
        }
        store.apply(batch).unwrap();
        assert_eq!(earliest(&store).unwrap().as_ref(), Some(&timers[2]));
        assert_eq!(count(&store).unwrap(), 4);
        let now: Timestamp = "2026-03-02T12:30:00Z".parse().unwrap();
        let numbers: Vec<u64> = due(&store, now, 10)
            .unwrap()
            .iter()
            .map(|t| t.ticket.number)
            .collect();
        assert_eq!(numbers, [2, 9, 1, 3]);
        let before = now
            .checked_sub(jiff::SignedDuration::from_nanos(1))
            .unwrap();
        assert_eq!(due(&store, before, 10).unwrap().len(), 2);
        assert_eq!(due(&store, now, 1).unwrap().len(), 1);
    }
}
