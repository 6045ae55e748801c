//! Links on the many side of a relation — a problem's `causes`, a change's `fixes` and
//! `possibly_causes`, a parent's `parent_of`, an original's `duplicated_by`, `recurred_as`,
//! `followed_up_by` — live apart from the ticket record: `ticket key + position → Link` in
//! `TicketLinks`. Linking the 400th incident to a problem then writes one small key and a
//! record that does not grow; the record keeps the other links, of which a ticket has few.
//! A ticket read from the store has all its links, the record's first, then the ones kept
//! apart in the order they were made ([`fill`]); the engine writes what changed in its
//! commit ([`split`]); [`ensure`] moves the links of a store written before into their keys.

use crate::store::{Store, StoreError, Tree, WriteBatch, decode, encode};
use crate::tickets::{Link, LinkRel, Ticket, TicketId};

/// Meta key of the version of this layout; a store below [`VERSION`] gets its links moved.
const VERSION_KEY: &[u8] = b"index/ticket_links";
const VERSION: u64 = 1;

/// One write to `TicketLinks`: key, and value (`None`: a delete).
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// Whether links of this relation are kept apart from the ticket record.
pub fn apart(rel: LinkRel) -> bool {
    matches!(
        rel,
        LinkRel::Causes
            | LinkRel::Fixes
            | LinkRel::PossiblyCauses
            | LinkRel::FollowedUpBy
            | LinkRel::ParentOf
            | LinkRel::DuplicatedBy
            | LinkRel::RecurredAs
    )
}

fn key(id: TicketId, position: usize) -> Vec<u8> {
    let mut k = id.key();
    k.extend_from_slice(&(position as u32).to_be_bytes());
    k
}

/// Appends the links of `t` kept apart to the record's own.
pub fn fill(store: &dyn Store, t: &mut Ticket) -> Result<(), StoreError> {
    for item in store.scan_prefix(Tree::TicketLinks, &t.id.key()) {
        let (_, value) = item?;
        t.process.links.push(decode(Tree::TicketLinks, &value)?);
    }
    Ok(())
}

/// Puts `t`'s links in their stored order (the record's, then the ones kept apart) and
/// returns the record to store, with the writes that take the links kept apart from
/// `before`'s (`None`: a new ticket) to `t`'s; `None` is a delete.
pub fn split(before: Option<&Ticket>, t: &mut Ticket) -> (Vec<u8>, Vec<Write>) {
    let (many, own): (Vec<Link>, Vec<Link>) = std::mem::take(&mut t.process.links)
        .into_iter()
        .partition(|l| apart(l.rel));
    let had: Vec<&Link> = before
        .map(|b| b.process.links.iter().filter(|l| apart(l.rel)).collect())
        .unwrap_or_default();
    let mut writes = Vec::new();
    for i in 0..many.len().max(had.len()) {
        match (had.get(i), many.get(i)) {
            (Some(old), Some(new)) if *old == new => {}
            (_, Some(new)) => writes.push((key(t.id, i), Some(encode(new)))),
            (_, None) => writes.push((key(t.id, i), None)),
        }
    }
    t.process.links = own;
    let record = encode(t);
    t.process.links.extend(many);
    (record, writes)
}

