//! Tickets by service, for rule queries: `service \0 o|c + kind prefix + !created + !ticket
//! key → summary` in `TicketsByService`. `o` holds open tickets and `c` the others, so the
//! open tickets of one kind and service are one ordered scan, and the value is all a query
//! answers with (no links, no history, no SLA). The creation time and the ticket key are
//! stored with every bit inverted, so the scan runs forward from the newest: a rule asks for
//! the newest few, and a forward step in sled costs a fraction of a backward one (version 1
//! stored them plain and scanned backwards). A ticket's services are its latest
//! alert's `service` label (`alert.service`) and its custom field `service`. The engine
//! derives the entries from each changed ticket's before and after in its commit
//! ([`changes`]); [`ensure`] builds them for a store written before they existed.

use std::collections::BTreeMap;
use std::ops::Bound;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::{EventBody, EventId};
use crate::store::layout::sla_timers::due_prefix;
use crate::store::{Store, StoreError, Tree, WriteBatch, decode, encode, prefix_end};
use crate::tickets::{Kind, State, Ticket, TicketId};

/// Meta key of the version of these entries; a store below [`VERSION`] gets them built.
const VERSION_KEY: &[u8] = b"index/by_service";
const VERSION: u64 = 2;

/// What a query needs of a ticket, stored with its index entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub state: State,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub priority: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub created_at: Timestamp,
    /// The latest alert's event, whose labels a query by `labels` reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<EventId>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, serde_json::Value>,
}

impl Summary {
    pub fn of(t: &Ticket) -> Summary {
        Summary {
            state: t.state,
            title: t.title.clone(),
            group: t.group.clone(),
            priority: t.priority,
            key: t.correlation_key.clone(),
            created_at: t.created_at,
            last_event: t.alert.as_ref().map(|a| a.last_event),
            custom: t.custom.clone(),
        }
    }
}

/// The services `t` is found under: its alert's `service` label and its custom `service`.
pub fn services(t: &Ticket) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(2);
    if let Some(s) = t.alert.as_ref().and_then(|a| a.service.as_deref()) {
        out.push(s);
    }
    if let Some(s) = t.custom.get("service").and_then(|v| v.as_str())
        && !out.contains(&s)
    {
        out.push(s);
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The scan prefix of `service`'s tickets of `kind`, open or not.
fn prefix(service: &str, open: bool, kind: Kind) -> Vec<u8> {
    let mut k = Vec::with_capacity(service.len() + 28);
    k.extend_from_slice(service.as_bytes());
    k.push(0);
    k.push(if open { b'o' } else { b'c' });
    k.extend_from_slice(kind.prefix().as_bytes());
    k
}

/// `bytes` with every bit inverted: what sorted ascending comes out descending.
fn inverted(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes.iter().map(|b| !b)
}

fn keys(t: &Ticket) -> Vec<Vec<u8>> {
    services(t)
        .into_iter()
        .map(|s| {
            let mut k = prefix(s, t.state.is_open(), t.kind());
            k.extend(inverted(&due_prefix(t.created_at)));
            k.extend(inverted(&t.id.key()));
            k
        })
        .collect()
}

/// The writes that take `before`'s entries (`None`: a new ticket) to `after`'s: `None` is a
/// delete. Nothing when neither a key nor the summary changed.
pub fn changes(before: Option<&Ticket>, after: &Ticket) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let old = before.map(keys).unwrap_or_default();
    let new = keys(after);
    if old.is_empty() && new.is_empty() {
        return Vec::new();
    }
    let summary = Summary::of(after);
    let same = before.is_some_and(|b| Summary::of(b) == summary);
    let mut out: Vec<(Vec<u8>, Option<Vec<u8>>)> = old
        .iter()
        .filter(|k| !new.contains(k))
        .map(|k| (k.clone(), None))
        .collect();
    let mut value: Option<Vec<u8>> = None;
    for k in new {
        if !same || !old.contains(&k) {
            let v = value.get_or_insert_with(|| encode(&summary)).clone();
            out.push((k, Some(v)));
        }
    }
    out
}

