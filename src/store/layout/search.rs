//! The search indexes of the ticket listing: one posting list per filter value and per word,
//! each a key prefix whose keys end in the ticket key, so every list is in ticket-key order
//! and a combined filter is a merge (leapfrog) of sorted lists, not a scan of the tickets.
//!
//! - `tickets_by_field`: field byte + value `\0` ticket key, for assignee, priority, tag,
//!   vendor and caller (lower case); and the open tickets by state and by group with their
//!   creation time (`o`/`O` + value `\0` created millis + ticket key), which the reports'
//!   backlog ages count without reading a ticket.
//! - every ticket by creation and by last update (`C`/`U` + millis + ticket key): the sort
//!   orders and the time ranges of the listing.
//! - the planned changes by window (`W` + end millis + start millis + ticket key), which the
//!   change calendar reads instead of every change ticket.
//! - `ticket_words`: word `\0` ticket key, from the title and the description.
//! - `comment_words`: word `\0` ticket key, from comment bodies (comments are never edited,
//!   so these entries are only ever added).
//!
//! The engine writes the field and title entries from each ticket's before and after at
//! commit ([`super::index_entries`]), and the comment entries with the comment. A store
//! written before these indexes existed gets them from [`ensure`] when the engine starts.

use std::ops::Bound;

use crate::store::{Store, StoreError, Tree, WriteBatch, decode, encode, prefix_end};
use crate::tickets::{Comment, State, Ticket, TicketId};

/// Meta key of the version of the search and report indexes this store holds.
pub const INDEX_VERSION_KEY: &[u8] = b"index/version";
/// Raised when what the indexes hold changes; a store with an older one is re-indexed.
pub const INDEX_VERSION: u64 = 2;

/// The longest word indexed, in characters; longer words are indexed (and searched) by
/// their first this many characters.
pub const MAX_WORD: usize = 40;
/// At most this many distinct words of a ticket's title and description are indexed (the
/// title's first), so a huge mail body cannot make one commit huge.
pub const MAX_WORDS: usize = 2_000;

const ASSIGNEE: u8 = b'a';
const PRIORITY: u8 = b'p';
const TAG: u8 = b't';
const VENDOR: u8 = b'v';
const CALLER: u8 = b'c';
/// State and group together, and state and assignee together: a team's or an agent's queue
/// in one state is one list, so such a filter never merges two long lists.
const STATE_GROUP: u8 = b'S';
const STATE_ASSIGNEE: u8 = b'A';
/// Every ticket by creation and by last update (millis + ticket key): the sort orders and the
/// time ranges of the listing.
const CREATED: u8 = b'C';
const UPDATED: u8 = b'U';
/// Planned changes by window (end millis, start millis, ticket key): the change calendar.
const WINDOW: u8 = b'W';
/// Open tickets by state, ordered by creation.
pub const OPEN_BY_STATE: u8 = b'o';
/// Open tickets by group, ordered by creation.
pub const OPEN_BY_GROUP: u8 = b'O';

/// The words of `text` as they are indexed and searched: lower case, split at every
/// character that is not a letter or a digit, cut to [`MAX_WORD`] characters.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.chars()
                .take(MAX_WORD)
                .flat_map(char::to_lowercase)
                .collect()
        })
}

fn posting(prefix: &[u8], value: &str, id: TicketId) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + value.len() + 12);
    k.extend_from_slice(prefix);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k.extend_from_slice(&id.key());
    k
}

/// The start of a pair list's prefix: the field byte and the state (then the other value).
fn pair(field: u8, state: State) -> Vec<u8> {
    let mut k = vec![field];
    k.extend_from_slice(state.as_str().as_bytes());
    k.push(0);
    k
}

fn list_prefix(field: &[u8], value: &str) -> Vec<u8> {
    let mut k = field.to_vec();
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k
}

fn millis(t: jiff::Timestamp) -> [u8; 8] {
    // Tickets are created after 1970: a negative time sorts first, as 0.
    (t.as_millisecond().max(0) as u64).to_be_bytes()
}

