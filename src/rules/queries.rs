//! Read-only questions rules may ask: open tickets by correlation key, group or alert
//! labels, and recent alerts matching labels. They read the store as of the last commit (the
//! batch being processed is not visible), never write, and every answer is capped
//! ([`MAX_RESULTS`]) and every scan bounded ([`MAX_SCAN`]) so a rule cannot make the engine
//! walk the whole store.

use std::cell::RefCell;
use std::ops::Bound;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};

use crate::clock::Clock;
use crate::event::EventBody;
use crate::store::layout::StoredEvent;
use crate::store::layout::by_service::{self, Summary};
use crate::store::{Store, Tree, decode, layout};
use crate::tickets::{Kind, State, Ticket, TicketId};

/// Most results one query returns (a rule may ask for fewer with `limit`).
pub const MAX_RESULTS: usize = 100;
/// Most records one query looks at.
pub const MAX_SCAN: usize = 2_000;
const DEFAULT_LIMIT: usize = 20;

thread_local! {
    /// The store queries read, bound by the thread that runs hooks (the engine thread, the
    /// rule tester). Unbound: queries answer nothing.
    static STORE: RefCell<Option<Binding>> = const { RefCell::new(None) };
}

/// What queries read, and the clock that says what "recent" means.
type Binding = (Arc<dyn Store>, Arc<dyn Clock>);

/// Lets hooks run on this thread query `store`, with `clock` saying what "recent" means.
pub fn bind(store: Arc<dyn Store>, clock: Arc<dyn Clock>) {
    STORE.with(|s| *s.borrow_mut() = Some((store, clock)));
}

fn store() -> Option<Arc<dyn Store>> {
    STORE.with(|s| s.borrow().as_ref().map(|(s, _)| s.clone()))
}

pub(super) fn now() -> Timestamp {
    STORE.with(|s| {
        s.borrow()
            .as_ref()
            .map_or_else(Timestamp::now, |(_, c)| c.now())
    })
}

fn fail(at: Position, message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), at))
}

/// The `limit` of a query map, capped.
fn limit(q: &Map, at: Position) -> Result<usize, Box<EvalAltResult>> {
    match q.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .as_int()
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| fail(at, format!("`limit` must be 1..={MAX_RESULTS}"))),
    }
}

/// `#{name: "value", …}` → pairs; every value must be a string.
fn labels(q: &Map, at: Position) -> Result<Vec<(String, String)>, Box<EvalAltResult>> {
    let Some(v) = q.get("labels") else {
        return Ok(Vec::new());
    };
    let map = v
        .clone()
        .try_cast::<Map>()
        .ok_or_else(|| fail(at, "`labels` must be a map".into()))?;
    map.into_iter()
        .map(|(k, v)| {
            let v = v
                .into_string()
                .map_err(|t| fail(at, format!("label `{k}` must be a string, not {t}")))?;
            Ok((k.to_string(), v))
        })
        .collect()
}

fn ticket_map(t: &Ticket) -> Dynamic {
    let mut m = Map::new();
    m.insert("id".into(), t.id.to_string().into());
    m.insert("kind".into(), t.kind().as_str().into());
    m.insert("state".into(), t.state.as_str().into());
    m.insert("title".into(), t.title.clone().into());
    m.insert(
        "group".into(),
        t.group.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT),
    );
    m.insert("priority".into(), (t.priority as i64).into());
    m.insert(
        "key".into(),
        t.correlation_key
            .clone()
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT),
    );
    m.insert("created_at".into(), t.created_at.to_string().into());
    m.insert(
        "links".into(),
        Dynamic::from_array(
            t.process
                .links
                .iter()
                .map(|l| {
                    let mut link = Map::new();
                    link.insert("rel".into(), l.rel.as_str().into());
                    link.insert("ticket".into(), l.ticket.to_string().into());
                    Dynamic::from_map(link)
                })
                .collect(),
        ),
    );
    m.insert(
        "custom".into(),
        rhai::serde::to_dynamic(&t.custom).unwrap_or(Dynamic::UNIT),
    );
    Dynamic::from_map(m)
}

/// The labels of the alert that last touched `t`, if it has one.
fn alert_labels_of(
    store: &dyn Store,
    t: &Ticket,
) -> Option<std::collections::BTreeMap<String, String>> {
    alert_labels(store, t.alert.as_ref()?.last_event)
}

/// The labels of the alert of journal event `event`, if it is one.
fn alert_labels(
    store: &dyn Store,
    event: crate::event::EventId,
) -> Option<std::collections::BTreeMap<String, String>> {
    match layout::get_event(store, event).ok()??.event.body {
        EventBody::Alert(a) => Some(a.labels),
        _ => None,
    }
}

