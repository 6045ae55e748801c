//! Replay: run a candidate rule set over the event journal, in memory, and say what would
//! have happened differently — per event (opened, updated, suppressed, which ticket) and per
//! ticket and field (old → new, with the events that made the difference). Nothing is written
//! to the real store. Every event is replayed from the start so that state builds up as it
//! did; `since` only limits what is reported.
//!
//! What makes the same rules over the same journal give no differences:
//! - time: the engine reads each event's receive time as "now" while processing it
//!   (`engine::batch::EventClock`), and the replay's manual clock is set to that time, so due
//!   times, windows and history times come out the same;
//! - identity: tickets are matched by origin — the journal event that opened them and their
//!   place among the tickets that event opened — never by number, since a suppressed alert
//!   shifts every later number. Ticket ids in replayed events (an agent's transition, an SLA
//!   timer) are translated to the replay's ticket of the same origin, and ids in the replay's
//!   tickets (links) back to the real ones before comparing.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::engine;
use crate::event::EventBody;
use crate::metrics::Metrics;
use crate::rules::{CompileError, Limits, Rules};
use crate::sla::clock::Stage;
use crate::store::layout::{RowRef, StoredEvent};
use crate::store::{MemoryStore, Store, StoreError, Tree, decode, layout};
use crate::tickets::{FieldChange, HistoryEntry, Kind, TicketId};
use crate::vendors::OutboxRow;

/// Ticket fields compared between what happened and what would happen, beside the SLA
/// (`sla.policy`, `sla.escalation`, `sla.<clock>`: the stages fired, `sla.<clock>.timeline`),
/// `notified` (the leads told, from the history) and `outbox` (the vendor messages about the
/// ticket not yet delivered or dead-lettered).
const FIELDS: [&str; 12] = [
    "state",
    "group",
    "assignee",
    "impact",
    "urgency",
    "priority",
    "tags",
    "title",
    "resolution",
    "hold_reason",
    "links",
    "custom",
];

#[derive(Debug, Serialize)]
pub struct Report {
    /// Events replayed (all of the journal).
    pub events: u64,
    /// Events reported on (received at or after `since`).
    pub compared: u64,
    pub event_differences: Vec<EventDifference>,
    pub ticket_differences: Vec<TicketDifference>,
    /// Set when the retention sweep pruned the journal: it starts there, and the tickets
    /// opened by pruned events are not compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_starts: Option<crate::retention::JournalStart>,
}

#[derive(Debug, Serialize)]
pub struct EventDifference {
    /// The journal event; `None` for an SLA timer only the replay fires.
    pub event: Option<u64>,
    pub received_at: Timestamp,
    /// "opened INC-000004", "suppressed", …
    pub happened: String,
    /// In the real tickets' numbering; a ticket only the replay opens is "INC-000005 (new)".
    pub would: String,
}

#[derive(Debug, Serialize)]
pub struct TicketDifference {
    /// The real ticket; `None` when only the replay opens it.
    pub ticket: Option<TicketId>,
    /// The replay's ticket of the same origin; `None` when the replay does not open it.
    pub replay_ticket: Option<TicketId>,
    /// The journal event that opened it.
    pub opened_by: u64,
    pub field: String,
    pub happened: Value,
    pub would: Value,
    /// The events whose changes of this field differ (all that touched it, when the
    /// histories do not tell them apart).
    pub events: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the candidate rules do not compile")]
    Rules(Vec<CompileError>),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Engine(String),
    #[error(
        "the journal starts at {} (events up to {} were pruned by [retention] journal): \
         replay since {since} would compare events that are gone; use --since {} or later, \
         or an archive (`itsmd export --since`) imported into a scratch daemon",
        .start.before, .start.pruned_through, .start.before
    )]
    Pruned {
        since: Timestamp,
        start: crate::retention::JournalStart,
    },
}

/// Where a ticket came from: the journal event that opened it, and its place among the
/// tickets that event opened (by id).
type Origin = (u64, usize);

/// Tickets of one store by origin, both ways.
#[derive(Default)]
struct Origins {
    by_origin: BTreeMap<Origin, TicketId>,
    of: BTreeMap<TicketId, Origin>,
    /// The replay's side only: its event ids → the journal's.
    events: BTreeMap<u64, u64>,
    /// The replay's side only: its outbox rows by what they are (the journal event that
    /// queued them, the replay's ticket, destination, type), in row order.
    rows: BTreeMap<RowRef, Vec<u64>>,
    /// The replay's side only: its last outbox row indexed in `rows`.
    last_row: u64,
}

