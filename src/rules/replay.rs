//! Replay: run a candidate rule set over the event journal, in memory, and say what would
//! have happened differently — per event (opened, updated, suppressed, which ticket) and per
//! ticket (fields). Nothing is written to the real store. Every event is replayed from the
//! start so that state builds up as it did; `since` only limits what is reported. A manual
//! clock follows each event's receive time, so windows (reopen, flapping) behave as they did.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::rules::CompileError;

use crate::rules::Limits;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::engine;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::MemoryStore;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::Tree;
use crate::store::decode;
use crate::store::layout;
use crate::store::layout::StoredEvent;
use crate::tickets::TicketId;

/// Fields compared between what happened and what would happen.
const FIELDS: [&str; 10] = [
    "state",
    "group",
    "assignee",
    "impact",
    "urgency",
    "priority",
    "tags",
    "title",
    "resolution",
    "links",
];

#[derive(Debug, Serialize)]
pub struct Report {
    /// Events replayed (all of the journal).
    pub events: u64,
    /// Events reported on (received at or after `since`).
    pub compared: u64,
    pub event_differences: Vec<EventDifference>,
    pub ticket_differences: Vec<TicketDifference>,
}

#[derive(Debug, Serialize)]
pub struct EventDifference {
    pub event: u64,
    pub received_at: Timestamp,
    /// "opened INC-000004", "suppressed", …
    pub happened: String,
    pub would: String,
}

#[derive(Debug, Serialize)]
pub struct TicketDifference {
    pub ticket: TicketId,
    pub field: String,
    pub happened: Value,
    pub would: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the candidate rules do not compile")]
    Rules(Vec<CompileError>),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Engine(String),
}

fn describe(outcome: &str, ticket: Option<TicketId>) -> String {
    match ticket {
        Some(t) => format!("{outcome} {t}"),
        None => outcome.to_string(),
    }
}

/// Replays the journal of `real` with the candidate `sources` (file name, text).
pub fn replay(
    config: &Config,
    real: &dyn Store,
    sources: Vec<(String, String)>,
    since: Option<Timestamp>,
) -> Result<Report, ReplayError> {
    // Everything the replay's engine does happens to a copy: it counts into a registry of
    // its own, thrown away afterwards (never the daemon's `/metrics`), and logs inside the
    // `replay` span, so a "Group lead notified." it logs is not mistaken for a real one.
    let span = tracing::info_span!("replay");
    let _entered = span.enter();
    let rules =
        Rules::from_sources(Limits::from(&config.rules), sources).map_err(ReplayError::Rules)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Engine(e.to_string()))?;
    let scratch: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
    let mut report = Report {
        events: 0,
        compared: 0,
        event_differences: Vec::new(),
        ticket_differences: Vec::new(),
    };
    let mut reported: BTreeSet<TicketId> = BTreeSet::new();
    runtime.block_on(async {
        let (engine, thread) = engine::start(
            config,
            scratch.clone(),
            rules,
            clock.clone(),
            Arc::new(Metrics::new()),
            span.clone(),
        )
        .map_err(|e| ReplayError::Engine(e.to_string()))?;
        for item in real.range(Tree::Events, Bound::Unbounded, Bound::Unbounded) {
            let (_, bytes) = item?;
            let stored: StoredEvent = decode(Tree::Events, &bytes)?;
            clock.set(stored.event.received_at);
            report.events += 1;
            let would = match engine.submit(stored.event.body.clone()).await {
                Ok(r) => describe(&outcome_name(r.outcome), r.ticket),
                Err(e) => format!("refused ({e})"),
            };
            if since.is_some_and(|s| stored.event.received_at < s) {
                continue;
            }
            report.compared += 1;
            reported.extend(stored.ticket);
            let happened = describe(&outcome_name(stored.outcome), stored.ticket);
            if happened != would {
                report.event_differences.push(EventDifference {
                    event: stored.event.id,
                    received_at: stored.event.received_at,
                    happened,
                    would,
                });
            }
        }
        drop(engine);
        thread.join().await;
        Ok::<(), ReplayError>(())
    })?;
    let mut ids: BTreeSet<TicketId> = reported;
    for item in scratch.range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded) {
        let (key, _) = item?;
        if since.is_none() {
            ids.extend(TicketId::from_key(&key));
        }
    }
    for id in ids {
        let happened =
            layout::get_ticket(real, id)?.map(|t| serde_json::to_value(t).unwrap_or_default());
        let would =
            layout::get_ticket(&*scratch, id)?.map(|t| serde_json::to_value(t).unwrap_or_default());
        for field in FIELDS {
            let get = |t: &Option<Value>| {
                t.as_ref().map_or(Value::Null, |t| {
                    t.get(field).cloned().unwrap_or(Value::Null)
                })
            };
            let (h, w) = (get(&happened), get(&would));
            if h != w {
                report.ticket_differences.push(TicketDifference {
                    ticket: id,
                    field: field.into(),
                    happened: h,
                    would: w,
                });
            }
        }
    }
    Ok(report)
}

fn outcome_name(o: layout::Outcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