/// The search-index entries of `t` in its current form but its words ([`word_entries`]),
/// beside state and group, which [`super::field_index_entries`] adds: what a change that
/// leaves the title and the description alone can move.
pub fn field_entries(t: &Ticket, out: &mut Vec<(Tree, Vec<u8>)>) {
    let field = Tree::TicketsByField;
    if let Some(a) = &t.assignee {
        out.push((field, posting(&[ASSIGNEE], a, t.id)));
        out.push((field, posting(&pair(STATE_ASSIGNEE, t.state), a, t.id)));
    }
    if let Some(g) = &t.group {
        out.push((field, posting(&pair(STATE_GROUP, t.state), g, t.id)));
    }
    out.push((field, posting(&[PRIORITY], &t.priority.to_string(), t.id)));
    for tag in &t.tags {
        out.push((field, posting(&[TAG], tag, t.id)));
    }
    if let Some(v) = &t.process.vendor {
        out.push((field, posting(&[VENDOR], v, t.id)));
    }
    if let Some(c) = caller(t) {
        out.push((field, posting(&[CALLER], &c.to_lowercase(), t.id)));
    }
    if t.state.is_open() {
        let mut aged = |kind: u8, value: &str| {
            let mut k = list_prefix(&[kind], value);
            k.extend_from_slice(&millis(t.created_at));
            k.extend_from_slice(&t.id.key());
            out.push((field, k));
        };
        aged(OPEN_BY_STATE, t.state.as_str());
        if let Some(g) = &t.group {
            aged(OPEN_BY_GROUP, g);
        }
    }
    for (time, at) in [(CREATED, t.created_at), (UPDATED, t.updated_at)] {
        let mut k = vec![time];
        k.extend_from_slice(&millis(at));
        k.extend_from_slice(&t.id.key());
        out.push((field, k));
    }
    if let Some(w) = planned_window(t) {
        let mut k = vec![WINDOW];
        k.extend_from_slice(&millis(w.end));
        k.extend_from_slice(&millis(w.start));
        k.extend_from_slice(&t.id.key());
        out.push((field, k));
    }
}

/// The `ticket_words` entries of `t`'s title and description.
pub fn word_entries(t: &Ticket, out: &mut Vec<(Tree, Vec<u8>)>) {
    let mut seen = std::collections::HashSet::new();
    for w in words(&t.title).chain(words(&t.description)) {
        if seen.len() == MAX_WORDS {
            break;
        }
        if seen.insert(w.clone()) {
            out.push((Tree::TicketWords, posting(&[], &w, t.id)));
        }
    }
}

/// The window of a change that is on the calendar: one with a window that was neither
/// canceled nor rejected.
pub fn planned_window(t: &Ticket) -> Option<crate::tickets::Window> {
    if t.kind() != crate::tickets::Kind::Change
        || matches!(t.state, State::Canceled | State::Rejected)
    {
        return None;
    }
    t.process.change.as_ref().and_then(|c| c.window)
}