impl Origins {
    fn add(&mut self, event: u64, mut opened: Vec<TicketId>) {
        opened.sort();
        let first = self.by_origin.range((event, 0)..(event + 1, 0)).count();
        for (i, id) in opened.into_iter().enumerate() {
            self.by_origin.insert((event, first + i), id);
            self.of.insert(id, (event, first + i));
        }
    }

    /// Every ticket of `store`, by the event of its first history entry.
    fn of_store(store: &dyn Store) -> Result<Origins, StoreError> {
        let mut opened: BTreeMap<u64, Vec<TicketId>> = BTreeMap::new();
        for item in store.range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded) {
            let (key, _) = item?;
            let Some(id) = TicketId::from_key(&key) else {
                continue;
            };
            let first: Option<HistoryEntry> = store
                .get(Tree::History, &layout::history_key(id, 1))?
                .map(|b| decode(Tree::History, &b))
                .transpose()?;
            let event = first.and_then(|e| e.event).unwrap_or(0);
            opened.entry(event).or_default().push(id);
        }
        let mut origins = Origins::default();
        for (event, ids) in opened {
            origins.add(event, ids);
        }
        Ok(origins)
    }
}

/// Replaces every ticket id found in `from`, in every string (a whole value, or a word of a
/// text such as a lead's notification), by the id of the same origin in `to`; one `to` lacks
/// becomes `missing(id)` (a ticket that does not exist there).
fn translate(v: &mut Value, from: &Origins, to: &Origins, missing: &dyn Fn(TicketId) -> String) {
    match v {
        Value::String(s) if s.contains('-') => *s = translate_text(s, from, to, missing),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| translate(i, from, to, missing)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|i| translate(i, from, to, missing)),
        _ => {}
    }
}