/// One ticket a query found.
pub struct Found {
    pub id: TicketId,
    pub summary: Summary,
}

/// `service`'s tickets of `kind`, open ones or closed ones, newest first, created at or
/// after `since`, for as long as `take` says so (it returns `false` to stop).
pub fn scan(
    store: &dyn Store,
    service: &str,
    open: bool,
    kind: Kind,
    since: Option<Timestamp>,
    take: &mut dyn FnMut(Found) -> bool,
) -> Result<(), StoreError> {
    let start = prefix(service, open, kind);
    let Some(all) = prefix_end(&start) else {
        return Ok(());
    };
    // Newest first: a ticket created at `since` or later sorts at or before `since`'s time.
    let end = match since {
        Some(s) => {
            let mut k = start.clone();
            k.extend(inverted(&due_prefix(s)));
            prefix_end(&k).unwrap_or(all)
        }
        None => all,
    };
    for item in store.range(
        Tree::TicketsByService,
        Bound::Included(start),
        Bound::Excluded(end),
    ) {
        let (key, value) = item?;
        let id_at = key.len().saturating_sub(TICKET_KEY_LEN);
        let plain: Option<Vec<u8>> = key.get(id_at..).map(|k| inverted(k).collect());
        let Some(id) = plain.as_deref().and_then(TicketId::from_key) else {
            continue;
        };
        let summary: Summary = decode(Tree::TicketsByService, &value)?;
        if !take(Found { id, summary }) {
            break;
        }
    }
    Ok(())
}

/// Ticket keys are a 3-byte prefix and a big-endian u64.
const TICKET_KEY_LEN: usize = 11;