/// The planned changes (as [`planned_window`] says) whose windows may overlap `[from, to)`,
/// with their windows' start and end in milliseconds: a read of the window index from the
/// windows ending at `from` on (keys only), never of the change tickets.
pub fn planned_windows(
    store: &dyn Store,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> Result<Vec<(i64, i64, TicketId)>, StoreError> {
    let mut start = vec![WINDOW];
    start.extend_from_slice(&millis(from));
    let end = prefix_end(&[WINDOW]).map_or(Bound::Unbounded, Bound::Excluded);
    let to = u64::from_be_bytes(millis(to));
    let mut out = Vec::new();
    for item in store.range(Tree::TicketsByField, Bound::Included(start), end) {
        let (key, _) = item?;
        let ms = |at: usize| {
            key.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        let (Some(e), Some(s)) = (ms(1), ms(9)) else {
            continue;
        };
        // Milliseconds cut the times down, so `<=` keeps every window that may overlap;
        // the calendar judges the exact times.
        if s <= to
            && let Some(id) = TicketId::from_key(&key[17..])
        {
            out.push((s as i64, e as i64, id));
        }
    }
    Ok(out)
}

fn caller(t: &Ticket) -> Option<&str> {
    t.custom.get("caller").and_then(|v| v.as_str())
}

/// The `comment_words` keys of one comment of ticket `id`.
pub fn comment_entries(id: TicketId, body: &str) -> Vec<Vec<u8>> {
    let mut seen = std::collections::BTreeSet::new();
    for w in words(body) {
        if seen.len() == MAX_WORDS {
            break;
        }
        seen.insert(w);
    }
    seen.into_iter().map(|w| posting(&[], &w, id)).collect()
}

/// One sorted list of ticket keys: the keys under `prefix` in `tree` (the rest of each key
/// is the ticket key), or the union of several such lists; or ticket keys read ahead, in
/// order (a time range's).
#[derive(Debug, Clone)]
pub enum Postings {
    Stored(Vec<(Tree, Vec<u8>)>),
    Keys(std::sync::Arc<Vec<Vec<u8>>>),
}

impl Postings {
    fn one(tree: Tree, prefix: Vec<u8>) -> Postings {
        Postings::Stored(vec![(tree, prefix)])
    }

    pub fn state(state: State) -> Postings {
        Postings::one(Tree::TicketsByState, list_prefix(&[], state.as_str()))
    }
    pub fn group(group: &str) -> Postings {
        Postings::one(Tree::TicketsByGroup, list_prefix(&[], group))
    }
    /// Tickets in `state` and in `group`.
    pub fn state_group(state: State, group: &str) -> Postings {
        Postings::one(
            Tree::TicketsByField,
            list_prefix(&pair(STATE_GROUP, state), group),
        )
    }
    /// Tickets in `state` assigned to `name`.
    pub fn state_assignee(state: State, name: &str) -> Postings {
        Postings::one(
            Tree::TicketsByField,
            list_prefix(&pair(STATE_ASSIGNEE, state), name),
        )
    }
    pub fn assignee(name: &str) -> Postings {
        Postings::one(Tree::TicketsByField, list_prefix(&[ASSIGNEE], name))
    }
    pub fn priority(p: u8) -> Postings {
        Postings::one(
            Tree::TicketsByField,
            list_prefix(&[PRIORITY], &p.to_string()),
        )
    }
    pub fn tag(tag: &str) -> Postings {
        Postings::one(Tree::TicketsByField, list_prefix(&[TAG], tag))
    }
    pub fn vendor(vendor: &str) -> Postings {
        Postings::one(Tree::TicketsByField, list_prefix(&[VENDOR], vendor))
    }
    pub fn caller(address: &str) -> Postings {
        Postings::one(
            Tree::TicketsByField,
            list_prefix(&[CALLER], &address.to_lowercase()),
        )
    }
    /// Tickets with `word` (as [`words`] makes it) in the title, description or a comment.
    pub fn word(word: &str) -> Postings {
        Postings::Stored(vec![
            (Tree::TicketWords, list_prefix(&[], word)),
            (Tree::CommentWords, list_prefix(&[], word)),
        ])
    }
}

/// Ticket keys in order, as a list yields them.
type Keys<'s> = Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 's>;

impl Postings {
    /// The list's keys from `from` on and before `end`, as ticket keys, in order (its parts
    /// merged).
    pub(crate) fn stream<'s>(
        &self,
        store: &'s dyn Store,
        from: &[u8],
        end: Option<&[u8]>,
    ) -> Keys<'s> {
        let stored = match self {
            Postings::Stored(parts) => parts,
            Postings::Keys(keys) => {
                let keys = keys.clone();
                let (lo, hi) = in_range(&keys, from, end);
                return Box::new((lo..hi).map(move |i| Ok(keys[i].clone())));
            }
        };
        let mut parts: Vec<std::iter::Peekable<Keys<'s>>> = Vec::new();
        for (tree, prefix) in stored {
            let (start, stop) = bounds(prefix, from, end);
            let cut = prefix.len();
            let it: Keys<'s> = Box::new(
                store
                    .range(*tree, start, stop)
                    .map(move |item| item.map(|(k, _)| k[cut..].to_vec())),
            );
            parts.push(it.peekable());
        }
        if parts.len() == 1 {
            return Box::new(parts.remove(0));
        }
        Box::new(std::iter::from_fn(move || {
            // The smallest next key of the parts; an error comes first.
            let mut best: Option<(usize, Vec<u8>)> = None;
            for (i, part) in parts.iter_mut().enumerate() {
                match part.peek() {
                    None => {}
                    Some(Err(_)) => return part.next(),
                    Some(Ok(k)) if best.as_ref().is_none_or(|(_, b)| k < b) => {
                        best = Some((i, k.clone()));
                    }
                    Some(Ok(_)) => {}
                }
            }
            let key = parts[best?.0].next()?;
            if let Ok(k) = &key {
                // The same ticket in another part (a word in the title and a comment).
                for p in parts.iter_mut() {
                    while matches!(p.peek(), Some(Ok(o)) if o == k) {
                        p.next();
                    }
                }
            }
            Some(key)
        }))
    }

    /// Whether ticket key `id` is in the list: one point read per part.
    pub fn contains(&self, store: &dyn Store, id: &[u8]) -> Result<bool, StoreError> {
        let parts = match self {
            Postings::Stored(parts) => parts,
            Postings::Keys(keys) => return Ok(keys.binary_search_by(|k| k[..].cmp(id)).is_ok()),
        };
        for (tree, prefix) in parts {
            let mut k = prefix.clone();
            k.extend_from_slice(id);
            if store.get(*tree, &k)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The positions of `keys` (sorted) from `from` on and before `end`.
fn in_range(keys: &[Vec<u8>], from: &[u8], end: Option<&[u8]>) -> (usize, usize) {
    let lo = keys.partition_point(|k| k[..] < *from);
    let hi = end.map_or(keys.len(), |e| keys.partition_point(|k| k[..] < *e));
    (lo, hi.max(lo))
}

/// Which time of a ticket a time index orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    Created,
    Updated,
}

impl Time {
    fn byte(self) -> u8 {
        match self {
            Time::Created => CREATED,
            Time::Updated => UPDATED,
        }
    }
}

/// One entry of a time index: the time in milliseconds and the ticket key.
pub type Timed = (u64, Vec<u8>);

/// The tickets with `time` at or after `after` and before `before` (to the millisecond: a
/// ticket in the bounds' milliseconds may be outside them; the caller checks the exact time),
/// in time order, ties in ticket-key order; reversible. Reads index keys only.
pub fn by_time<'s>(
    store: &'s dyn Store,
    time: Time,
    after: Option<jiff::Timestamp>,
    before: Option<jiff::Timestamp>,
) -> impl DoubleEndedIterator<Item = Result<Timed, StoreError>> + 's {
    let mut start = vec![time.byte()];
    if let Some(a) = after {
        start.extend_from_slice(&millis(a));
    }
    let end = match before {
        Some(b) => {
            let mut k = vec![time.byte()];
            let ms = u64::from_be_bytes(millis(b)).saturating_add(1);
            k.extend_from_slice(&ms.to_be_bytes());
            Bound::Excluded(k)
        }
        None => prefix_end(&[time.byte()]).map_or(Bound::Unbounded, Bound::Excluded),
    };
    store
        .range(Tree::TicketsByField, Bound::Included(start), end)
        .map(|item| {
            let (key, _) = item?;
            let ms = key
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            Ok((ms, key.get(9..).unwrap_or_default().to_vec()))
        })
}

