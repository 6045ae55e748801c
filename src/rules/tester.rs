//! `itsmd rules test`: rule authors' tests. Each `*.toml` file in `<rules>/tests/` holds
//! cases; a case sends its events, in order, through a real engine (the daemon's code path)
//! on an in-memory store — nothing is committed anywhere — and compares the tickets it ends
//! with to what the case expects, field by field.
//!
//! ```toml
//! [[case]]
//! name = "database alerts go to the DBA team"
//! [[case.events]]
//! alert = { source = "prometheus", status = "firing", severity = "critical", summary = "Disk full", labels = { team = "dba", env = "prod" } }
//! [[case.events]]
//! ticket = { kind = "request", title = "New laptop" }     # an agent creating a ticket
//! [[case.expect]]
//! ticket = "INC-000001"
//! fields = { group = "dba", priority = 1 }
//! ```
//!
//! `now = "2026-12-07T08:00:00Z"` on a case starts its manual clock there (else at the time
//! the case starts); `at = "…"` or `after = "30m"` on an event moves it before the event.
//! `outcomes = ["opened", "updated"]` on a case checks each event's outcome as well;
//! `notified = ["vendor"]` on an expectation checks that a webhook to that vendor about the
//! ticket was queued (the runner has no dispatcher, so nothing is sent).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::alerts::intake::generic::GenericEvent;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::engine;
use crate::event::EventBody;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::{MemoryStore, Store, layout};
use crate::tickets::{Action, Actor, Command, NewTicket, TicketId, TransitionRequest};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Configuration text for these cases (groups, matrix, …) instead of the runner's.
    #[serde(default)]
    config: Option<String>,
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    events: Vec<Input>,
    /// Each event's outcome, in order (opened, updated, suppressed, recorded, …).
    #[serde(default)]
    outcomes: Option<Vec<String>>,
    #[serde(default)]
    expect: Vec<Expect>,
    /// Where the case's manual clock starts (RFC 3339); the time the case starts when absent.
    #[serde(default)]
    now: Option<jiff::Timestamp>,
}

/// One input event: exactly one of its fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// A generic alert, as `POST /api/v1/events` takes it.
    alert: Option<GenericEvent>,
    /// A ticket an agent creates, as `POST /api/v1/tickets` takes it.
    ticket: Option<NewTicket>,
    /// An agent's transition: `{ ticket = "CHG-000001", to = "implement", reason = "…" }`.
    transition: Option<TransitionInput>,
    /// Moves the case's clock to this time (RFC 3339) before the event.
    #[serde(default)]
    at: Option<jiff::Timestamp>,
    /// Moves the case's clock on by this much (`"30m"`, `"2h"`) before the event.
    #[serde(default)]
    after: Option<jiff::SignedDuration>,
}

/// (No `deny_unknown_fields`: serde does not support it with `flatten`; the transition's own
/// fields are still checked.)
#[derive(Debug, Deserialize)]
struct TransitionInput {
    ticket: TicketId,
    #[serde(flatten)]
    step: TransitionRequest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    ticket: TicketId,
    /// Fields of the ticket as the API shows it; only these are compared.
    #[serde(default)]
    fields: toml::Table,
    /// Text that must appear in some history entry's reason.
    #[serde(default)]
    history_mentions: Vec<String>,
    /// Vendors that must have been sent a webhook about the ticket (any type).
    #[serde(default)]
    notified: Vec<String>,
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub file: String,
    pub name: String,
    /// Empty when the case passed; else each mismatch as "expected … got …".
    pub failures: Vec<String>,
}

/// Runs every test file of `rules_dir/tests` against the rules in `rules_dir`.
pub fn run_dir(config: &Config, rules_dir: &Path) -> anyhow::Result<Vec<CaseResult>> {
    // Each case's engine logs inside this span and counts into a registry of its own.
    let span = tracing::info_span!("rules_test", dir = %rules_dir.display());
    let _entered = span.enter();
    let tests = rules_dir.join("tests");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&tests) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => anyhow::bail!("cannot read {}: {e}", tests.display()),
    };
    files.sort();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start a runtime: {e}"))?;
    let mut results = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let file: File =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let own = match &file.config {
            Some(text) => {
                let mut c = crate::config::parse(text, &format!("{name} config"))?;
                c.rules.dir = rules_dir.to_path_buf();
                Some(c)
            }
            None => None,
        };
        for case in file.case {
            let failures =
                runtime.block_on(run_case(own.as_ref().unwrap_or(config), rules_dir, &case))?;
            results.push(CaseResult {
                file: name.clone(),
                name: case.name,
                failures,
            });
        }
    }
    Ok(results)
}