fn has_labels(
    have: &std::collections::BTreeMap<String, String>,
    want: &[(String, String)],
) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// The keys `open_tickets` takes.
pub const OPEN_TICKETS_KEYS: &[&str] = &["key", "group", "labels", "limit"];
/// The keys `recent_alerts` takes.
pub const RECENT_ALERTS_KEYS: &[&str] = &["labels", "minutes", "limit"];

/// A query map's first key the query does not take, as the error naming it: a misspelt
/// filter (`grup`) would otherwise be no filter at all.
fn refuse_unknown(q: &Map, keys: &[&str], at: Position) -> Result<(), Box<EvalAltResult>> {
    match q.keys().find(|k| !keys.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(fail(at, unknown_key_message(unknown, keys))),
    }
}

/// "unknown query key `servce`; did you mean service? expected kind, state, …"
pub fn unknown_key_message(unknown: &str, keys: &[&str]) -> String {
    let hint = crate::suggest::nearest(unknown, keys)
        .map(|n| format!("did you mean {n}? "))
        .unwrap_or_default();
    format!(
        "unknown query key `{unknown}`; {hint}expected {}",
        keys.join(", ")
    )
}

/// `open_tickets(#{key | group | labels, limit})`
fn open_tickets(ctx: NativeCallContext, q: Map) -> Result<Array, Box<EvalAltResult>> {
    let at = ctx.call_position();
    refuse_unknown(&q, OPEN_TICKETS_KEYS, at)?;
    let limit = limit(&q, at)?;
    let want = labels(&q, at)?;
    let Some(store) = store() else {
        return Ok(Array::new());
    };
    let text = |name: &str| q.get(name).map(|v| v.to_string());
    let err = |e: crate::store::StoreError| fail(at, format!("query failed: {e}"));
    let mut candidates: Vec<TicketId> = Vec::new();
    if let Some(key) = text("key") {
        if let Some(bytes) = store.get(Tree::TicketByKey, key.as_bytes()).map_err(err)? {
            candidates.push(decode(Tree::TicketByKey, &bytes).map_err(err)?);
        }
    } else {
        let group = text("group");
        'states: for state in State::ALL.into_iter().filter(|s| s.is_open()) {
            let filter = layout::TicketFilter {
                state: Some(state),
                group: group.clone(),
                ..layout::TicketFilter::default()
            };
            let (page, _) = layout::list_tickets(&*store, &filter, None, MAX_SCAN).map_err(err)?;
            for t in page {
                candidates.push(t.id);
                if candidates.len() >= MAX_SCAN {
                    break 'states;
                }
            }
        }
    }
    let mut out = Array::new();
    for id in candidates {
        let Some(t) = layout::get_ticket(&*store, id).map_err(err)? else {
            continue;
        };
        if !t.state.is_open() {
            continue;
        }
        if let Some(g) = text("group")
            && t.group.as_deref() != Some(g.as_str())
        {
            continue;
        }
        if !want.is_empty() && !alert_labels_of(&*store, &t).is_some_and(|l| has_labels(&l, &want))
        {
            continue;
        }
        out.push(ticket_map(&t));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// `recent_alerts(#{labels, minutes, limit})`: newest first, within `minutes` (default 60).
fn recent_alerts(ctx: NativeCallContext, q: Map) -> Result<Array, Box<EvalAltResult>> {
    let at = ctx.call_position();
    refuse_unknown(&q, RECENT_ALERTS_KEYS, at)?;
    let limit = limit(&q, at)?;
    let want = labels(&q, at)?;
    let minutes = match q.get("minutes") {
        None => 60,
        Some(v) => v
            .as_int()
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| fail(at, "`minutes` must be a positive integer".into()))?,
    };
    let Some(store) = store() else {
        return Ok(Array::new());
    };
    let since = now()
        .saturating_sub(SignedDuration::from_mins(minutes))
        .unwrap_or(Timestamp::MIN);
    let mut out = Array::new();
    for item in store
        .range(Tree::Events, Bound::Unbounded, Bound::Unbounded)
        .rev()
        .take(MAX_SCAN)
    {
        let (_, bytes) = item.map_err(|e| fail(at, format!("query failed: {e}")))?;
        let Ok(stored) = decode::<StoredEvent>(Tree::Events, &bytes) else {
            continue;
        };
        if stored.event.received_at < since {
            break;
        }
        let EventBody::Alert(a) = &stored.event.body else {
            continue;
        };
        if !has_labels(&a.labels, &want) {
            continue;
        }
        let mut m = Map::new();
        m.insert("event".into(), (stored.event.id as i64).into());
        m.insert("at".into(), stored.event.received_at.to_string().into());
        m.insert("source".into(), a.source.clone().into());
        m.insert("key".into(), a.key.clone().into());
        m.insert("status".into(), a.status.as_str().into());
        m.insert("severity".into(), a.severity.clone().into());
        m.insert("summary".into(), a.summary.clone().into());
        m.insert(
            "ticket".into(),
            stored
                .ticket
                .map(|t| Dynamic::from(t.to_string()))
                .unwrap_or(Dynamic::UNIT),
        );
        out.push(Dynamic::from_map(m));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// The keys `tickets` and `count_tickets` take; anything else is an error naming it.
pub const TICKET_QUERY_KEYS: &[&str] = &[
    "kind", "state", "key", "group", "labels", "service", "minutes", "limit",
];

/// What `tickets(q)` and `count_tickets(q)` look for, checked once.
struct TicketQuery {
    kinds: Vec<Kind>,
    /// `None`: any state; `Some(None)`: any open state; `Some(Some(s))`: that state.
    state: Option<Option<State>>,
    key: Option<String>,
    group: Option<String>,
    labels: Vec<(String, String)>,
    service: Option<String>,
    since: Option<Timestamp>,
}

impl TicketQuery {
    fn of(q: &Map, at: Position) -> Result<TicketQuery, Box<EvalAltResult>> {
        refuse_unknown(q, TICKET_QUERY_KEYS, at)?;
        let text = |name: &str| -> Result<Option<String>, Box<EvalAltResult>> {
            q.get(name)
                .map(|v| {
                    v.clone()
                        .into_string()
                        .map_err(|t| fail(at, format!("`{name}` must be a string, not {t}")))
                })
                .transpose()
        };
        let kinds = match text("kind")? {
            None => Kind::ALL.to_vec(),
            Some(k) => vec![
                k.parse::<Kind>()
                    .map_err(|e| fail(at, format!("`kind`: {e}")))?,
            ],
        };
        let state = match text("state")?.as_deref() {
            None | Some("open") => Some(None),
            Some("any") => None,
            Some(name) => {
                Some(Some(name.parse::<State>().map_err(|e| {
                    fail(at, format!("`state` (or \"open\", \"any\"): {e}"))
                })?))
            }
        };
        let since = match q.get("minutes") {
            None => None,
            Some(v) => {
                let minutes = v
                    .as_int()
                    .ok()
                    .filter(|m| *m > 0)
                    .ok_or_else(|| fail(at, "`minutes` must be a positive integer".into()))?;
                Some(
                    now()
                        .saturating_sub(SignedDuration::from_mins(minutes))
                        .unwrap_or(Timestamp::MIN),
                )
            }
        };
        Ok(TicketQuery {
            kinds,
            state,
            key: text("key")?,
            group: text("group")?,
            labels: labels(q, at)?,
            service: text("service")?,
            since,
        })
    }

    /// Whether a ticket of this summary matches; its service is checked by the caller (the
    /// index it was found in).
    fn matches(&self, store: &dyn Store, s: &Summary) -> bool {
        let state_ok = match self.state {
            None => true,
            Some(None) => s.state.is_open(),
            Some(Some(want)) => s.state == want,
        };
        if !state_ok
            || self.since.is_some_and(|since| s.created_at < since)
            || self.key.as_ref().is_some_and(|k| s.key.as_ref() != Some(k))
            || self
                .group
                .as_ref()
                .is_some_and(|g| s.group.as_ref() != Some(g))
        {
            return false;
        }
        self.labels.is_empty()
            || s.last_event
                .and_then(|e| alert_labels(store, e))
                .is_some_and(|l| has_labels(&l, &self.labels))
    }

    /// Matching tickets, newest first (by kind), at most `limit`, looking at most at
    /// [`MAX_SCAN`] tickets. With a `service`, from the tickets-by-service index (open or
    /// closed ones of each kind, as `state` asks, stopping at `minutes`), reading only the
    /// summaries stored there; without, by walking the tickets of each kind, newest first.
    fn run(
        &self,
        store: &dyn Store,
        limit: usize,
    ) -> Result<Vec<(TicketId, Summary)>, crate::store::StoreError> {
        match &self.service {
            Some(service) => self.run_indexed(store, service, limit),
            None => self.run_scan(store, limit),
        }
    }

    fn run_indexed(
        &self,
        store: &dyn Store,
        service: &str,
        limit: usize,
    ) -> Result<Vec<(TicketId, Summary)>, crate::store::StoreError> {
        let parts: &[bool] = match self.state {
            None => &[true, false],
            Some(None) => &[true],
            Some(Some(s)) if s.is_open() => &[true],
            Some(Some(_)) => &[false],
        };
        let mut out: Vec<(TicketId, Summary)> = Vec::new();
        let mut scanned = 0;
        for kind in &self.kinds {
            let mut of_kind: Vec<(TicketId, Summary)> = Vec::new();
            for open in parts {
                let mut found = 0;
                let want = limit - out.len();
                by_service::scan(store, service, *open, *kind, self.since, &mut |f| {
                    scanned += 1;
                    if self.matches(store, &f.summary) {
                        of_kind.push((f.id, f.summary));
                        found += 1;
                    }
                    found < want && scanned < MAX_SCAN
                })?;
            }
            // Open and closed ones, merged newest first.
            of_kind.sort_by_key(|t| std::cmp::Reverse((t.1.created_at, t.0)));
            of_kind.truncate(limit - out.len());
            out.extend(of_kind);
            if out.len() >= limit || scanned >= MAX_SCAN {
                break;
            }
        }
        Ok(out)
    }

    fn run_scan(
        &self,
        store: &dyn Store,
        limit: usize,
    ) -> Result<Vec<(TicketId, Summary)>, crate::store::StoreError> {
        let mut out = Vec::new();
        let mut scanned = 0;
        for kind in &self.kinds {
            let prefix = kind.prefix().as_bytes().to_vec();
            let mut end = prefix.clone();
            if let Some(last) = end.last_mut() {
                *last += 1;
            }
            let range = store.range(Tree::Tickets, Bound::Included(prefix), Bound::Excluded(end));
            for item in range.rev() {
                if scanned >= MAX_SCAN || out.len() >= limit {
                    return Ok(out);
                }
                scanned += 1;
                let (_, bytes) = item?;
                let t: Ticket = decode(Tree::Tickets, &bytes)?;
                if self.since.is_some_and(|s| t.created_at < s) {
                    break;
                }
                let summary = Summary::of(&t);
                if self.matches(store, &summary) {
                    out.push((t.id, summary));
                }
            }
        }
        Ok(out)
    }
}

/// One ticket as `tickets` answers it: its summary, without links.
fn summary_map(id: TicketId, s: &Summary) -> Dynamic {
    let mut m = Map::new();
    m.insert("id".into(), id.to_string().into());
    m.insert("kind".into(), id.kind.as_str().into());
    m.insert("state".into(), s.state.as_str().into());
    m.insert("title".into(), s.title.clone().into());
    m.insert(
        "group".into(),
        s.group.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT),
    );
    m.insert("priority".into(), (s.priority as i64).into());
    m.insert(
        "key".into(),
        s.key.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT),
    );
    m.insert("created_at".into(), s.created_at.to_string().into());
    m.insert(
        "custom".into(),
        rhai::serde::to_dynamic(&s.custom).unwrap_or(Dynamic::UNIT),
    );
    Dynamic::from_map(m)
}