/// Where ticket `t` stands in time index `time`.
pub fn time_of(t: &Ticket, time: Time) -> Timed {
    let at = match time {
        Time::Created => t.created_at,
        Time::Updated => t.updated_at,
    };
    (u64::from_be_bytes(millis(at)), t.id.key())
}

/// The tickets with `time` in `[after, before)` (to the millisecond) as a list in ticket-key
/// order, when there are at most `cap`; `None` when there are more (the range selects too
/// many to be worth reading ahead).
pub fn time_list(
    store: &dyn Store,
    time: Time,
    after: Option<jiff::Timestamp>,
    before: Option<jiff::Timestamp>,
    cap: usize,
) -> Result<Option<Postings>, StoreError> {
    let mut keys = Vec::new();
    for item in by_time(store, time, after, before) {
        if keys.len() == cap {
            return Ok(None);
        }
        keys.push(item?.1);
    }
    keys.sort_unstable();
    Ok(Some(Postings::Keys(std::sync::Arc::new(keys))))
}

fn bounds(prefix: &[u8], from: &[u8], end: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut start = prefix.to_vec();
    start.extend_from_slice(from);
    let stop = match end {
        Some(e) => {
            let mut k = prefix.to_vec();
            k.extend_from_slice(e);
            Bound::Excluded(k)
        }
        None => prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded),
    };
    (Bound::Included(start), stop)
}

