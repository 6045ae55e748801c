//! Sorted listings: by creation, last update (both to the millisecond) or priority, ties in
//! ticket-key order (the listing's id order). A filter whose lists select at most
//! [`SORT_MAX`] tickets has those read and sorted; otherwise the sort order's index is walked
//! (the time index, or the priority lists one after the other) from the cursor on, each
//! ticket checked against the filter until the page is full. Neither reads every ticket.

use std::cmp::Ordering;

use super::{TicketFilter, TicketPage, get_ticket, search};
use crate::store::{Store, StoreError};
use crate::tickets::{Ticket, TicketId};

/// What a sorted listing orders by (then by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Created,
    Updated,
    Priority,
}

/// A listing's order: by `key`, descending when `descending`; ties in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl std::str::FromStr for Sort {
    type Err = String;
    /// `created`, `updated`, `priority`, each with a leading `-` for descending.
    fn from_str(s: &str) -> Result<Sort, String> {
        let (descending, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let key = match name {
            "created" => SortKey::Created,
            "updated" => SortKey::Updated,
            "priority" => SortKey::Priority,
            _ => {
                return Err(format!(
                    "unknown sort {s:?}; expected one of created, updated, priority, each optionally with a leading - for descending"
                ));
            }
        };
        Ok(Sort { key, descending })
    }
}

/// The most tickets a filter may select to be read and sorted; past it the sort order's
/// index is walked instead.
const SORT_MAX: usize = 2_000;

/// Where a ticket stands in a sort order: the key's value, then the ticket key.
type Rank = (u64, Vec<u8>);

fn rank(t: &Ticket, key: SortKey) -> Rank {
    match key {
        SortKey::Created => search::time_of(t, search::Time::Created),
        SortKey::Updated => search::time_of(t, search::Time::Updated),
        SortKey::Priority => (u64::from(t.priority), t.id.key()),
    }
}

fn order(sort: Sort, a: &Rank, b: &Rank) -> Ordering {
    let by = a.0.cmp(&b.0);
    let by = if sort.descending { by.reverse() } else { by };
    by.then_with(|| a.1.cmp(&b.1))
}

/// One page of the tickets matching `filter` in `sort` order, after the ticket `after`; the
/// second value is the cursor of the next page. `None` when `after` no longer matches the
/// filter (a filtered field changed since the previous page); a ticket whose sort key changed
/// is continued from where it stands now.
pub fn list_tickets_sorted(
    store: &dyn Store,
    filter: &TicketFilter,
    sort: Sort,
    after: Option<TicketId>,
    limit: usize,
) -> Result<Option<TicketPage>, StoreError> {
    let lists = filter.lists(store)?;
    if !lists.is_empty()
        && let Some(all) = few(store, filter, &lists)?
    {
        return Ok(sorted_page(all, sort, after, limit));
    }
    walk(store, filter, &lists, sort, after, limit)
}

/// Every ticket matching `filter`, when its lists select at most [`SORT_MAX`].
fn few(
    store: &dyn Store,
    filter: &TicketFilter,
    lists: &[search::Postings],
) -> Result<Option<Vec<Ticket>>, StoreError> {
    let (from, end) = filter.key_range(None);
    let mut ids = Vec::new();
    let mut over = false;
    search::intersect(store, lists, from, end.as_deref(), |id| {
        if ids.len() == SORT_MAX {
            over = true;
            return Ok(false);
        }
        ids.push(id);
        Ok(true)
    })?;
    if over {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(t) = get_ticket(store, id)?
            && filter.matches(&t)
        {
            out.push(t);
        }
    }
    Ok(Some(out))
}

fn sorted_page(
    mut all: Vec<Ticket>,
    sort: Sort,
    after: Option<TicketId>,
    limit: usize,
) -> Option<TicketPage> {
    all.sort_by_cached_key(|t| {
        let (value, key) = rank(t, sort.key);
        // Descending by value, ties still ascending by key.
        let value = if sort.descending {
            u64::MAX - value
        } else {
            value
        };
        (value, key)
    });
    let start = match after {
        None => 0,
        Some(id) => all.iter().position(|t| t.id == id)? + 1,
    };
    let mut page: Vec<Ticket> = all
        .into_iter()
        .skip(start)
        .take(limit.saturating_add(1))
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|t| t.id)
    } else {
        None
    };
    Some((page, next))
}