/// `tickets(#{kind, state, key, group, labels, service, minutes, limit})`: newest first.
fn tickets(ctx: NativeCallContext, q: Map) -> Result<Array, Box<EvalAltResult>> {
    let at = ctx.call_position();
    let limit = limit(&q, at)?;
    let query = TicketQuery::of(&q, at)?;
    let Some(store) = store() else {
        return Ok(Array::new());
    };
    let found = query
        .run(&*store, limit)
        .map_err(|e| fail(at, format!("query failed: {e}")))?;
    Ok(found.iter().map(|(id, s)| summary_map(*id, s)).collect())
}

/// `count_tickets(#{…})`: how many tickets `tickets` would find without a limit (at most
/// [`MAX_SCAN`]).
fn count_tickets(ctx: NativeCallContext, q: Map) -> Result<i64, Box<EvalAltResult>> {
    let at = ctx.call_position();
    if q.contains_key("limit") {
        return Err(fail(at, "count_tickets takes no `limit`".into()));
    }
    let query = TicketQuery::of(&q, at)?;
    let Some(store) = store() else {
        return Ok(0);
    };
    let found = query
        .run(&*store, MAX_SCAN)
        .map_err(|e| fail(at, format!("query failed: {e}")))?;
    Ok(found.len() as i64)
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("open_tickets", open_tickets);
    engine.register_fn("recent_alerts", recent_alerts);
    engine.register_fn("tickets", tickets);
    engine.register_fn("count_tickets", count_tickets);
}