/// Ticket ids in every one of `lists` (at least one), in key order, from the key `from` on
/// and before `end`, calling `visit` with each until it returns false. The lists are streamed
/// side by side: each list behind the furthest one steps forward, and one that is still
/// behind after [`GALLOP`] steps seeks to it instead. So a page comes as soon as its matches
/// do (reading the lists only up to its last ticket), and lists that never meet cost a read
/// per key of the shorter one or a seek per gap, whichever is less.
pub fn intersect(
    store: &dyn Store,
    lists: &[Postings],
    from: Vec<u8>,
    end: Option<&[u8]>,
    mut visit: impl FnMut(TicketId) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut streams: Vec<std::iter::Peekable<Keys<'_>>> = lists
        .iter()
        .map(|l| l.stream(store, &from, end).peekable())
        .collect();
    let mut heads: Vec<Vec<u8>> = Vec::with_capacity(lists.len());
    for s in &mut streams {
        match s.next().transpose()? {
            Some(k) => heads.push(k),
            None => return Ok(()),
        }
    }
    loop {
        let Some(furthest) = heads.iter().max().cloned() else {
            return Ok(());
        };
        if heads.iter().all(|h| *h == furthest) {
            if let Some(id) = TicketId::from_key(&furthest)
                && !visit(id)?
            {
                return Ok(());
            }
            for (s, h) in streams.iter_mut().zip(heads.iter_mut()) {
                match s.next().transpose()? {
                    Some(k) => *h = k,
                    None => return Ok(()),
                }
            }
            continue;
        }
        for (i, (s, h)) in streams.iter_mut().zip(heads.iter_mut()).enumerate() {
            let mut steps = 0;
            while *h < furthest {
                if steps == GALLOP {
                    *s = lists[i].stream(store, &furthest, end).peekable();
                    steps = 0;
                }
                match s.next().transpose()? {
                    Some(k) => *h = k,
                    None => return Ok(()),
                }
                steps += 1;
            }
        }
    }
}

/// Steps a list behind takes before it seeks instead (a seek costs about this many steps).
const GALLOP: usize = 16;

/// Open tickets under `kind` ([`OPEN_BY_STATE`] or [`OPEN_BY_GROUP`]) with their creation
/// time in milliseconds, per value: what the backlog ages count. Reads index keys only.
pub fn open_created(store: &dyn Store, kind: u8) -> Result<Vec<(String, Vec<i64>)>, StoreError> {
    let mut out: Vec<(String, Vec<i64>)> = Vec::new();
    for item in store.scan_prefix(Tree::TicketsByField, &[kind]) {
        let (key, _) = item?;
        let rest = &key[1..];
        let Some(nul) = rest.iter().position(|b| *b == 0) else {
            continue;
        };
        let value = String::from_utf8_lossy(&rest[..nul]);
        let Some(ms) = rest
            .get(nul + 1..nul + 9)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
        else {
            continue;
        };
        match out.last_mut() {
            Some((v, list)) if *v == value => list.push(ms as i64),
            _ => out.push((value.into_owned(), vec![ms as i64])),
        }
    }
    Ok(out)
}

/// The trees [`ensure`] derives from the tickets, their comments and their history.
const DERIVED: [Tree; 5] = [
    Tree::TicketsByField,
    Tree::TicketWords,
    Tree::CommentWords,
    Tree::ReportBuckets,
    Tree::ReportMarks,
];