/// `text` with each word that is a ticket id of `from` translated (see [`translate`]).
fn translate_text(
    text: &str,
    from: &Origins,
    to: &Origins,
    missing: &dyn Fn(TicketId) -> String,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let translated = word
            .parse::<TicketId>()
            .ok()
            .and_then(|id| from.of.get(&id).map(|o| (id, o)))
            .map(|(id, origin)| match to.by_origin.get(origin) {
                Some(other) => other.to_string(),
                None => missing(id),
            });
        out.push_str(translated.as_deref().unwrap_or(word));
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The last ticket number of each kind in `store`.
fn ticket_numbers(store: &dyn Store) -> Result<[u64; 4], StoreError> {
    let mut out = [0; 4];
    for (slot, kind) in out.iter_mut().zip(Kind::ALL) {
        *slot = layout::counter(store, &layout::ticket_seq_key(kind))?;
    }
    Ok(out)
}

/// Replays the journal of `real` with the candidate `sources` (file name, text).
pub fn replay(
    config: &Config,
    real: &dyn Store,
    sources: Vec<(String, String)>,
    since: Option<Timestamp>,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Report, ReplayError> {
    // Everything the replay's engine does happens to a copy: it counts into a registry of
    // its own, thrown away afterwards (never the daemon's `/metrics`), and logs inside the
    // `replay` span, so a "Group lead notified." it logs is not mistaken for a real one.
    let span = tracing::info_span!("replay");
    let _entered = span.enter();
    let journal_starts = crate::retention::journal_start(real)?;
    if let (Some(start), Some(since)) = (journal_starts, since)
        && since < start.before
    {
        return Err(ReplayError::Pruned { since, start });
    }
    let rules =
        Rules::from_sources(Limits::from(&config.rules), sources).map_err(ReplayError::Rules)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Engine(format!("cannot start the replay runtime: {e}")))?;
    let scratch: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
    let mut report = Report {
        events: 0,
        compared: 0,
        event_differences: Vec::new(),
        ticket_differences: Vec::new(),
        journal_starts,
    };
    let real_origins = Origins::of_store(real)?;
    let fired_live = fired_live(real)?;
    let mut replayed = Origins::default();
    // Origins of the tickets to report on (touched by an event at or after `since`).
    let mut reported: BTreeSet<Origin> = BTreeSet::new();
    let nowhere = |id: TicketId| {
        TicketId {
            kind: id.kind,
            number: u64::MAX,
        }
        .to_string()
    };
    runtime.block_on(async {
        let (engine, thread) = engine::start(
            config,
            scratch.clone(),
            rules,
            clock.clone(),
            Arc::new(Metrics::new()),
            span.clone(),
        )
        .map_err(|e| ReplayError::Engine(format!("cannot start the replay engine: {e}")))?;
        let mut numbers = ticket_numbers(&*scratch)?;
        let mut timers_only_here = 0u64;
        let mut last_at = None;
        // SLA timers of the replay that the journal never fired (the candidate scheduled
        // them differently) fire when they fall due, as the clock task would have.
        let own = OwnTimers {
            engine: &engine,
            scratch: &*scratch,
            clock: &clock,
            fired_live: &fired_live,
            real: &real_origins,
            since,
        };
        // The journal's batches, as the daemon committed them: a query reads the last
        // commit, so events of one batch must not see each other in the replay either.
        let mut batch: Vec<StoredEvent> = Vec::new();
        let mut journal = real.range(Tree::Events, Bound::Unbounded, Bound::Unbounded);
        loop {
            if stop.is_cancelled() {
                return Err(ReplayError::Engine(
                    "stopped: the daemon is shutting down".into(),
                ));
            }
            let next = journal
                .next()
                .transpose()?
                .map(|(_, bytes)| decode::<StoredEvent>(Tree::Events, &bytes))
                .transpose()?;
            let joins = next
                .as_ref()
                .is_some_and(|n| batch.first().is_some_and(|f| n.batch == Some(f.event.id)));
            if joins {
                batch.extend(next);
                continue;
            }
            if let Some(first) = batch.first() {
                let at = first.event.received_at;
                last_at = batch.last().map(|l| l.event.received_at);
                own.fire(
                    at,
                    &mut numbers,
                    &mut replayed,
                    &mut timers_only_here,
                    &mut report,
                )
                .await?;
                clock.set(at);
                let mut items = Vec::with_capacity(batch.len());
                for stored in &batch {
                    let id = stored.event.id;
                    let mut v = serde_json::to_value(&stored.event.body)
                        .map_err(|e| ReplayError::Engine(format!("event {id}: {e}")))?;
                    translate(&mut v, &real_origins, &replayed, &nowhere);
                    if let Some(row) = &stored.row {
                        v["row"] = Value::from(same_row(row, &real_origins, &replayed));
                    }
                    let body = serde_json::from_value::<EventBody>(v)
                        .map_err(|e| ReplayError::Engine(format!("event {id}: {e}")))?;
                    items.push((id, body, stored.event.received_at));
                }
                let answers =
                    submit(&engine, &*scratch, &mut numbers, &mut replayed, items).await?;
                for (stored, answer) in batch.iter().zip(answers) {
                    report.events += 1;
                    compare(
                        stored,
                        answer,
                        &replayed,
                        &real_origins,
                        since,
                        &mut reported,
                        &mut report,
                    );
                }
            }
            match next {
                Some(n) => batch = vec![n],
                None => break,
            }
        }
        // Timers due by the last recorded event that only the replay has.
        if let Some(end) = last_at {
            own.fire(
                end,
                &mut numbers,
                &mut replayed,
                &mut timers_only_here,
                &mut report,
            )
            .await?;
        }
        drop(engine);
        thread.join().await;
        Ok::<(), ReplayError>(())
    })?;
    let mut origins: BTreeSet<Origin> = real_origins.by_origin.keys().copied().collect();
    origins.extend(replayed.by_origin.keys().copied());
    if since.is_some() {
        origins.retain(|o| reported.contains(o));
    }
    if let Some(start) = journal_starts {
        // Their opening event is gone: the replay cannot open them.
        origins.retain(|o| o.0 > start.pruned_through);
    }
    let real_outbox = outbox_by_ticket(real)?;
    let replay_outbox = outbox_by_ticket(&*scratch)?;
    for origin in origins {
        let real_id = real_origins.by_origin.get(&origin).copied();
        let replay_id = replayed.by_origin.get(&origin).copied();
        let happened = Side::read(real, real_id, &real_outbox, None)?;
        let would = Side::read(
            &*scratch,
            replay_id,
            &replay_outbox,
            Some((&replayed, &real_origins)),
        )?;
        let names: BTreeSet<&String> = happened.fields.keys().chain(would.fields.keys()).collect();
        for field in names {
            let (h, w) = (happened.field(field), would.field(field));
            if h != w {
                report.ticket_differences.push(TicketDifference {
                    ticket: real_id,
                    replay_ticket: replay_id,
                    opened_by: origin.0,
                    field: field.clone(),
                    events: causes(&happened.history, &would.history, field),
                    happened: h,
                    would: w,
                });
            }
        }
    }
    Ok(report)
}

/// Origins of tickets opened by events only the replay has (its own SLA timers): above any
/// journal id, so they never match a real ticket.
const ONLY_IN_REPLAY: u64 = u64::MAX / 2;

/// Submits one batch to the replay's engine (each event with its journal id as its origin
/// and its receive time) and records the tickets each event opened: a ticket's origin is the
/// event of its first history entry (rules may open tickets too).
async fn submit(
    engine: &engine::EngineHandle,
    scratch: &dyn Store,
    numbers: &mut [u64; 4],
    replayed: &mut Origins,
    items: Vec<(u64, EventBody, Timestamp)>,
) -> Result<Vec<Result<engine::Receipt, engine::SubmitError>>, ReplayError> {
    let origins: Vec<u64> = items.iter().map(|(o, _, _)| *o).collect();
    let bodies = items.into_iter().map(|(_, b, at)| (b, at)).collect();
    let answers: Vec<Result<engine::Receipt, engine::SubmitError>> =
        match engine.submit_batch(bodies).await {
            Ok(answers) => answers,
            Err(e) => {
                return Err(ReplayError::Engine(format!(
                    "replayed batch not taken: {e}"
                )));
            }
        };
    let now = ticket_numbers(scratch)?;
    let mut opened = Vec::new();
    for ((before, after), kind) in numbers.iter().zip(now).zip(Kind::ALL) {
        opened.extend((before + 1..=after).map(|number| TicketId { kind, number }));
    }
    *numbers = now;
    let by_event: BTreeMap<u64, u64> = answers
        .iter()
        .zip(&origins)
        .filter_map(|(a, o)| a.as_ref().ok().map(|r| (r.event_id, *o)))
        .collect();
    let mut of: BTreeMap<u64, Vec<TicketId>> = BTreeMap::new();
    for id in opened {
        let origin = if origins.len() == 1 {
            origins[0]
        } else {
            let first: Option<HistoryEntry> = scratch
                .get(Tree::History, &layout::history_key(id, 1))?
                .map(|b| decode(Tree::History, &b))
                .transpose()?;
            first
                .and_then(|e| e.event)
                .and_then(|e| by_event.get(&e).copied())
                .unwrap_or(origins[0])
        };
        of.entry(origin).or_default().push(id);
    }
    for (origin, ids) in of {
        replayed.add(origin, ids);
    }
    replayed.events.extend(by_event);
    let last = layout::counter(scratch, layout::outbox::OUTBOX_SEQ)?;
    for id in replayed.last_row + 1..=last {
        let row = match layout::outbox::pending(scratch, id)? {
            Some(r) => Some(r),
            None => layout::outbox::dead(scratch, id)?,
        };
        if let Some(r) = row {
            let event = replayed.events.get(&r.event).copied().unwrap_or(0);
            let key = RowRef {
                event,
                ticket: r.ticket,
                vendor: r.vendor,
                kind: r.kind,
            };
            replayed.rows.entry(key).or_default().push(id);
        }
    }
    replayed.last_row = last;
    Ok(answers)
}

/// The replay's outbox row that is the journal's `row`: queued by the same journal event,
/// about the ticket of the same origin, to the same destination, of the same type (the
/// first such); none (a number no row has) when the replay queued no such message. So a
/// candidate that adds or drops a message shifts no other delivery result.
fn same_row(row: &RowRef, real: &Origins, replayed: &Origins) -> u64 {
    let ticket = real
        .of
        .get(&row.ticket)
        .and_then(|o| replayed.by_origin.get(o))
        .copied();
    ticket
        .and_then(|ticket| {
            let key = RowRef {
                ticket,
                ..row.clone()
            };
            replayed.rows.get(&key)?.first().copied()
        })
        .unwrap_or(u64::MAX)
}

/// Compares what the journal says happened to `stored` with what the replay did.
fn compare(
    stored: &StoredEvent,
    answer: Result<engine::Receipt, engine::SubmitError>,
    replayed: &Origins,
    real_origins: &Origins,
    since: Option<Timestamp>,
    reported: &mut BTreeSet<Origin>,
    report: &mut Report,
) {
    let journal_id = stored.event.id;
    let would = would(answer, replayed, real_origins);
    if since.is_some_and(|s| stored.event.received_at < s) {
        return;
    }
    report.compared += 1;
    if let Some(t) = stored.ticket
        && let Some(o) = real_origins.of.get(&t)
    {
        reported.insert(*o);
    }
    for (o, _) in replayed
        .by_origin
        .range((journal_id, 0)..(journal_id + 1, 0))
    {
        reported.insert(*o);
    }
    let happened = describe(
        &outcome_name(stored.outcome),
        stored.ticket.map(|t| t.to_string()),
    );
    if happened != would {
        report.event_differences.push(EventDifference {
            event: Some(journal_id),
            received_at: stored.event.received_at,
            happened,
            would,
        });
    }
}

/// What the replay did with an event, naming tickets in the real numbering.
fn would(
    answer: Result<engine::Receipt, engine::SubmitError>,
    replayed: &Origins,
    real: &Origins,
) -> String {
    match answer {
        Ok(r) => {
            let ticket = r.ticket.map(|t| match replayed.of.get(&t) {
                _ if t.number == u64::MAX => "(a ticket the replay did not open)".into(),
                Some(o) => match real.by_origin.get(o) {
                    Some(real) => real.to_string(),
                    None => format!("{t} (new)"),
                },
                None => format!("{t} (new)"),
            });
            describe(&outcome_name(r.outcome), ticket)
        }
        Err(e) => format!("refused ({e})"),
    }
}

/// Every SLA timer the journal fired: (real ticket, clock, stage, due).
type FiredTimer = (TicketId, String, crate::sla::Stage, Timestamp);

fn fired_live(real: &dyn Store) -> Result<BTreeSet<(TicketId, String, u8, Timestamp)>, StoreError> {
    let mut out = BTreeSet::new();
    for item in real.range(Tree::Events, Bound::Unbounded, Bound::Unbounded) {
        let (_, bytes) = item?;
        let stored: StoredEvent = decode(Tree::Events, &bytes)?;
        if let EventBody::Clock(t) = stored.event.body {
            out.insert(timer_key(&(t.ticket, t.clock, t.stage, t.due)));
        }
    }
    Ok(out)
}

fn timer_key(t: &FiredTimer) -> (TicketId, String, u8, Timestamp) {
    let stage = match t.2 {
        Stage::Warning(p) => p,
        Stage::Breach => 100,
    };
    (t.0, t.1.clone(), stage, t.3)
}

/// Fires the replay's own SLA timers (see [`own_timers`]), as the clock task would.
struct OwnTimers<'a> {
    engine: &'a engine::EngineHandle,
    scratch: &'a dyn Store,
    clock: &'a ManualClock,
    fired_live: &'a BTreeSet<(TicketId, String, u8, Timestamp)>,
    real: &'a Origins,
    since: Option<Timestamp>,
}