/// Whether ticket key `key` is in every list and its ticket passes the other filters.
fn passes(
    store: &dyn Store,
    filter: &TicketFilter,
    lists: &[search::Postings],
    key: &[u8],
) -> Result<Option<Ticket>, StoreError> {
    if filter
        .kind
        .is_some_and(|k| !key.starts_with(k.prefix().as_bytes()))
    {
        return Ok(None);
    }
    for list in lists {
        if !list.contains(store, key)? {
            return Ok(None);
        }
    }
    let Some(id) = TicketId::from_key(key) else {
        return Ok(None);
    };
    Ok(get_ticket(store, id)?.filter(|t| filter.matches(t)))
}

/// Ranks in the sort order from `from` on (at or after it: the caller skips the cursor).
type Ranks<'s> = Box<dyn Iterator<Item = Result<Rank, StoreError>> + 's>;

/// The page walked along the sort order's index.
fn walk(
    store: &dyn Store,
    filter: &TicketFilter,
    lists: &[search::Postings],
    sort: Sort,
    after: Option<TicketId>,
    limit: usize,
) -> Result<Option<TicketPage>, StoreError> {
    let cursor = match after {
        None => None,
        Some(id) => match passes(store, filter, lists, &id.key())? {
            Some(t) => Some(rank(&t, sort.key)),
            None => return Ok(None),
        },
    };
    let ranks: Ranks<'_> = match sort.key {
        SortKey::Created => by_time(store, search::Time::Created, filter.created, sort, &cursor),
        SortKey::Updated => by_time(store, search::Time::Updated, filter.updated, sort, &cursor),
        SortKey::Priority => by_priority(store, filter, sort, &cursor),
    };
    let mut page = Vec::new();
    for r in ranks {
        let r = r?;
        if cursor
            .as_ref()
            .is_some_and(|c| order(sort, &r, c) != Ordering::Greater)
        {
            continue;
        }
        if let Some(t) = passes(store, filter, lists, &r.1)? {
            if page.len() == limit {
                let next = page.last().map(|t: &Ticket| t.id);
                return Ok(Some((page, next)));
            }
            page.push(t);
        }
    }
    Ok(Some((page, None)))
}

fn at(ms: u64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(ms as i64).ok()
}

/// The time index in `sort`'s direction, within `range` and from the cursor's millisecond on.
fn by_time<'s>(
    store: &'s dyn Store,
    time: search::Time,
    range: super::TimeRange,
    sort: Sort,
    cursor: &Option<Rank>,
) -> Ranks<'s> {
    let (mut after, mut before) = (range.after, range.before);
    if let Some((ms, _)) = cursor {
        if sort.descending {
            before = at(*ms).map_or(before, |c| Some(before.map_or(c, |b| b.min(c))));
        } else {
            after = at(*ms).map_or(after, |c| Some(after.map_or(c, |a| a.max(c))));
        }
    }
    let it = search::by_time(store, time, after, before);
    if !sort.descending {
        return Box::new(it);
    }
    // Backwards, but each millisecond's tickets in key order, as the sort promises.
    let mut it = it.rev().peekable();
    let mut group: Vec<Rank> = Vec::new();
    Box::new(std::iter::from_fn(move || {
        if let Some(r) = group.pop() {
            return Some(Ok(r));
        }
        let first = match it.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let ms = first.0;
        group.push(first);
        while let Some(Ok((m, _))) = it.peek() {
            if *m != ms {
                break;
            }
            match it.next() {
                Some(Ok(r)) => group.push(r),
                _ => break,
            }
        }
        // Read backwards, the group is in descending key order: popping gives ascending.
        group.pop().map(Ok)
    }))
}