async fn run_case(config: &Config, rules_dir: &Path, case: &Case) -> anyhow::Result<Vec<String>> {
    let rules = Rules::load((&config.rules).into(), rules_dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("rules do not compile:\n  {}", list.join("\n  "))
    })?;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // A manual clock: time moves only where the case says (`at`, `after`), so rules that ask
    // `now()` or use windows decide the same on every run.
    let clock = Arc::new(ManualClock::new(
        case.now.unwrap_or_else(jiff::Timestamp::now),
    ));
    let (engine, thread) = engine::start(
        config,
        store.clone(),
        rules,
        clock.clone(),
        Arc::new(Metrics::new()),
        tracing::Span::current(),
    )?;
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for (i, input) in case.events.iter().enumerate() {
        if let Some(at) = input.at {
            clock.set(at);
        }
        if let Some(by) = input.after {
            clock.advance(by);
        }
        let agent = |action| {
            EventBody::Command(Command {
                by: Actor::User {
                    name: "rules-test".into(),
                },
                action,
            })
        };
        let body = match (&input.alert, &input.ticket, &input.transition) {
            (Some(a), None, None) => match a.clone().into_alert() {
                Ok(alert) => EventBody::Alert(alert),
                Err(problems) => anyhow::bail!("event {}: {}", i + 1, problems.join("; ")),
            },
            (None, Some(t), None) => agent(Action::Create(t.clone())),
            (None, None, Some(t)) => agent(Action::Transition {
                ticket: t.ticket,
                step: t.step.clone(),
            }),
            _ => anyhow::bail!(
                "event {}: give exactly one of `alert`, `ticket` or `transition`",
                i + 1
            ),
        };
        match engine.submit(body).await {
            Ok(r) => outcomes.push(
                serde_json::to_value(r.outcome)?
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            Err(e) => {
                failures.push(format!("event {}: refused: {e}", i + 1));
                outcomes.push("refused".into());
            }
        }
    }
    drop(engine);
    thread.join().await;
    if let Some(want) = &case.outcomes
        && *want != outcomes
    {
        failures.push(format!("outcomes: expected {want:?}, got {outcomes:?}"));
    }
    for e in &case.expect {
        let Some(ticket) = layout::get_ticket(&*store, e.ticket)? else {
            failures.push(format!("{}: expected it to exist; it does not", e.ticket));
            continue;
        };
        let got = serde_json::to_value(&ticket)?;
        for (field, want) in &e.fields {
            let want = serde_json::to_value(want)?;
            let have = got.get(field).cloned().unwrap_or(Value::Null);
            if have != want {
                failures.push(format!("{}.{field}: expected {want}, got {have}", e.ticket));
            }
        }
        for vendor in &e.notified {
            let rows = crate::store::layout::outbox::rows(
                &*store,
                crate::store::Tree::Outbox,
                Some(vendor),
                None,
                1000,
            )?;
            if !rows.iter().any(|r| r.ticket == e.ticket) {
                failures.push(format!(
                    "{}: expected a webhook to {vendor}; none was queued",
                    e.ticket
                ));
            }
        }
        if !e.history_mentions.is_empty() {
            let history = layout::history(&*store, e.ticket)?;
            for text in &e.history_mentions {
                if !history.iter().any(|h| {
                    h.reason
                        .as_deref()
                        .is_some_and(|r| r.contains(text.as_str()))
                }) {
                    failures.push(format!(
                        "{}: expected a history entry mentioning {text:?}",
                        e.ticket
                    ));
                }
            }
        }
    }
    Ok(failures)
}