impl OwnTimers<'_> {
    /// Fires, earliest first, every timer of the replay due by `until` that the journal
    /// does not fire, each at its due time, and reports each as a difference.
    async fn fire(
        &self,
        until: Timestamp,
        numbers: &mut [u64; 4],
        replayed: &mut Origins,
        count: &mut u64,
        report: &mut Report,
    ) -> Result<(), ReplayError> {
        // Each firing schedules at most the clock's next stage: this ends; the bound guards.
        for _ in 0..100_000 {
            let Some(timer) =
                own_timers(self.scratch, until, self.fired_live, replayed, self.real)?
                    .into_iter()
                    .next()
            else {
                return Ok(());
            };
            *count += 1;
            let at = timer.due;
            self.clock.set(at);
            let origin = ONLY_IN_REPLAY + *count;
            let body = EventBody::Clock(timer);
            let items = vec![(origin, body, at)];
            let answer = submit(self.engine, self.scratch, numbers, replayed, items)
                .await?
                .pop()
                .unwrap_or(Err(engine::SubmitError::Stopped));
            if self.since.is_none_or(|s| at >= s) {
                report.event_differences.push(EventDifference {
                    event: None,
                    received_at: at,
                    happened: "(no such SLA timer fired)".into(),
                    would: format!("SLA timer fires: {}", would(answer, replayed, self.real)),
                });
            }
        }
        Ok(())
    }
}

