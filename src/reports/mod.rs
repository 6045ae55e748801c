//! Process reports for a period: MTTA and MTTR by priority, group and kind, SLA compliance
//! per policy and clock, breaches, backlog by state and age, volume by source, escalations.
//!
//! Owns the computation, from what is recorded rather than from counters that could drift:
//! each ticket's history (state changes, comments, SLA stages, escalations, with their
//! instants) and its clock timelines. It reads the store and must not write; grouping by
//! priority and group uses each ticket's current values. [`table`] renders a report as text;
//! [`api`] serves reports over HTTP and [`cli`] is the `itsmd report` client.

pub mod api;
pub mod cli;
pub mod table;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sla::calendar_config::Calendars;
use crate::sla::clock;
use crate::sla::clock::Mark;
use crate::sla::policy::SlaConfig;
use crate::store::{Store, StoreError, Tree, decode, layout};
use crate::tickets::{Actor, HistoryEntry, State, Ticket};

/// The sections a report can have; `all` is every one.
pub const SECTIONS: [&str; 7] = [
    "mtta",
    "mttr",
    "sla",
    "breaches",
    "backlog",
    "volume",
    "escalations",
];

/// A report over `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Start of the period (inclusive).
    pub from: Timestamp,
    /// End of the period (exclusive); also the instant the backlog is taken at.
    pub to: Timestamp,
    /// The sections computed, in [`SECTIONS`] order (an empty one has no rows).
    pub sections: Vec<String>,
    /// Mean time to acknowledge of tickets opened in the period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mtta: Vec<TimeRow>,
    /// Mean time to resolve of tickets first resolved in the period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mttr: Vec<TimeRow>,
    /// Clocks that ended in the period, met or missed, per policy and clock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla: Vec<ComplianceRow>,
    /// Every breach fired in the period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaches: Vec<BreachRow>,
    /// Open tickets at `to`, by state and age.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backlog: Vec<BacklogRow>,
    /// Tickets opened in the period, by source and kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<VolumeRow>,
    /// Every escalation in the period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<EscalationRow>,
}

/// A mean (and median) duration over a set of tickets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeRow {
    /// priority, group or kind.
    pub by: String,
    /// The value grouped on, e.g. "1", "dba", "incident".
    pub value: String,
    /// Tickets counted.
    pub count: u64,
    /// Mean, in seconds.
    pub mean_secs: i64,
    /// Median, in seconds.
    pub median_secs: i64,
}

/// SLA compliance of one clock of one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceRow {
    pub policy: String,
    pub clock: String,
    /// Clocks that ended in the period.
    pub ended: u64,
    /// Of those, met their target.
    pub met: u64,
    /// Of those, missed it.
    pub missed: u64,
    /// met / ended, in percent (100 with nothing ended).
    pub compliance_pct: f64,
}

/// One breach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreachRow {
    pub ticket: String,
    pub policy: String,
    pub clock: String,
    /// When the target was missed.
    pub due: Value,
    /// When itsmd recorded it.
    pub at: Timestamp,
}

/// Open tickets in one state, by age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacklogRow {
    pub state: String,
    /// Count per age bucket, in [`AGE_BUCKETS`] order.
    pub ages: Vec<u64>,
    pub total: u64,
}

/// Age buckets of the backlog, with their upper bound in days.
pub const AGE_BUCKETS: [(&str, i64); 5] = [
    ("<1d", 1),
    ("1-3d", 3),
    ("3-7d", 7),
    ("7-30d", 30),
    (">30d", i64::MAX),
];

/// Tickets opened from one source, of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRow {
    /// The alert source, or how a person or component opened it (api, …).
    pub source: String,
    pub kind: String,
    pub count: u64,
}

/// One escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationRow {
    pub ticket: String,
    /// The level reached.
    pub level: u64,
    /// The group that had the ticket.
    pub from_group: Option<String>,
    /// The group it went to, when it was handed on.
    pub to_group: Option<String>,
    /// Who decided (rule file, person).
    pub by: String,
    pub at: Timestamp,
}

