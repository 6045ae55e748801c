//! The report aggregates: what each commit adds to the per-day buckets
//! (`store::layout::reports`), derived from a ticket's history entries as they are written.
//!
//! Every figure is credited to the group, agent (assignee) and priority the ticket had right
//! after the history entry that records the measured event (the acknowledgement, the
//! resolution, the breach), not to where the ticket is now; a clock met is credited as of the
//! entry at or before its end. The same derivation runs in the engine's commit (on the
//! entries of the batch, from the ticket as it was before the batch) and when an old store
//! is indexed (on the whole history, from the values the history says the ticket was opened
//! with), so both give the same buckets.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::sla::calendar_config::Calendars;
use crate::sla::clock;
use crate::sla::policy::SlaConfig;
use crate::store::layout::reports::{Bucket, Marks, bucket_key, day};
use crate::store::{Store, StoreError, Tree, WriteBatch, decode, encode};
use crate::tickets::{Actor, HistoryEntry, Kind, Ticket};

/// Tickets opened (dimension [`SOURCE`]: "source \x1f kind"; the others as usual).
pub const OPENED: u8 = b'o';
/// First acknowledgements, with the time from opening.
pub const ACKNOWLEDGED: u8 = b'a';
/// First resolutions, with the time from opening.
pub const RESOLVED: u8 = b'r';
/// Clocks that ended within their target (value "policy \x1f clock \x1f dimension value").
pub const MET: u8 = b'm';
/// Clocks that breached, whether the ticket is still open or not (value as [`MET`]).
pub const MISSED: u8 = b'x';
/// The day's breaches as rows.
pub const BREACH_ROWS: u8 = b'B';
/// The day's escalations as rows.
pub const ESCALATION_ROWS: u8 = b'E';

/// Every ticket.
pub const ALL: u8 = b'*';
pub const GROUP: u8 = b'g';
pub const AGENT: u8 = b'u';
pub const PRIORITY: u8 = b'p';
pub const KIND: u8 = b'k';
/// The ticket's vendor; for a vendor clock, the vendor whose underpinning contract it is.
pub const VENDOR: u8 = b'v';
pub const SOURCE: u8 = b's';

/// The dimension names the report shows, by byte.
pub fn dimension(dim: u8) -> &'static str {
    match dim {
        ALL => "all",
        GROUP => "group",
        AGENT => "agent",
        PRIORITY => "priority",
        KIND => "kind",
        VENDOR => "vendor",
        SOURCE => "source",
        _ => "unknown",
    }
}

/// What no group or no assignee is shown as.
pub const NONE: &str = "(none)";
/// Separates the parts of a bucket's value.
pub const SEP: char = '\x1f';

/// Additions to buckets, by key.
pub type Deltas = BTreeMap<Vec<u8>, Bucket>;

/// Who held a ticket at a point of its history.
#[derive(Debug, Clone)]
struct Holder {
    group: Option<String>,
    assignee: Option<String>,
    priority: u8,
    vendor: Option<String>,
}

const HELD: [&str; 4] = ["group", "assignee", "priority", "vendor"];

impl Holder {
    fn of(t: &Ticket) -> Holder {
        Holder {
            group: t.group.clone(),
            assignee: t.assignee.clone(),
            priority: t.priority,
            vendor: t.process.vendor.clone(),
        }
    }

    /// The values before `entries` (the whole history): each field's old value at its first
    /// change, or the ticket's value when it never changed.
    fn before(t: &Ticket, entries: &[HistoryEntry]) -> Holder {
        let mut h = Holder::of(t);
        for field in HELD {
            let first = entries
                .iter()
                .flat_map(|e| &e.changes)
                .find(|c| c.field == field);
            if let Some(c) = first {
                h.set(field, &c.old);
            }
        }
        h
    }

    fn set(&mut self, field: &str, v: &Value) {
        let text = v.as_str().map(str::to_string);
        match field {
            "group" => self.group = text,
            "assignee" => self.assignee = text,
            "priority" => {
                if let Some(p) = v.as_u64() {
                    self.priority = p as u8;
                }
            }
            "vendor" => self.vendor = text,
            _ => {}
        }
    }