/// The replay's SLA timers due by `until` that the journal does not fire (it fires the
/// others itself, at the time it did), earliest first.
fn own_timers(
    scratch: &dyn Store,
    until: Timestamp,
    fired_live: &BTreeSet<(TicketId, String, u8, Timestamp)>,
    replayed: &Origins,
    real: &Origins,
) -> Result<Vec<crate::store::layout::sla_timers::Timer>, StoreError> {
    let due = crate::store::layout::sla_timers::due(scratch, until, 100)?;
    Ok(due
        .into_iter()
        .filter(|t| {
            let real_id = replayed
                .of
                .get(&t.ticket)
                .and_then(|o| real.by_origin.get(o));
            real_id.is_none_or(|id| {
                !fired_live.contains(&timer_key(&(*id, t.clock.clone(), t.stage, t.due)))
            })
        })
        .collect())
}

fn describe(outcome: &str, ticket: Option<String>) -> String {
    match ticket {
        Some(t) => format!("{outcome} {t}"),
        None => outcome.to_string(),
    }
}

/// One side's view of a ticket: the compared fields and the history (ids in the real
/// numbering).
struct Side {
    fields: BTreeMap<String, Value>,
    history: Vec<HistoryEntry>,
}

impl Side {
    fn field(&self, name: &str) -> Value {
        self.fields.get(name).cloned().unwrap_or(Value::Null)
    }