impl Report {
    /// Keeps only section `name` ("all": every one); false for an unknown name.
    pub fn keep(&mut self, name: &str) -> bool {
        if name == "all" {
            return true;
        }
        if !SECTIONS.contains(&name) {
            return false;
        }
        let keep = |section: &str| section == name;
        if !keep("mtta") {
            self.mtta.clear();
        }
        if !keep("mttr") {
            self.mttr.clear();
        }
        if !keep("sla") {
            self.sla.clear();
        }
        if !keep("breaches") {
            self.breaches.clear();
        }
        if !keep("backlog") {
            self.backlog.clear();
        }
        if !keep("volume") {
            self.volume.clear();
        }
        if !keep("escalations") {
            self.escalations.clear();
        }
        self.sections = vec![name.to_string()];
        true
    }
}

/// How long a period is when only its end (or nothing) is given.
pub const DEFAULT_PERIOD: SignedDuration = SignedDuration::from_hours(30 * 24);

/// The period `[from, to)` from query text: `from` and `to` are RFC 3339 instants or dates
/// (UTC midnight); `last` (e.g. "7d") counts back from `to`; `to` defaults to `now`, `from`
/// to 30 days before `to`. Every problem is listed.
pub fn period(
    from: Option<&str>,
    to: Option<&str>,
    last: Option<&str>,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), Vec<String>> {
    let mut problems = Vec::new();
    let mut instant = |name: &str, text: Option<&str>| {
        let text = text?;
        let parsed = text.parse::<Timestamp>().ok().or_else(|| {
            text.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        });
        if parsed.is_none() {
            problems.push(format!(
                "`{name}`: {text:?} is not an instant (2026-01-31T12:00:00Z) or a date (2026-01-31)"
            ));
        }
        parsed
    };
    let (from, to) = (instant("from", from), instant("to", to).unwrap_or(now));
    let back = match last.map(str::parse::<crate::config::duration::Friendly>) {
        Some(Ok(d)) => d.0,
        Some(Err(e)) => {
            problems.push(format!("`last`: {e}"));
            DEFAULT_PERIOD
        }
        None => DEFAULT_PERIOD,
    };
    if from.is_some() && last.is_some() {
        problems.push("give `from` or `last`, not both".into());
    }
    let from = from.unwrap_or_else(|| to.checked_sub(back).unwrap_or(to));
    if problems.is_empty() && from >= to {
        problems.push(format!(
            "the period is empty: from {from} is not before to {to}"
        ));
    }
    if problems.is_empty() {
        Ok((from, to))
    } else {
        Err(problems)
    }
}

/// Computes the report over `[from, to)`; the backlog is taken at `to`.
pub fn compute(
    store: &dyn Store,
    sla: &SlaConfig,
    calendars: &Calendars,
    from: Timestamp,
    to: Timestamp,
) -> Result<Report, StoreError> {
    let within = |t: Timestamp| from <= t && t < to;
    let mut acc = Acc::default();
    for item in store.scan_prefix(Tree::Tickets, &[]) {
        let (_, bytes) = item?;
        let t: Ticket = decode(Tree::Tickets, &bytes)?;
        let history = layout::history(store, t.id)?;
        if within(t.created_at) {
            if let Some(at) = first_response(&history) {
                add_time(&mut acc.mtta, &t, at.duration_since(t.created_at));
            }
            *acc.volume
                .entry((source_of(&t, &history), t.kind().as_str().to_string()))
                .or_default() += 1;
        }
        if let Some(at) = first_resolution(&history)
            && within(at)
        {
            add_time(&mut acc.mttr, &t, at.duration_since(t.created_at));
        }
        acc.compliance(&t, sla, calendars, &within);
        acc.events(&t, &history, &within);
        if t.created_at < to && open_at(&t, &history, to) {
            let state = state_at(&t, &history, to);
            let age = to.duration_since(t.created_at);
            let row = acc.backlog.entry(state).or_insert_with(|| vec![0; 5]);
            let days = age.as_secs() / 86_400;
            let bucket = AGE_BUCKETS.iter().position(|(_, d)| days < *d).unwrap_or(4);
            row[bucket] += 1;
        }
    }
    Ok(acc.finish(from, to))
}