/// Builds the entries of a store that lacks them at [`VERSION`]: every ticket's, with its
/// latest alert's `service` label, recorded on the ticket (`alert.service`) when it was
/// written before tickets kept it. Returns the number of tickets looked at (0 when the store
/// was up to date).
pub fn ensure(store: &dyn Store) -> Result<u64, StoreError> {
    if super::counter(store, VERSION_KEY)? >= VERSION {
        return Ok(0);
    }
    let mut batch = WriteBatch::default();
    for item in store.range(Tree::TicketsByService, Bound::Unbounded, Bound::Unbounded) {
        batch.delete(Tree::TicketsByService, item?.0);
    }
    let mut n = 0;
    for item in store.scan_prefix(Tree::Tickets, &[]) {
        let (key, value) = item?;
        let mut t: Ticket = decode(Tree::Tickets, &value)?;
        n += 1;
        if let Some(event) = t
            .alert
            .as_ref()
            .filter(|a| a.service.is_none())
            .map(|a| a.last_event)
            && let Some(stored) = super::get_event(store, event)?
            && let EventBody::Alert(a) = stored.event.body
            && let Some(service) = a.labels.get("service")
        {
            if let Some(link) = t.alert.as_mut() {
                link.service = Some(service.clone());
            }
            batch.put(Tree::Tickets, key, encode(&t));
        }
        for (k, v) in changes(None, &t) {
            if let Some(v) = v {
                batch.put(Tree::TicketsByService, k, v);
            }
        }
        if batch.len() >= 50_000 {
            store.apply(std::mem::take(&mut batch))?;
        }
    }
    batch.put(Tree::Meta, VERSION_KEY.to_vec(), encode(&VERSION));
    store.apply(batch)?;
    store.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn ticket(number: u64, service: Option<&str>, state: State) -> Ticket {
        let now = Timestamp::from_second(1_800_000_000 + number as i64).unwrap();
        let mut custom = BTreeMap::new();
        if let Some(s) = service {
            custom.insert("service".to_string(), serde_json::json!(s));
        }
        let id = TicketId {
            kind: Kind::Incident,
            number,
        };
        Ticket {
            state,
            title: format!("t{number}"),
            custom,
            ..Ticket::blank(id, now)
        }
    }

    fn apply(store: &MemoryStore, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        let mut b = WriteBatch::default();
        for (k, v) in writes {
            match v {
                Some(v) => b.put(Tree::TicketsByService, k, v),
                None => b.delete(Tree::TicketsByService, k),
            }
        }
        store.apply(b).unwrap();
    }

    fn found(store: &MemoryStore, service: &str, open: bool) -> Vec<String> {
        let mut out = Vec::new();
        scan(store, service, open, Kind::Incident, None, &mut |f| {
            out.push(format!("{} {}", f.id, f.summary.state.as_str()));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn entries_follow_the_ticket_between_open_and_closed_and_services() {
        let store = MemoryStore::new();
        let a = ticket(1, Some("billing"), State::New);
        let b = ticket(2, Some("billing"), State::New);
        apply(&store, changes(None, &a));
        apply(&store, changes(None, &b));
        assert_eq!(
            found(&store, "billing", true),
            ["INC-000002 new", "INC-000001 new"],
            "newest first"
        );

        let mut a2 = a.clone();
        a2.state = State::InProgress;
        apply(&store, changes(Some(&a), &a2));
        assert_eq!(
            found(&store, "billing", true),
            ["INC-000002 new", "INC-000001 in_progress"],
            "the summary follows the ticket"
        );

        let mut a3 = a2.clone();
        a3.state = State::Closed;
        apply(&store, changes(Some(&a2), &a3));
        assert_eq!(found(&store, "billing", true), ["INC-000002 new"]);
        assert_eq!(found(&store, "billing", false), ["INC-000001 closed"]);

        let mut b2 = b.clone();
        b2.custom
            .insert("service".into(), serde_json::json!("payments"));
        apply(&store, changes(Some(&b), &b2));
        assert!(found(&store, "billing", true).is_empty());
        assert_eq!(found(&store, "payments", true), ["INC-000002 new"]);

        let c = ticket(3, None, State::New);
        assert!(changes(None, &c).is_empty(), "no service, no entry");
        assert!(
            changes(Some(&b2), &b2).is_empty(),
            "an unchanged ticket writes nothing"
        );
    }

    #[test]
    fn a_scan_since_stops_at_older_tickets() {
        let store = MemoryStore::new();
        for n in 1..=5 {
            apply(&store, changes(None, &ticket(n, Some("s"), State::New)));
        }
        let since = Timestamp::from_second(1_800_000_004).unwrap();
        let mut seen = Vec::new();
        scan(&store, "s", true, Kind::Incident, Some(since), &mut |f| {
            seen.push(f.id.number);
            true
        })
        .unwrap();
        assert_eq!(seen, [5, 4]);
    }

    #[test]
    fn ensure_builds_the_entries_once() {
        let store = MemoryStore::new();
        let t = ticket(1, Some("billing"), State::New);
        let mut b = WriteBatch::default();
        b.put(Tree::Tickets, t.id.key(), encode(&t));
        store.apply(b).unwrap();
        assert_eq!(ensure(&store).unwrap(), 1);
        assert_eq!(found(&store, "billing", true), ["INC-000001 new"]);
        assert_eq!(ensure(&store).unwrap(), 0, "up to date: nothing to do");
    }

    #[test]
    fn ensure_replaces_the_entries_of_version_1() {
        let store = MemoryStore::new();
        let t = ticket(7, Some("billing"), State::New);
        let mut plain = prefix("billing", true, Kind::Incident);
        plain.extend_from_slice(&due_prefix(t.created_at));
        plain.extend_from_slice(&t.id.key());
        let mut b = WriteBatch::default();
        b.put(Tree::Tickets, t.id.key(), encode(&t));
        b.put(Tree::TicketsByService, plain, encode(&Summary::of(&t)));
        b.put(Tree::Meta, VERSION_KEY.to_vec(), encode(&1u64));
        store.apply(b).unwrap();
        assert_eq!(ensure(&store).unwrap(), 1);
        assert_eq!(found(&store, "billing", true), ["INC-000007 new"]);
        let entries = store
            .range(Tree::TicketsByService, Bound::Unbounded, Bound::Unbounded)
            .count();
        assert_eq!(entries, 1, "the version 1 entry is gone");
    }
}