    /// `back`: translate the replay's ticket ids to the real ones (replayed, real).
    fn read(
        store: &dyn Store,
        id: Option<TicketId>,
        outbox: &BTreeMap<TicketId, Vec<String>>,
        back: Option<(&Origins, &Origins)>,
    ) -> Result<Side, StoreError> {
        let mut side = Side {
            fields: BTreeMap::new(),
            history: Vec::new(),
        };
        let Some(id) = id else {
            return Ok(side);
        };
        let Some(ticket) = layout::get_ticket(store, id)? else {
            return Ok(side);
        };
        let mut t = serde_json::to_value(&ticket).unwrap_or_default();
        let mut history = serde_json::to_value(layout::history(store, id)?).unwrap_or_default();
        if let Some((from, to)) = back {
            let unknown = |id: TicketId| format!("{id} (new)");
            translate(&mut t, from, to, &unknown);
            translate(&mut history, from, to, &unknown);
        }
        side.history = serde_json::from_value(history).unwrap_or_default();
        for field in FIELDS {
            if let Some(v) = t.get(field).filter(|v| !v.is_null()) {
                side.fields.insert(field.to_string(), v.clone());
            }
        }
        let sla = &ticket.sla;
        if let Some(p) = &sla.policy {
            side.fields
                .insert("sla.policy".into(), Value::from(p.clone()));
        }
        if sla.escalation > 0 {
            side.fields
                .insert("sla.escalation".into(), Value::from(sla.escalation));
        }
        for (name, clock) in &sla.clocks {
            let fired: Vec<Value> = clock
                .fired
                .iter()
                .map(|stage| match stage {
                    Stage::Warning(p) => format!("warning {p}%").into(),
                    Stage::Breach => "breach".into(),
                })
                .collect();
            side.fields
                .insert(format!("sla.{name}"), Value::from(fired));
            let timeline: Vec<Value> = clock
                .timeline
                .iter()
                .map(|t| {
                    let v = serde_json::to_value(t).unwrap_or_default();
                    let mark = v["mark"]["mark"]
                        .as_str()
                        .map_or_else(|| v["mark"].to_string(), str::to_string);
                    format!("{mark} {}", v["at"].as_str().unwrap_or_default()).into()
                })
                .collect();
            side.fields
                .insert(format!("sla.{name}.timeline"), Value::from(timeline));
        }
        let notified: Vec<Value> = side
            .history
            .iter()
            .flat_map(|e| &e.changes)
            .filter(|c| c.field == "notified")
            .map(|c| {
                let lead = c.new["lead"].as_str().unwrap_or_default();
                let message = c.new["message"].as_str().unwrap_or_default();
                format!("{lead}: {message}").into()
            })
            .collect();
        if !notified.is_empty() {
            side.fields.insert("notified".into(), Value::from(notified));
        }
        if let Some(messages) = outbox.get(&id) {
            side.fields
                .insert("outbox".into(), Value::from(messages.clone()));
        }
        Ok(side)
    }
}