/// Durations per (dimension, value).
type Samples = BTreeMap<(String, String), Vec<SignedDuration>>;

/// Adds one duration under the ticket's priority, group and kind.
fn add_time(samples: &mut Samples, t: &Ticket, d: SignedDuration) {
    for (by, value) in [
        ("priority", t.priority.to_string()),
        ("group", t.group.clone().unwrap_or_else(|| "(none)".into())),
        ("kind", t.kind().as_str().to_string()),
    ] {
        samples.entry((by.into(), value)).or_default().push(d);
    }
}

#[derive(Default)]
struct Acc {
    mtta: Samples,
    mttr: Samples,
    /// (policy, clock) → (ended, met).
    sla: BTreeMap<(String, String), (u64, u64)>,
    breaches: Vec<BreachRow>,
    backlog: BTreeMap<String, Vec<u64>>,
    volume: BTreeMap<(String, String), u64>,
    escalations: Vec<EscalationRow>,
}

impl Acc {
    /// Clocks of `t` that ended in the period, met or missed.
    fn compliance(
        &mut self,
        t: &Ticket,
        sla: &SlaConfig,
        calendars: &Calendars,
        within: &dyn Fn(Timestamp) -> bool,
    ) {
        let Some(policy) = t.sla.policy.as_deref().and_then(|n| sla.policy(n)) else {
            return;
        };
        for (name, track) in &t.sla.clocks {
            let Some(end) = ended_at(&track.timeline) else {
                continue;
            };
            if !within(end) {
                continue;
            }
            let Ok(c) = sla.setup(calendars, policy, name, track.vendor.as_deref()) else {
                continue;
            };
            let Ok(status) = clock::status(&c.target, &c.calendar, &track.timeline, end) else {
                continue;
            };
            let row = self
                .sla
                .entry((policy.name.clone(), name.clone()))
                .or_default();
            row.0 += 1;
            if status.breached_at.is_none() {
                row.1 += 1;
            }
        }
    }

    /// Breaches and escalations recorded in the period.
    fn events(&mut self, t: &Ticket, history: &[HistoryEntry], within: &dyn Fn(Timestamp) -> bool) {
        for e in history.iter().filter(|e| within(e.at)) {
            for c in &e.changes {
                if c.field == "sla_stage" && c.new["stage"] == "breach" {
                    self.breaches.push(BreachRow {
                        ticket: t.id.to_string(),
                        policy: c.new["policy"].as_str().unwrap_or_default().to_string(),
                        clock: c.new["clock"].as_str().unwrap_or_default().to_string(),
                        due: c.new["due"].clone(),
                        at: e.at,
                    });
                }
                if c.field == "escalation" {
                    let group = e.changes.iter().find(|g| g.field == "group");
                    let text = |v: &Value| v.as_str().map(str::to_string);
                    self.escalations.push(EscalationRow {
                        ticket: t.id.to_string(),
                        level: c.new.as_u64().unwrap_or_default(),
                        from_group: group.and_then(|g| text(&g.old)),
                        to_group: group.and_then(|g| text(&g.new)),
                        by: actor_name(&e.actor),
                        at: e.at,
                    });
                }
            }
        }
    }