    fn apply(&mut self, e: &HistoryEntry) {
        for c in &e.changes {
            if HELD.contains(&c.field.as_str()) {
                self.set(&c.field, &c.new);
            }
        }
    }

    /// The (dimension, value) pairs a figure about this holder is added under.
    fn dims(&self, kind: Kind, vendor: Option<&str>) -> Vec<(u8, String)> {
        let mut out = vec![
            (ALL, String::new()),
            (GROUP, self.group.clone().unwrap_or_else(|| NONE.into())),
            (AGENT, self.assignee.clone().unwrap_or_else(|| NONE.into())),
            (PRIORITY, self.priority.to_string()),
            (KIND, kind.as_str().to_string()),
        ];
        if let Some(v) = vendor.or(self.vendor.as_deref()) {
            out.push((VENDOR, v.to_string()));
        }
        out
    }
}

fn add(
    deltas: &mut Deltas,
    day: u32,
    measure: u8,
    dims: &[(u8, String)],
    prefix: &str,
    b: &Bucket,
) {
    for (dim, value) in dims {
        let key = bucket_key(day, measure, *dim, &format!("{prefix}{value}"));
        deltas.entry(key).or_default().add(b);
    }
}

fn row(deltas: &mut Deltas, day: u32, measure: u8, value: Value) {
    let key = bucket_key(day, measure, ALL, "");
    deltas.entry(key).or_default().rows.push(value);
}

/// The policies and calendars that say whether an ended clock met its target.
#[derive(Clone, Copy)]
pub struct SlaSetup<'a> {
    pub config: &'a SlaConfig,
    pub calendars: &'a Calendars,
}

/// Adds to `deltas` what `entries` (the ticket's new history entries, in order) and its
/// clocks' ends since `before` (`None`: the ticket is new, or its whole history is given)
/// count; `marks` says what was counted of it before and is updated.
pub fn facts(
    after: &Ticket,
    before: Option<&Ticket>,
    entries: &[HistoryEntry],
    marks: &mut Marks,
    sla: SlaSetup<'_>,
    deltas: &mut Deltas,
) {
    let kind = after.kind();
    let mut holder = match before {
        Some(b) => Holder::of(b),
        None => Holder::before(after, entries),
    };
    let mut held: Vec<(Timestamp, Holder)> = vec![(Timestamp::MIN, holder.clone())];
    for (i, e) in entries.iter().enumerate() {
        let state = e.changes.iter().find(|c| c.field == "state");
        let left_new = state.is_some_and(|c| c.old == "new");
        let public = matches!(e.actor, Actor::User { .. })
            && e.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("public comment"));
        holder.apply(e);
        let today = day(e.at);
        let dims = holder.dims(kind, None);
        if i == 0 && before.is_none() {
            let opened = day(after.created_at);
            add(deltas, opened, OPENED, &dims, "", &Bucket::one());
            let source = super::source_of(after, entries);
            let volume = [(SOURCE, format!("{source}{SEP}{}", kind.as_str()))];
            add(deltas, opened, OPENED, &volume, "", &Bucket::one());
        }
        let since_open = e.at.duration_since(after.created_at).as_secs();
        if marks.acknowledged.is_none() && (left_new || public) {
            marks.acknowledged = Some(e.at);
            add(
                deltas,
                today,
                ACKNOWLEDGED,
                &dims,
                "",
                &Bucket::duration(since_open),
            );
        }
        let resolving = state.is_some_and(|c| super::RESOLVING.iter().any(|s| c.new == *s));
        if marks.resolved.is_none() && resolving {
            marks.resolved = Some(e.at);
            add(
                deltas,
                today,
                RESOLVED,
                &dims,
                "",
                &Bucket::duration(since_open),
            );
        }
        for c in &e.changes {
            if c.field == "sla_stage" && c.new["stage"] == "breach" {
                let policy = c.new["policy"].as_str().unwrap_or_default();
                let clock = c.new["clock"].as_str().unwrap_or_default();
                let vendor = after
                    .sla
                    .clocks
                    .get(clock)
                    .and_then(|t| t.vendor.as_deref());
                let dims = holder.dims(kind, vendor);
                let prefix = format!("{policy}{SEP}{clock}{SEP}");
                add(deltas, today, MISSED, &dims, &prefix, &Bucket::one());
                let breach = json!({
                    "ticket": after.id.to_string(),
                    "policy": policy,
                    "clock": clock,
                    "due": c.new["due"],
                    "at": e.at,
                    "group": holder.group,
                    "agent": holder.assignee,
                });
                row(deltas, today, BREACH_ROWS, breach);
            }
            if c.field == "escalation" {
                let group = e.changes.iter().find(|g| g.field == "group");
                let escalation = json!({
                    "ticket": after.id.to_string(),
                    "level": c.new.as_u64().unwrap_or_default(),
                    "from_group": group.map(|g| g.old.clone()),
                    "to_group": group.map(|g| g.new.clone()),
                    "by": super::actor_name(&e.actor),
                    "at": e.at,
                });
                row(deltas, today, ESCALATION_ROWS, escalation);
            }
        }
        held.push((e.at, holder.clone()));
    }
    met_clocks(after, before, &held, sla, deltas);
}