/// Vendor messages not yet delivered, and dead-lettered, by ticket: "vendor type" in row
/// order.
fn outbox_by_ticket(store: &dyn Store) -> Result<BTreeMap<TicketId, Vec<String>>, StoreError> {
    let mut out: BTreeMap<TicketId, Vec<String>> = BTreeMap::new();
    for (tree, what) in [(Tree::Outbox, "pending"), (Tree::OutboxDead, "dead")] {
        for item in store.range(tree, Bound::Unbounded, Bound::Unbounded) {
            let (_, value) = item?;
            let row: OutboxRow = decode(tree, &value)?;
            out.entry(row.ticket)
                .or_default()
                .push(format!("{} {} ({what})", row.vendor, row.kind));
        }
    }
    Ok(out)
}

/// The events whose changes of `field` (or of its parts, `sla.response.…`) differ between
/// the two histories; every event that touched it when they differ only in what came of it.
fn causes(happened: &[HistoryEntry], would: &[HistoryEntry], field: &str) -> Vec<u64> {
    let clock = field
        .strip_prefix("sla.")
        .map(|c| c.trim_end_matches(".timeline"));
    let touches = |c: &FieldChange| {
        let name = c.field.as_str();
        name == field
            || name.starts_with(&format!("{field}."))
            || (field == "resolution" && name == "state")
            || (field == "links" && name.starts_with("link"))
            || (field == "sla.escalation" && name == "escalation")
            || (name == "sla_stage" && clock.is_some_and(|k| c.new["clock"] == k))
            || (clock.is_some_and(|k| name == format!("sla.{k}")))
    };
    let changes = |h: &[HistoryEntry]| -> BTreeSet<(u64, String)> {
        h.iter()
            .flat_map(|e| {
                e.changes
                    .iter()
                    .filter(|c| touches(c))
                    .map(move |c| (e.event.unwrap_or(0), c.new.to_string()))
            })
            .collect()
    };
    let (a, b) = (changes(happened), changes(would));
    let mut events: BTreeSet<u64> = a.symmetric_difference(&b).map(|(e, _)| *e).collect();
    if events.is_empty() {
        events = a.union(&b).map(|(e, _)| *e).collect();
    }
    events.remove(&0);
    events.into_iter().collect()
}