/// Moves the links a store's ticket records hold that belong apart into their keys, once.
/// Returns the number of tickets rewritten (0 when the store was up to date).
pub fn ensure(store: &dyn Store) -> Result<u64, StoreError> {
    if super::counter(store, VERSION_KEY)? >= VERSION {
        return Ok(0);
    }
    let mut batch = WriteBatch::default();
    let mut n = 0;
    for item in store.scan_prefix(Tree::Tickets, &[]) {
        let (key, value) = item?;
        let mut t: Ticket = decode(Tree::Tickets, &value)?;
        if !t.process.links.iter().any(|l| apart(l.rel)) {
            continue;
        }
        let (record, writes) = split(None, &mut t);
        batch.put(Tree::Tickets, key, record);
        for (k, v) in writes {
            if let Some(v) = v {
                batch.put(Tree::TicketLinks, k, v);
            }
        }
        n += 1;
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
    use crate::tickets::Kind;

    fn id(kind: Kind, number: u64) -> TicketId {
        TicketId { kind, number }
    }

    fn problem() -> Ticket {
        Ticket {
            title: "p".into(),
            ..Ticket::blank(id(Kind::Problem, 1), jiff::Timestamp::UNIX_EPOCH)
        }
    }

    fn store_it(store: &MemoryStore, before: Option<&Ticket>, t: &mut Ticket) -> usize {
        let (record, writes) = split(before, t);
        let mut b = WriteBatch::default();
        b.put(Tree::Tickets, t.id.key(), record);
        let n = writes.len();
        for (k, v) in writes {
            match v {
                Some(v) => b.put(Tree::TicketLinks, k, v),
                None => b.delete(Tree::TicketLinks, k),
            }
        }
        store.apply(b).unwrap();
        n
    }

    fn read(store: &MemoryStore, t: &Ticket) -> Ticket {
        let mut back: Ticket = decode(
            Tree::Tickets,
            &store.get(Tree::Tickets, &t.id.key()).unwrap().unwrap(),
        )
        .unwrap();
        fill(store, &mut back).unwrap();
        back
    }

    #[test]
    fn the_many_side_is_kept_apart_and_a_new_link_writes_one_key() {
        let store = MemoryStore::new();
        let mut p = problem();
        let change = Link {
            rel: LinkRel::FixedBy,
            ticket: id(Kind::Change, 1),
        };
        p.process.links.push(Link {
            rel: LinkRel::Causes,
            ticket: id(Kind::Incident, 1),
        });
        p.process.links.push(change);
        assert_eq!(store_it(&store, None, &mut p), 1);
        assert_eq!(
            p.process.links[0], change,
            "the record's links come first, as read back"
        );
        let record: Ticket = decode(
            Tree::Tickets,
            &store.get(Tree::Tickets, &p.id.key()).unwrap().unwrap(),
        )
        .unwrap();
        assert_eq!(
            record.process.links,
            [change],
            "the record keeps only its own"
        );
        assert_eq!(read(&store, &p), p);

        let before = p.clone();
        for n in 2..=400 {
            p.process.links.push(Link {
                rel: LinkRel::Causes,
                ticket: id(Kind::Incident, n),
            });
        }
        assert_eq!(store_it(&store, Some(&before), &mut p), 399);
        let before = p.clone();
        p.process.links.push(Link {
            rel: LinkRel::Causes,
            ticket: id(Kind::Incident, 401),
        });
        assert_eq!(
            store_it(&store, Some(&before), &mut p),
            1,
            "one more link is one more key"
        );
        let back = read(&store, &p);
        assert_eq!(back, p);
        assert_eq!(back.process.links.len(), 402);
        assert!(
            store
                .get(Tree::Tickets, &p.id.key())
                .unwrap()
                .unwrap()
                .len()
                < 1_000,
            "the record does not grow with the links"
        );
        assert_eq!(
            store.scan_prefix(Tree::TicketLinks, &p.id.key()).count(),
            401
        );
    }

    #[test]
    fn ensure_moves_the_links_of_an_older_store() {
        let store = MemoryStore::new();
        let mut p = problem();
        p.process.links.push(Link {
            rel: LinkRel::Causes,
            ticket: id(Kind::Incident, 1),
        });
        let mut b = WriteBatch::default();
        b.put(Tree::Tickets, p.id.key(), encode(&p));
        store.apply(b).unwrap();
        assert_eq!(ensure(&store).unwrap(), 1);
        assert_eq!(read(&store, &p), p);
        assert_eq!(store.scan_prefix(Tree::TicketLinks, &p.id.key()).count(), 1);
        assert_eq!(ensure(&store).unwrap(), 0);
    }
}