/// Builds the search and report indexes of a store that does not have them at
/// [`INDEX_VERSION`] (written before they existed, or by an older release): every ticket's
/// entries, every comment's words and the report aggregates from the history. Returns the
/// number of tickets indexed (0 when the store was up to date).
pub fn ensure(
    store: &dyn Store,
    sla: crate::reports::aggregate::SlaSetup<'_>,
) -> Result<u64, StoreError> {
    if super::counter(store, INDEX_VERSION_KEY)? >= INDEX_VERSION {
        return Ok(0);
    }
    let mut batch = WriteBatch::default();
    // What an older version left is dropped: every entry is derived again below.
    for tree in DERIVED {
        for item in store.range(tree, Bound::Unbounded, Bound::Unbounded) {
            batch.delete(tree, item?.0);
        }
    }
    if !batch.is_empty() {
        store.apply(std::mem::take(&mut batch))?;
    }
    let mut n = 0;
    let mut aggregates = crate::reports::aggregate::Rebuild::default();
    for item in store.scan_prefix(Tree::Tickets, &[]) {
        let (_, value) = item?;
        let t: Ticket = decode(Tree::Tickets, &value)?;
        for (tree, key) in super::index_entries(&t) {
            batch.put(tree, key, encode(&()));
        }
        if t.process.comments > 0 {
            for c in super::comments(store, t.id)? {
                let c: Comment = c;
                for key in comment_entries(t.id, &c.body) {
                    batch.put(Tree::CommentWords, key, encode(&()));
                }
            }
        }
        let history = super::history(store, t.id)?;
        aggregates.ticket(&t, &history, sla, &mut batch);
        n += 1;
        if batch.len() >= 50_000 {
            store.apply(std::mem::take(&mut batch))?;
        }
    }
    aggregates.finish(store, &mut batch)?;
    batch.put(
        Tree::Meta,
        INDEX_VERSION_KEY.to_vec(),
        encode(&INDEX_VERSION),
    );
    store.apply(batch)?;
    store.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, WriteBatch};
    use crate::tickets::Kind;

    fn id(n: u64) -> TicketId {
        TicketId {
            kind: Kind::Incident,
            number: n,
        }
    }

    /// A stored list named `name` holding the tickets `numbers` (and a second, empty part,
    /// as word lists have).
    fn list(store: &MemoryStore, name: &str, numbers: impl Iterator<Item = u64>) -> Postings {
        let prefix = list_prefix(&[], name);
        let mut batch = WriteBatch::default();
        for n in numbers {
            let mut k = prefix.clone();
            k.extend_from_slice(&id(n).key());
            batch.put(Tree::TicketWords, k, Vec::new());
        }
        store.apply(batch).unwrap();
        Postings::Stored(vec![
            (Tree::TicketWords, prefix.clone()),
            (Tree::CommentWords, prefix),
        ])
    }

    fn run(store: &MemoryStore, lists: &[Postings], limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        intersect(store, lists, Vec::new(), None, |t| {
            out.push(t.number);
            Ok(out.len() < limit)
        })
        .unwrap();
        out
    }

    #[test]
    fn intersect_finds_exactly_the_common_tickets_in_order_across_gaps_and_pages() {
        let store = MemoryStore::default();
        // Every 3rd, every 7th (gaps far beyond GALLOP for the dense list), every 2nd.
        let threes = list(&store, "threes", (1..3000).filter(|n| n % 3 == 0));
        let sevens = list(&store, "sevens", (1..3000).filter(|n| n % 7 == 0));
        let evens = list(&store, "evens", (1..3000).filter(|n| n % 2 == 0));
        let want: Vec<u64> = (1..3000).filter(|n| n % 42 == 0).collect();
        let lists = [threes, sevens, evens];
        assert_eq!(run(&store, &lists, usize::MAX), want);
        // A page stops at its limit, in order.
        assert_eq!(run(&store, &lists, 5), want[..5]);
        // A sparse list against a dense one: the seeks land on every match.
        let sparse = list(&store, "sparse", [5, 1000, 2999].into_iter());
        let all = list(&store, "all", 1..3000);
        assert_eq!(run(&store, &[all, sparse], usize::MAX), [5, 1000, 2999]);
        // Lists that never meet, and an empty list.
        let odd = list(&store, "odd", (1..3000).filter(|n| n % 2 == 1));
        let evens = list(&store, "evens", std::iter::empty());
        assert!(run(&store, &[odd.clone(), evens], usize::MAX).is_empty());
        let none = list(&store, "none", std::iter::empty());
        assert!(run(&store, &[odd, none], usize::MAX).is_empty());
        // In-memory lists (a time range read ahead) merge with stored ones.
        let keys = Postings::Keys(std::sync::Arc::new(
            (100..200).map(|n| id(n).key()).collect(),
        ));
        let threes = list(&store, "threes", std::iter::empty());
        assert_eq!(
            run(&store, &[keys, threes], usize::MAX),
            (100..200).filter(|n| n % 3 == 0).collect::<Vec<_>>()
        );
    }
}