fn outcome_name(o: layout::Outcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::intake::generic::GenericEvent;
    use crate::clock::Clock;
    use crate::engine::test_support;

    const CORRELATE: (&str, &str) = (
        "95-problem-from-incidents.rhai",
        include_str!("../../rules/examples/95-problem-from-incidents.rhai"),
    );

    fn alert(n: u32) -> EventBody {
        let e: GenericEvent = serde_json::from_value(serde_json::json!({
            "source": "t", "status": "firing", "severity": "warning", "summary": format!("a{n}"),
            "labels": {"service": "billing", "n": n.to_string()}
        }))
        .unwrap();
        EventBody::Alert(e.into_alert().unwrap())
    }

    /// Three incidents of one service committed in one batch do not see each other (a query
    /// reads the last commit), so only the fourth opens the problem. The journal records the
    /// batch, and the replay commits the same batch: the same rules give no differences
    /// (replayed one by one, the third would open the problem).
    #[test]
    fn replay_commits_the_journals_batches_as_they_were() {
        let config = Config::default();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t0: Timestamp = "2026-12-07T08:00:00Z".parse().unwrap();
        runtime.block_on(async {
            let rules = test_support::rules(&config, &[CORRELATE]);
            let (engine, _clock) =
                test_support::engine(&config, store.clone(), rules, "2026-12-07T08:00:00Z");
            let batch = (1..=3)
                .map(|n| (alert(n), t0 + jiff::SignedDuration::from_secs(n.into())))
                .collect();
            for answer in engine.submit_batch(batch).await.unwrap() {
                assert_eq!(answer.unwrap().outcome, layout::Outcome::Opened);
            }
            engine.submit(alert(4)).await.unwrap();
        });
        let batches: Vec<Option<u64>> = (1..=4)
            .map(|id| layout::get_event(&*store, id).unwrap().unwrap().batch)
            .collect();
        assert_eq!(batches, [None, Some(1), Some(1), None]);
        let problem = TicketId {
            kind: Kind::Problem,
            number: 1,
        };
        let opened_by = layout::history(&*store, problem).unwrap()[0].event;
        assert_eq!(opened_by, Some(4), "the fourth incident opened the problem");

        let sources = vec![(CORRELATE.0.to_string(), CORRELATE.1.to_string())];
        let report = replay(&config, &*store, sources, None, &Default::default()).unwrap();
        assert_eq!(report.events, 4);
        assert!(report.event_differences.is_empty(), "{report:#?}");
        assert!(report.ticket_differences.is_empty(), "{report:#?}");
    }

    /// A ticket only the candidate opens is named by its replay number wherever it appears:
    /// the incidents' links read `PRB-000001 (new)`, not just the kind.
    #[test]
    fn a_ticket_only_the_replay_opens_is_named_by_its_replay_number() {
        let config = Config::default();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let rules = test_support::rules(&config, &[]);
            let (engine, _clock) =
                test_support::engine(&config, store.clone(), rules, "2026-12-07T08:00:00Z");
            for n in 1..=3 {
                engine.submit(alert(n)).await.unwrap();
            }
        });
        let sources = vec![(CORRELATE.0.to_string(), CORRELATE.1.to_string())];
        let report = replay(&config, &*store, sources, None, &Default::default()).unwrap();
        let third = TicketId {
            kind: Kind::Incident,
            number: 3,
        };
        let links = report
            .ticket_differences
            .iter()
            .find(|d| d.ticket == Some(third) && d.field == "links")
            .unwrap_or_else(|| panic!("{report:#?}"));
        assert_eq!(
            links.would,
            serde_json::json!([{"rel": "caused_by", "ticket": "PRB-000001 (new)"}]),
            "{report:#?}"
        );
    }

    /// Delivery results are matched to the replay's messages by what they are, not by row
    /// number: a candidate that sends one more message (about the first incident) does not
    /// shift the recorded deliveries of the later ones; only its own message differs.
    #[test]
    fn delivery_results_follow_their_message_not_the_row_number() {
        let config = crate::config::parse(
            "[groups.triage]\n[groups.operations]\n[vendors.acme]\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"\n",
            "test",
        )
        .unwrap();
        let live =
            "fn on_alert(a, t) { if t.is_new && a.labels.n != \"1\" { t.notify(\"acme\"); } }";
        let candidate = "fn on_alert(a, t) { if t.is_new { t.notify(\"acme\"); } }";
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let rules = test_support::rules(&config, &[("10-notify.rhai", live)]);
            let (engine, clock) =
                test_support::engine(&config, store.clone(), rules, "2026-12-07T08:00:00Z");
            for n in 1..=3 {
                engine.submit(alert(n)).await.unwrap();
            }
            for row in [1, 2] {
                let delivered = crate::vendors::Delivery::Attempted {
                    row,
                    attempt: 1,
                    at: clock.now(),
                    result: crate::vendors::AttemptResult::Delivered { status: 200 },
                };
                engine.submit(EventBody::Delivery(delivered)).await.unwrap();
            }
        });
        assert!(
            outbox_by_ticket(&*store).unwrap().is_empty(),
            "all delivered live"
        );

        let sources = vec![("10-notify.rhai".to_string(), candidate.to_string())];
        let report = replay(&config, &*store, sources, None, &Default::default()).unwrap();
        let diffs: Vec<(Option<TicketId>, &str)> = report
            .ticket_differences
            .iter()
            .map(|d| (d.ticket, d.field.as_str()))
            .collect();
        let first = TicketId {
            kind: Kind::Incident,
            number: 1,
        };
        assert_eq!(diffs, [(Some(first), "outbox")], "{report:#?}");
        assert_eq!(
            report.ticket_differences[0].would,
            serde_json::json!(["acme ticket.notified (pending)"])
        );
    }
}
