//! Process reports for a period: MTTA and MTTR, SLA compliance, breaches, escalations and
//! volume, each per group, agent, priority, kind and vendor; trends by day and week; the
//! backlog by state and group with its ages.
//!
//! Owns the figures' definitions and their computation from the aggregates the engine keeps
//! in each commit ([`aggregate`]: per-day buckets, credited to whoever held the ticket when
//! the measured event happened), so a report reads one bucket per day and dimension value,
//! never every ticket. It reads the store and must not write. [`table`] renders a report as
//! text and [`csv`] as CSV; [`api`] serves reports over HTTP and [`cli`] is the `itsmd
//! report` client. docs/reports.md defines every figure.

pub mod aggregate;
pub mod api;
pub mod cli;
pub mod csv;
pub mod table;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sla::calendar_config::Calendars;
use crate::sla::clock;
use crate::sla::clock::Mark;
use crate::sla::policy::SlaConfig;
use crate::store::layout::reports::Bucket;
use crate::store::layout::{reports, search};
use crate::store::{Store, StoreError};
use crate::tickets::{Actor, HistoryEntry, Ticket};

/// The sections a report can have; `all` is every one.
pub const SECTIONS: [&str; 8] = [
    "mtta",
    "mttr",
    "sla",
    "breaches",
    "backlog",
    "volume",
    "escalations",
    "trends",
];

/// A report over `[from, to)`. As JSON, every section asked for is there (`[]` when it
/// has no rows) and no other (see the `Serialize` below).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Report {
    /// Start of the period (inclusive).
    pub from: Timestamp,
    /// End of the period (exclusive); also the instant the backlog is taken at.
    pub to: Timestamp,
    /// The sections computed, in [`SECTIONS`] order (an empty one has no rows).
    pub sections: Vec<String>,
    /// Time to acknowledge of the first acknowledgements made in the period, per dimension.
    #[serde(default)]
    pub mtta: Vec<TimeRow>,
    /// Time to resolve of the first resolutions made in the period, per dimension.
    #[serde(default)]
    pub mttr: Vec<TimeRow>,
    /// Clocks settled in the period (met: ended in target; missed: breached, the ticket
    /// open or not), per policy and clock.
    #[serde(default)]
    pub sla: Vec<ComplianceRow>,
    /// The same per group, agent, priority, kind and vendor.
    #[serde(default)]
    pub sla_by: Vec<ComplianceByRow>,
    /// Every breach fired in the period.
    #[serde(default)]
    pub breaches: Vec<BreachRow>,
    /// Open tickets now, by state, aged at `to`.
    #[serde(default)]
    pub backlog: Vec<BacklogRow>,
    /// Open tickets now, by group, aged at `to`.
    #[serde(default)]
    pub backlog_groups: Vec<BacklogGroupRow>,
    /// Tickets opened in the period, by source and kind.
    #[serde(default)]
    pub volume: Vec<VolumeRow>,
    /// Every escalation in the period.
    #[serde(default)]
    pub escalations: Vec<EscalationRow>,
    /// Per day, then per week (Monday to Sunday) of the period.
    #[serde(default)]
    pub trends: Vec<TrendRow>,
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let asked = |section: &str| self.sections.iter().any(|s| s == section);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("from", &self.from)?;
        map.serialize_entry("to", &self.to)?;
        map.serialize_entry("sections", &self.sections)?;
        if asked("mtta") {
            map.serialize_entry("mtta", &self.mtta)?;
        }
        if asked("mttr") {
            map.serialize_entry("mttr", &self.mttr)?;
        }
        if asked("sla") {
            map.serialize_entry("sla", &self.sla)?;
            map.serialize_entry("sla_by", &self.sla_by)?;
        }
        if asked("breaches") {
            map.serialize_entry("breaches", &self.breaches)?;
        }
        if asked("backlog") {
            map.serialize_entry("backlog", &self.backlog)?;
            map.serialize_entry("backlog_groups", &self.backlog_groups)?;
        }
        if asked("volume") {
            map.serialize_entry("volume", &self.volume)?;
        }
        if asked("escalations") {
            map.serialize_entry("escalations", &self.escalations)?;
        }
        if asked("trends") {
            map.serialize_entry("trends", &self.trends)?;
        }
        map.end()
    }
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

/// SLA compliance of one clock of one policy for one dimension value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceByRow {
    /// group, agent, priority, kind or vendor.
    pub by: String,
    pub value: String,
    pub policy: String,
    pub clock: String,
    pub met: u64,
    pub missed: u64,
    /// met / (met + missed), in percent (100 with nothing settled).
    pub compliance_pct: f64,
}

/// One day's or week's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendRow {
    /// `day` or `week`.
    pub period: String,
    /// Its first instant (UTC midnight; a Monday for a week).
    pub start: Timestamp,
    pub opened: u64,
    pub acknowledged: u64,
    pub mtta_mean_secs: i64,
    pub resolved: u64,
    pub mttr_mean_secs: i64,
    pub met: u64,
    pub missed: u64,
    pub compliance_pct: f64,
}