/// Clocks that ended since `before` without breaching, credited as of their end.
fn met_clocks(
    after: &Ticket,
    before: Option<&Ticket>,
    held: &[(Timestamp, Holder)],
    sla: SlaSetup<'_>,
    deltas: &mut Deltas,
) {
    let Some(policy) = after
        .sla
        .policy
        .as_deref()
        .and_then(|n| sla.config.policy(n))
    else {
        return;
    };
    for (name, track) in &after.sla.clocks {
        let Some(end) = super::ended_at(&track.timeline) else {
            continue;
        };
        let was = before
            .and_then(|b| b.sla.clocks.get(name))
            .and_then(|t| super::ended_at(&t.timeline));
        if was == Some(end) {
            continue;
        }
        let vendor = track.vendor.as_deref();
        let Ok(setup) = sla.config.setup(sla.calendars, policy, name, vendor) else {
            continue;
        };
        let Ok(status) = clock::status(&setup.target, &setup.calendar, &track.timeline, end) else {
            continue;
        };
        if status.breached_at.is_some() {
            // Counted as missed when its breach fired.
            continue;
        }
        let Some((_, holder)) = held.iter().rev().find(|(at, _)| *at <= end) else {
            continue;
        };
        let prefix = format!("{}{SEP}{name}{SEP}", policy.name);
        let dims = holder.dims(after.kind(), vendor);
        add(deltas, day(end), MET, &dims, &prefix, &Bucket::one());
    }
}

/// Adds `deltas` to the buckets as stored (or as `pending` already has them), into
/// `pending`: what a commit or a rebuild writes.
pub fn merge(
    store: &dyn Store,
    deltas: Deltas,
    pending: &mut BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
) -> Result<(), StoreError> {
    for (key, delta) in deltas {
        let slot = (Tree::ReportBuckets, key);
        let stored = match pending.get(&slot) {
            Some(v) => v.clone(),
            None => store.get(Tree::ReportBuckets, &slot.1)?,
        };
        let mut bucket: Bucket = match stored {
            Some(bytes) => decode(Tree::ReportBuckets, &bytes)?,
            None => Bucket::default(),
        };
        bucket.add(&delta);
        pending.insert(slot, Some(encode(&bucket)));
    }
    Ok(())
}

/// The aggregates of a whole store, built ticket by ticket when it is indexed.
#[derive(Default)]
pub struct Rebuild {
    deltas: Deltas,
}

impl Rebuild {
    /// Counts one ticket from its whole history; its marks go into `batch`.
    pub fn ticket(
        &mut self,
        t: &Ticket,
        history: &[HistoryEntry],
        sla: SlaSetup<'_>,
        batch: &mut WriteBatch,
    ) {
        let mut marks = Marks::default();
        facts(t, None, history, &mut marks, sla, &mut self.deltas);
        if marks != Marks::default() {
            batch.put(Tree::ReportMarks, t.id.key(), encode(&marks));
        }
    }

    /// Writes every bucket into `batch` (over whatever the store holds).
    pub fn finish(self, store: &dyn Store, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let mut pending = BTreeMap::new();
        merge(store, self.deltas, &mut pending)?;
        for ((tree, key), value) in pending {
            if let Some(v) = value {
                batch.put(tree, key, v);
            }
        }
        Ok(())
    }
}