/// The priority lists in `sort`'s order (each in key order), from the cursor's on.
fn by_priority<'s>(
    store: &'s dyn Store,
    filter: &TicketFilter,
    sort: Sort,
    cursor: &Option<Rank>,
) -> Ranks<'s> {
    let mut priorities: Vec<u8> = (1..=5).collect();
    if sort.descending {
        priorities.reverse();
    }
    let (from, end) = filter.key_range(None);
    let cursor = cursor.clone();
    Box::new(priorities.into_iter().flat_map(move |p| {
        let p64 = u64::from(p);
        let mut start = from.clone();
        match &cursor {
            // A priority the cursor is past.
            Some((c, _)) if (sort.descending && p64 > *c) || (!sort.descending && p64 < *c) => {
                return Box::new(std::iter::empty()) as Ranks<'s>;
            }
            // The cursor's own: from the first key after its ticket's.
            Some((c, key)) if p64 == *c => {
                let mut k = key.clone();
                k.push(0);
                start = start.max(k);
            }
            _ => {}
        }
        Box::new(
            search::Postings::priority(p)
                .stream(store, &start, end.as_deref())
                .map(move |k| k.map(|k| (p64, k))),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::{TicketFilter, TimeRange, index_entries};
    use crate::store::{MemoryStore, Tree, WriteBatch, encode};
    use crate::tickets::{Kind, Level};

    /// Incident `n`: three tickets per millisecond of creation, updates in another order,
    /// priorities and groups in turn.
    fn ticket(n: u64) -> Ticket {
        let base: jiff::Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        let ms = |m: u64| base + jiff::SignedDuration::from_millis(m as i64);
        let id = TicketId {
            kind: Kind::Incident,
            number: n,
        };
        Ticket {
            title: format!("ticket {n}"),
            group: Some(format!("g{}", n % 3)),
            impact: Level::Medium,
            urgency: Level::Medium,
            priority: (n % 5) as u8 + 1,
            created_at: ms(n / 3),
            updated_at: ms((n * 7919) % 1000),
            ..Ticket::blank(id, base)
        }
    }

    /// Every page of the listing, concatenated.
    fn pages(store: &dyn Store, filter: &TicketFilter, sort: Sort) -> Vec<u64> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = list_tickets_sorted(store, filter, sort, after, 97)
                .unwrap()
                .expect("the cursor is still in the listing");
            out.extend(page.iter().map(|t| t.id.number));
            match next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    }

    #[test]
    fn walking_the_indexes_gives_the_order_sorting_every_ticket_gives() {
        let store = MemoryStore::new();
        let all: Vec<Ticket> = (1..=6_500).map(ticket).collect();
        let mut batch = WriteBatch::default();
        for t in &all {
            for (tree, key) in index_entries(t) {
                batch.put(tree, key, encode(&()));
            }
            batch.put(Tree::Tickets, t.id.key(), encode(t));
        }
        store.apply(batch).unwrap();
        let since: jiff::Timestamp = "2026-03-01T00:00:01.500Z".parse().unwrap();
        let filters = [
            // No list: the sort index is walked.
            TicketFilter::default(),
            // 2,167 tickets, more than SORT_MAX: walked, each checked against the list.
            TicketFilter {
                group: Some("g0".into()),
                ..TicketFilter::default()
            },
            // 334 tickets: read and sorted.
            TicketFilter {
                group: Some("g1".into()),
                created: TimeRange {
                    after: Some(since),
                    before: None,
                },
                ..TicketFilter::default()
            },
        ];
        for filter in &filters {
            for key in [SortKey::Created, SortKey::Updated, SortKey::Priority] {
                for descending in [false, true] {
                    let sort = Sort { key, descending };
                    let mut want: Vec<&Ticket> = all.iter().filter(|t| filter.matches(t)).collect();
                    want.sort_by(|a, b| order(sort, &rank(a, key), &rank(b, key)));
                    let want: Vec<u64> = want.iter().map(|t| t.id.number).collect();
                    assert!(want.len() > 300, "{filter:?}");
                    assert_eq!(pages(&store, filter, sort), want, "{filter:?} {sort:?}");
                }
            }
        }
    }
}