/// Open tickets of one group, by age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacklogGroupRow {
    pub group: String,
    /// Count per age bucket, in [`AGE_BUCKETS`] order.
    pub ages: Vec<u64>,
    pub total: u64,
}

/// SLA compliance of one clock of one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceRow {
    pub policy: String,
    pub clock: String,
    /// Clocks settled in the period: met + missed.
    pub ended: u64,
    /// Ended within their target in the period.
    pub met: u64,
    /// Breached in the period, whether the ticket is still open or not.
    pub missed: u64,
    /// met / ended, in percent (100 with nothing settled).
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
    /// The group and agent that held the ticket then.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
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
        if !keep("trends") {
            self.trends.clear();
        }
        if !keep("sla") {
            self.sla_by.clear();
        }
        if !keep("backlog") {
            self.backlog_groups.clear();
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
        match parsed {
            None => problems.push(format!(
                "`{name}`: {text:?} is not an instant (2026-01-31T12:00:00Z) or a date (2026-01-31)"
            )),
            // Days are counted from 1970 (the aggregates' buckets); earlier is no period.
            Some(t) if t < Timestamp::UNIX_EPOCH => {
                problems.push(format!(
                    "`{name}`: {text:?} is before 1970-01-01, where reports begin"
                ));
                return None;
            }
            Some(_) => {}
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

/// The days a period covers: every UTC day that overlaps `[from, to)` (first, end).
pub fn days(from: Timestamp, to: Timestamp) -> (u32, u32) {
    let d = reports::day(to);
    let end = if reports::day_start(d) < to { d + 1 } else { d };
    (reports::day(from), end.max(reports::day(from) + 1))
}

/// Computes the report over the days of `[from, to)` ([`days`]) from the aggregates the
/// engine keeps (`aggregate`), reading one bucket per day and dimension value, never a
/// ticket; the backlog is the open tickets now, aged at `to`. The SLA policies and
/// calendars were applied when each clock ended; the parameters stay for callers.
pub fn compute(
    store: &dyn Store,
    _sla: &SlaConfig,
    _calendars: &Calendars,
    from: Timestamp,
    to: Timestamp,
) -> Result<Report, StoreError> {
    use aggregate as a;
    let (first, last) = days(from, to);
    let mut acc = Acc::default();
    for (day, measure, dim, value, bucket) in reports::buckets(store, first, last)? {
        let by = a::dimension(dim).to_string();
        if dim == a::ALL {
            acc.trend(day, measure, &bucket);
        }
        match measure {
            a::ACKNOWLEDGED => acc.mtta.entry((by, value)).or_default().add(&bucket),
            a::RESOLVED => acc.mttr.entry((by, value)).or_default().add(&bucket),
            a::OPENED if dim == a::SOURCE => {
                let (source, kind) = value.split_once(a::SEP).unwrap_or((&value, ""));
                *acc.volume
                    .entry((source.to_string(), kind.to_string()))
                    .or_default() += bucket.n;
            }
            a::MET | a::MISSED => {
                let mut parts = value.splitn(3, a::SEP);
                let (policy, clock, of) = (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                );
                let row = acc.sla.entry((by, of, policy, clock)).or_default();
                if measure == a::MET {
                    row.0 += bucket.n;
                } else {
                    row.1 += bucket.n;
                }
            }
            a::BREACH_ROWS => acc.breaches.extend(
                bucket
                    .rows
                    .into_iter()
                    .filter_map(|r| serde_json::from_value(r).ok()),
            ),
            a::ESCALATION_ROWS => acc.escalations.extend(
                bucket
                    .rows
                    .into_iter()
                    .filter_map(|r| serde_json::from_value(r).ok()),
            ),
            _ => {}
        }
    }
    for (kind, rows) in [
        (search::OPEN_BY_STATE, &mut acc.backlog),
        (search::OPEN_BY_GROUP, &mut acc.backlog_groups),
    ] {
        for (value, created) in search::open_created(store, kind)? {
            let row = rows
                .entry(value)
                .or_insert_with(|| vec![0; AGE_BUCKETS.len()]);
            for ms in created {
                let days = (to.as_millisecond() - ms).max(0) / 86_400_000;
                let bucket = AGE_BUCKETS.iter().position(|(_, d)| days < *d).unwrap_or(4);
                row[bucket] += 1;
            }
        }
    }
    Ok(acc.finish(reports::day_start(first), reports::day_start(last)))
}

/// One trend line's counts as they are added up.
#[derive(Default, Clone)]
struct TrendAcc {
    opened: u64,
    acknowledged: Bucket,
    resolved: Bucket,
    met: u64,
    missed: u64,
}

#[derive(Default)]
struct Acc {
    mtta: BTreeMap<(String, String), Bucket>,
    mttr: BTreeMap<(String, String), Bucket>,
    /// (by, value, policy, clock) → (met, missed).
    sla: BTreeMap<(String, String, String, String), (u64, u64)>,
    breaches: Vec<BreachRow>,
    backlog: BTreeMap<String, Vec<u64>>,
    backlog_groups: BTreeMap<String, Vec<u64>>,
    volume: BTreeMap<(String, String), u64>,
    escalations: Vec<EscalationRow>,
    days: BTreeMap<u32, TrendAcc>,
}

impl Acc {
    fn trend(&mut self, day: u32, measure: u8, b: &Bucket) {
        let t = self.days.entry(day).or_default();
        match measure {
            aggregate::OPENED => t.opened += b.n,
            aggregate::ACKNOWLEDGED => t.acknowledged.add(b),
            aggregate::RESOLVED => t.resolved.add(b),
            aggregate::MET => t.met += b.n,
            aggregate::MISSED => t.missed += b.n,
            _ => {}
        }
    }

    fn finish(self, from: Timestamp, to: Timestamp) -> Report {
        let times = |samples: BTreeMap<(String, String), Bucket>| {
            samples
                .into_iter()
                .map(|((by, value), b)| TimeRow {
                    by,
                    value,
                    count: b.n,
                    mean_secs: mean(&b),
                    median_secs: median(&b),
                })
                .collect()
        };
        let pct = |met: u64, missed: u64| {
            let settled = met + missed;
            if settled == 0 {
                100.0
            } else {
                (met as f64 * 1000.0 / settled as f64).round() / 10.0
            }
        };
        let mut sla = Vec::new();
        let mut sla_by = Vec::new();
        for ((by, value, policy, clock), (met, missed)) in self.sla {
            if by == "all" {
                sla.push(ComplianceRow {
                    policy,
                    clock,
                    ended: met + missed,
                    met,
                    missed,
                    compliance_pct: pct(met, missed),
                });
            } else {
                sla_by.push(ComplianceByRow {
                    by,
                    value,
                    policy,
                    clock,
                    met,
                    missed,
                    compliance_pct: pct(met, missed),
                });
            }
        }
        let mut breaches = self.breaches;
        breaches.sort_by(|a, b| a.at.cmp(&b.at).then(a.ticket.cmp(&b.ticket)));
        let mut escalations = self.escalations;
        escalations.sort_by(|a, b| a.at.cmp(&b.at).then(a.ticket.cmp(&b.ticket)));
        let mut trends = Vec::new();
        let mut weeks: BTreeMap<u32, TrendAcc> = BTreeMap::new();
        for (day, t) in &self.days {
            trends.push(trend_row("day", *day, t, &pct));
            // 1970-01-01 was a Thursday: weeks start on Monday, day 4.
            let monday = (day + 3) / 7 * 7;
            let monday = monday.saturating_sub(3);
            let w = weeks.entry(monday).or_default();
            w.opened += t.opened;
            w.acknowledged.add(&t.acknowledged);
            w.resolved.add(&t.resolved);
            w.met += t.met;
            w.missed += t.missed;
        }
        for (monday, t) in &weeks {
            trends.push(trend_row("week", *monday, t, &pct));
        }
        let backlog_rows = |rows: BTreeMap<String, Vec<u64>>| {
            rows.into_iter()
                .map(|(state, ages)| BacklogRow {
                    state,
                    total: ages.iter().sum(),
                    ages,
                })
                .collect::<Vec<_>>()
        };
        Report {
            from,
            to,
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
            mtta: times(self.mtta),
            mttr: times(self.mttr),
            sla,
            sla_by,
            breaches,
            backlog: backlog_rows(self.backlog),
            backlog_groups: backlog_rows(self.backlog_groups)
                .into_iter()
                .map(|r| BacklogGroupRow {
                    group: r.state,
                    ages: r.ages,
                    total: r.total,
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
            trends,
        }
    }
}

fn trend_row(period: &str, day: u32, t: &TrendAcc, pct: &dyn Fn(u64, u64) -> f64) -> TrendRow {
    TrendRow {
        period: period.into(),
        start: reports::day_start(day),
        opened: t.opened,
        acknowledged: t.acknowledged.n,
        mtta_mean_secs: mean(&t.acknowledged),
        resolved: t.resolved.n,
        mttr_mean_secs: mean(&t.resolved),
        met: t.met,
        missed: t.missed,
        compliance_pct: pct(t.met, t.missed),
    }
}

/// The mean duration of a bucket, in whole seconds (0 when empty).
fn mean(b: &Bucket) -> i64 {
    b.sum / (b.n.max(1) as i64)
}

/// The median duration of a bucket: the middle one, the upper of the two middle ones for an
/// even count (0 when empty).
fn median(b: &Bucket) -> i64 {
    let mut rank = b.n / 2;
    for &(secs, count) in &b.d {
        if rank < count {
            return secs;
        }
        rank -= count;
    }
    0
}

/// When a clock's target was settled: its stop, or the resolution it paused for.
fn ended_at(timeline: &[clock::Transition]) -> Option<Timestamp> {
    timeline.iter().find_map(|t| match &t.mark {
        Mark::Stop => Some(t.at),
        Mark::Pause { reason } if reason == "resolved" || reason == "fulfilled" => Some(t.at),
        _ => None,
    })
}

const RESOLVING: [&str; 3] = ["resolved", "fulfilled", "closed"];

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