    fn finish(self, from: Timestamp, to: Timestamp) -> Report {
        let times = |samples: Samples| {
            samples
                .into_iter()
                .map(|((by, value), mut ds)| {
                    ds.sort();
                    let total: i64 = ds.iter().map(|d| d.as_secs()).sum();
                    TimeRow {
                        by,
                        value,
                        count: ds.len() as u64,
                        mean_secs: total / ds.len().max(1) as i64,
                        median_secs: ds[ds.len() / 2].as_secs(),
                    }
                })
                .collect()
        };
        let mut breaches = self.breaches;
        breaches.sort_by_key(|b| b.at);
        let mut escalations = self.escalations;
        escalations.sort_by_key(|e| e.at);
        Report {
            from,
            to,
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
            mtta: times(self.mtta),
            mttr: times(self.mttr),
            sla: self
                .sla
                .into_iter()
                .map(|((policy, clock), (ended, met))| ComplianceRow {
                    policy,
                    clock,
                    ended,
                    met,
                    missed: ended - met,
                    compliance_pct: if ended == 0 {
                        100.0
                    } else {
                        (met as f64 * 1000.0 / ended as f64).round() / 10.0
                    },
                })
                .collect(),
            breaches,
            backlog: self
                .backlog
                .into_iter()
                .map(|(state, ages)| BacklogRow {
                    state,
                    total: ages.iter().sum(),
                    ages,
                })
                .collect(),
            volume: self
                .volume
                .into_iter()
                .map(|((source, kind), count)| VolumeRow {
                    source,
                    kind,
                    count,
                })
                .collect(),
            escalations,
        }
    }
}

/// When a clock's target was settled: its stop, or the resolution it paused for.
fn ended_at(timeline: &[clock::Transition]) -> Option<Timestamp> {
    timeline.iter().find_map(|t| match &t.mark {
        Mark::Stop => Some(t.at),
        Mark::Pause { reason } if reason == "resolved" || reason == "fulfilled" => Some(t.at),
        _ => None,
    })
}

fn state_change(e: &HistoryEntry) -> Option<(&Value, &Value)> {
    e.changes
        .iter()
        .find(|c| c.field == "state")
        .map(|c| (&c.old, &c.new))
}

/// The first response: the ticket leaving `new`, or a person's first public comment.
fn first_response(history: &[HistoryEntry]) -> Option<Timestamp> {
    history.iter().find_map(|e| {
        let left_new = state_change(e).is_some_and(|(old, _)| old == "new");
        let public = matches!(e.actor, Actor::User { .. })
            && e.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("public comment"));
        (left_new || public).then_some(e.at)
    })
}

const RESOLVING: [&str; 3] = ["resolved", "fulfilled", "closed"];

/// The first time the ticket was resolved (fulfilled, or closed without either).
fn first_resolution(history: &[HistoryEntry]) -> Option<Timestamp> {
    history.iter().find_map(|e| {
        state_change(e)
            .filter(|(_, new)| RESOLVING.iter().any(|s| *new == s))
            .map(|_| e.at)
    })
}

/// The ticket's state at `at`, from the history (its current state if nothing changed after).
fn state_at(t: &Ticket, history: &[HistoryEntry], at: Timestamp) -> String {
    let mut state = None;
    for e in history {
        if let Some((old, new)) = state_change(e) {
            if e.at >= at {
                return old.as_str().unwrap_or_default().to_string();
            }
            state = new.as_str().map(str::to_string);
        }
    }
    state.unwrap_or_else(|| t.state.as_str().to_string())
}

fn open_at(t: &Ticket, history: &[HistoryEntry], at: Timestamp) -> bool {
    state_at(t, history, at)
        .parse::<State>()
        .is_ok_and(State::is_open)
}

/// Where a ticket came from: its alert source, else who opened it.
fn source_of(t: &Ticket, history: &[HistoryEntry]) -> String {
    if let Some(link) = &t.alert {
        return link.source.clone();
    }
    match history.first().map(|e| &e.actor) {
        Some(Actor::User { .. }) => "api".into(),
        Some(Actor::Vendor { name }) => format!("vendor:{name}"),
        Some(Actor::Caller { .. }) => "mail".into(),
        Some(Actor::System { component }) => component.clone(),
        Some(Actor::Rule { .. }) | None => "unknown".into(),
    }
}

fn actor_name(a: &Actor) -> String {
    match a {
        Actor::User { name } => name.clone(),
        Actor::Rule { file, hook, .. } => format!("{file} {hook}"),
        Actor::Vendor { name } => format!("vendor:{name}"),
        Actor::Caller { address } => format!("caller:{address}"),
        Actor::System { component } => component.clone(),
    }
}

#[cfg(test)]
mod tests;
