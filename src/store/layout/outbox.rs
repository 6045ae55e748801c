//! Where outbox rows and vendor state live in the store (key layouts) and typed reads of
//! them. The engine writes through these layouts; the dispatcher, the API and the metrics
//! read through them. This module must not write: only the engine does.

use std::ops::Bound;

use jiff::Timestamp;

use crate::store::{Store, StoreError, Tree, decode, u64_key};
use crate::tickets::TicketId;
use crate::vendors::{OutboxRow, VendorState};

/// Meta key of the last outbox row id handed out.
pub const OUTBOX_SEQ: &[u8] = b"seq/outbox";

/// The row key in [`Tree::Outbox`] and [`Tree::OutboxDead`].
pub fn row_key(id: u64) -> Vec<u8> {
    u64_key(id).to_vec()
}

/// Milliseconds since the epoch, as big-endian bytes that sort in time order (the sign bit
/// flipped, so instants before 1970 sort first too).
fn time_bytes(at: Timestamp) -> [u8; 8] {
    ((at.as_millisecond() as u64) ^ (1 << 63)).to_be_bytes()
}

/// The [`Tree::OutboxDue`] key of row `id` due at `at`: due rows scan in time, then id, order.
pub fn due_key(at: Timestamp, id: u64) -> Vec<u8> {
    let mut k = time_bytes(at).to_vec();
    k.extend_from_slice(&u64_key(id));
    k
}

/// The due time (to the millisecond) and row id of a [`Tree::OutboxDue`] key.
pub fn parse_due_key(key: &[u8]) -> Option<(Timestamp, u64)> {
    let (time, id) = key.split_at_checked(8)?;
    let ms = u64::from_be_bytes(time.try_into().ok()?) ^ (1 << 63);
    let at = Timestamp::from_millisecond(ms as i64).ok()?;
    Some((at, u64::from_be_bytes(id.try_into().ok()?)))
}

/// `vendor \0 ticket key`: the key of a vendor's queue for a ticket ([`Tree::OutboxQueues`])
/// and of the vendor's claim on the ticket ([`Tree::VendorTickets`]).
pub fn vendor_ticket_key(vendor: &str, ticket: TicketId) -> Vec<u8> {
    let mut k = vendor_prefix(vendor);
    k.extend_from_slice(&ticket.key());
    k
}

/// `vendor \0`: the prefix of everything keyed by vendor and something else.
pub fn vendor_prefix(vendor: &str) -> Vec<u8> {
    let mut k = vendor.as_bytes().to_vec();
    k.push(0);
    k
}

/// The [`Tree::VendorCallbacks`] key of a callback's webhook-id.
pub fn callback_key(vendor: &str, webhook_id: &str) -> Vec<u8> {
    let mut k = vendor_prefix(vendor);
    k.extend_from_slice(webhook_id.as_bytes());
    k
}

/// A pending row, if it exists.
pub fn pending(store: &dyn Store, id: u64) -> Result<Option<OutboxRow>, StoreError> {
    store
        .get(Tree::Outbox, &row_key(id))?
        .map(|b| decode(Tree::Outbox, &b))
        .transpose()
}

/// A dead row, if it exists.
pub fn dead(store: &dyn Store, id: u64) -> Result<Option<OutboxRow>, StoreError> {
    store
        .get(Tree::OutboxDead, &row_key(id))?
        .map(|b| decode(Tree::OutboxDead, &b))
        .transpose()
}

/// Rows of `tree` ([`Tree::Outbox`] or [`Tree::OutboxDead`]) in id order, optionally of one
/// vendor only, at most `limit`, starting after row `after`.
pub fn rows(
    store: &dyn Store,
    tree: Tree,
    vendor: Option<&str>,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let start = match after {
        Some(id) => Bound::Excluded(row_key(id)),
        None => Bound::Unbounded,
    };
    let mut out = Vec::new();
    for item in store.range(tree, start, Bound::Unbounded) {
        let (_, value) = item?;
        let row: OutboxRow = decode(tree, &value)?;
        if vendor.is_none_or(|v| v == row.vendor) {
            out.push(row);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// How many entries `tree` holds (for the depth gauges).
pub fn count(store: &dyn Store, tree: Tree) -> Result<u64, StoreError> {
    let mut n = 0;
    for item in store.range(tree, Bound::Unbounded, Bound::Unbounded) {
        item?;
        n += 1;
    }
    Ok(n)
}

/// The vendor's stored delivery state (enabled when nothing is stored).
pub fn vendor_state(store: &dyn Store, vendor: &str) -> Result<VendorState, StoreError> {
    Ok(store
        .get(Tree::VendorState, vendor.as_bytes())?
        .map(|b| decode(Tree::VendorState, &b))
        .transpose()?
        .unwrap_or(VendorState {
            disabled_at: None,
            reason: None,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time_then_id_and_parse_back() {
        let t = |ms: i64| Timestamp::from_millisecond(ms).unwrap();
        let keys = [
            due_key(t(-5), 9),
            due_key(t(0), 3),
            due_key(t(1_000), 1),
            due_key(t(1_000), 2),
            due_key(t(2_000_000_000_000), 0),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse_due_key(&keys[3]), Some((t(1_000), 2)));
        assert_eq!(parse_due_key(&keys[0]), Some((t(-5), 9)));
        assert_eq!(parse_due_key(b"short"), None);
    }
}
