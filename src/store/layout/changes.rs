//! Changes by service: `service \0 time + change ticket key → ()` in `ChangesByService`, so
//! the changes recorded for a service in a time range are one ordered scan. The engine
//! writes an entry in the batch that records the change; this module only lays out and reads.

use std::ops::Bound;

use jiff::Timestamp;

use crate::store::layout::sla_timers::{due_end, due_prefix};
use crate::store::{Store, StoreError, Tree};
use crate::tickets::TicketId;

/// Where a change to `service` at `at` is indexed.
pub fn key(service: &str, at: Timestamp, id: TicketId) -> Vec<u8> {
    let mut k = service_prefix(service);
    k.extend_from_slice(&due_prefix(at));
    k.extend_from_slice(&id.key());
    k
}

fn service_prefix(service: &str) -> Vec<u8> {
    let mut k = service.as_bytes().to_vec();
    k.push(0);
    k
}

/// The change tickets recorded for `service` from `from` to `to` (both included), oldest
/// first, at most `limit`.
pub fn between(
    store: &dyn Store,
    service: &str,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
) -> Result<Vec<TicketId>, StoreError> {
    let mut start = service_prefix(service);
    start.extend_from_slice(&due_prefix(from));
    let mut end = service_prefix(service);
    end.extend_from_slice(&due_end(to));
    let skip = service_prefix(service).len() + due_prefix(from).len();
    let mut out = Vec::new();
    for (k, _) in store.scan(
        Tree::ChangesByService,
        Bound::Included(start),
        Bound::Excluded(end),
        limit,
    )? {
        if let Some(id) = k.get(skip..).and_then(TicketId::from_key) {
            out.push(id);
        }
    }
    Ok(out)
}
