//! Applying decisions to a ticket: validate each, change fields, and describe every change
//! as history, one entry per actor.

use jiff::Timestamp;
use serde_json::{Value, json};
use tracing::warn;

use crate::engine::Settings;
use crate::engine::txn::Txn;
use crate::event::EventId;
use crate::rules::{Decided, Decision};
use crate::tickets::{Actor, FieldChange, HistoryEntry, Level, PriorityMatrix, Ticket};

/// Fields that, once a person or vendor set them, rules leave alone unless forced.
pub(crate) const BY_HAND: [&str; 6] = [
    "title",
    "description",
    "group",
    "assignee",
    "impact",
    "urgency",
];

/// The field a decision sets, when it is one a person may have set by hand.
fn hand_field(d: &Decision) -> Option<&'static str> {
    Some(match d {
        Decision::SetTitle { .. } => "title",
        Decision::SetDescription { .. } => "description",
        Decision::SetGroup { .. } => "group",
        Decision::SetAssignee { .. } => "assignee",
        Decision::SetImpact { .. } => "impact",
        Decision::SetUrgency { .. } => "urgency",
        _ => return None,
    })
}

/// Collects field changes and writes them as history entries grouped by actor.
pub(crate) struct Changes<'a> {
    pub event: EventId,
    pub at: Timestamp,
    pub rules_version: &'a str,
}

impl Changes<'_> {
    /// Writes one history entry if there is anything in it.
    pub fn record(
        &self,
        txn: &mut Txn<'_>,
        ticket: &mut Ticket,
        actor: Actor,
        changes: Vec<FieldChange>,
        reason: Option<String>,
    ) {
        if changes.is_empty() {
            return;
        }
        if matches!(actor, Actor::User { .. } | Actor::Vendor { .. }) {
            for c in &changes {
                if BY_HAND.contains(&c.field.as_str()) {
                    ticket.process.set_by_hand.insert(c.field.clone());
                }
            }
        }
        ticket.updated_at = self.at;
        let entry = HistoryEntry {
            seq: 0,
            at: self.at,
            actor,
            changes,
            reason,
            event: Some(self.event),
            rules_version: Some(self.rules_version.to_string()),
        };
        txn.append_history(ticket, entry);
    }

    /// Applies rule decisions (ignoring those that do not change a ticket field), writing one
    /// history entry per rule file and hook, and recomputing priority when its inputs change.
    /// A group that is not configured becomes the triage group and an assignee outside the
    /// ticket's group is dropped, each said in the entry's reason.
    pub fn apply_rules(
        &self,
        txn: &mut Txn<'_>,
        ticket: &mut Ticket,
        decided: &[Decided],
        settings: &Settings,
    ) {
        let mut i = 0;
        while i < decided.len() {
            let by = &decided[i].by;
            let mut changes = Vec::new();
            let mut notes = Vec::new();
            // The lines of this run's calls: the entry names its line only when there is one.
            let mut lines = std::collections::BTreeSet::new();
            while i < decided.len()
                && decided[i].by.file == by.file
                && decided[i].by.hook == by.hook
            {
                lines.extend(decided[i].by.line);
                if !decided[i].forced
                    && let Some(field) = hand_field(&decided[i].decision)
                    && ticket.process.set_by_hand.contains(field)
                {
                    notes.push(format!(
                        "{field} kept: set by hand (a rule changes it only with ticket.force)"
                    ));
                    i += 1;
                    continue;
                }
                if crate::sla::step::apply_decision(
                    ticket,
                    &decided[i].decision,
                    settings,
                    &mut changes,
                    &mut notes,
                ) {
                    i += 1;
                    continue;
                }
                if crate::mail::outbound::rule_notify::apply_decision(
                    ticket,
                    &decided[i].decision,
                    settings,
                    &mut changes,
                    &mut notes,
                ) {
                    i += 1;
                    continue;
                }
                if let Decision::Notify { vendor } = &decided[i].decision {
                    let rule = Actor::Rule {
                        file: by.file.to_string(),
                        hook: by.hook.to_string(),
                        line: decided[i].by.line,
                    };
                    txn.notice(ticket.id, vendor.clone(), rule);
                }
                if let Some(d) = vetted(ticket, &decided[i].decision, settings, &mut notes) {
                    set_field(ticket, &d, &mut changes);
                }
                i += 1;
            }
            notes.extend(reprioritise(ticket, &settings.matrix, &mut changes));
            // Several calls on several lines: the file and hook, not the first call's line,
            // which would claim every change for it.
            let actor = Actor::Rule {
                file: by.file.to_string(),
                hook: by.hook.to_string(),
                line: match (lines.len(), lines.first()) {
                    (1, Some(&line)) => Some(line),
                    _ => None,
                },
            };
            let reason = (!notes.is_empty()).then(|| notes.join("; "));
            self.record(txn, ticket, actor, changes, reason);
        }
    }
}

/// A rule's decision as the configuration allows it: an unknown group becomes the triage
/// group, an assignee outside the ticket's group is dropped (`None`), each with a note why.
fn vetted(t: &Ticket, d: &Decision, s: &Settings, notes: &mut Vec<String>) -> Option<Decision> {
    match d {
        Decision::SetGroup { value } if !s.groups.contains(value) => {
            warn!(ticket = %t.id, group = %value, "Rule routed to an unknown group; sent to triage.");
            notes.push(format!(
                "group `{value}` is not configured; routed to `{}`",
                s.triage_group
            ));
            Some(Decision::SetGroup {
                value: s.triage_group.clone(),
            })
        }
        Decision::SetAssignee { value }
            if !t
                .group
                .as_deref()
                .is_some_and(|g| s.groups.is_member(g, value)) =>
        {
            notes.push(format!(
                "assignee `{value}` dropped: not a member of group `{}`",
                t.group.as_deref().unwrap_or("(none)")
            ));
            None
        }
        other => Some(other.clone()),
    }
}

pub(crate) fn change(changes: &mut Vec<FieldChange>, field: &str, old: Value, new: Value) {
    if old != new {
        changes.push(FieldChange {
            field: field.to_string(),
            old,
            new,
        });
    }
}

fn set_field(t: &mut Ticket, d: &Decision, changes: &mut Vec<FieldChange>) {
    match d {
        Decision::SetTitle { value } => {
            change(changes, "title", json!(t.title), json!(value));
            t.title = value.clone();
        }
        Decision::SetDescription { value } => {
            change(changes, "description", json!(t.description), json!(value));
            t.description = value.clone();
        }
        Decision::SetGroup { value } => set_group(t, value, changes),
        Decision::SetAssignee { value } => {
            change(changes, "assignee", json!(t.assignee), json!(value));
            t.assignee = Some(value.clone());
        }
        Decision::SetImpact { value } => set_level(&mut t.impact, "impact", *value, changes),
        Decision::SetUrgency { value } => set_level(&mut t.urgency, "urgency", *value, changes),
        Decision::AddTag { value } => {
            if t.tags.insert(value.clone()) {
                changes.push(FieldChange {
                    field: "tags".into(),
                    old: Value::Null,
                    new: json!(value),
                });
            }
        }
        Decision::SetVendor { value } => {
            change(changes, "vendor", json!(t.process.vendor), json!(value));
            t.process.vendor = Some(value.clone());
        }
        // Handled by correlation before a ticket is chosen.
        Decision::SetPriority { value: Some(p) } => {
            change(changes, "priority", json!(t.priority), json!(p));
            change(
                changes,
                "priority_override",
                json!(t.process.priority_override),
                json!(true),
            );
            t.priority = *p;
            t.process.priority_override = true;
        }
        Decision::SetPriority { value: None } => {
            // The matrix takes over again; reprioritise() records the new value.
            change(
                changes,
                "priority_override",
                json!(t.process.priority_override),
                json!(false),
            );
            t.process.priority_override = false;
        }
        Decision::SetCustom { key, value } => {
            let old = t.custom.get(key).cloned().unwrap_or(Value::Null);
            change(changes, &format!("custom.{key}"), old, value.clone());
            if value.is_null() {
                t.custom.remove(key);
            } else {
                t.custom.insert(key.clone(), value.clone());
            }
        }
        // Handled by correlation before a ticket is chosen, or by `Engine::act` afterwards.
        Decision::SetKey { .. }
        | Decision::Suppress { .. }
        | Decision::Transition { .. }
        | Decision::Comment { .. }
        | Decision::Link { .. }
        | Decision::OpenTicket(_)
        | Decision::CapReached { .. } => {}
        // Becomes an outbox row (see `apply_rules`), not a field.
        Decision::Notify { .. } => {}
        // Applied by `mail::outbound::rule_notify::apply_decision` before this.
        Decision::NotifyPeople { .. } => {}
        // Applied by `sla::apply_decision` before this.
        Decision::Escalate
        | Decision::RaisePriority
        | Decision::NotifyLead { .. }
        | Decision::SetSlaPolicy { .. } => {}
        // Chosen by mail intake before the ticket is opened.
        Decision::SetKind { .. } => {}
    }
}

pub(crate) fn set_group(t: &mut Ticket, group: &str, changes: &mut Vec<FieldChange>) {
    change(changes, "group", json!(t.group), json!(group));
    t.group = Some(group.to_string());
}

fn set_level(slot: &mut Level, field: &str, value: Level, changes: &mut Vec<FieldChange>) {
    change(changes, field, json!(slot), json!(value));
    *slot = value;
}

/// Recomputes priority from impact × urgency unless a manual override stands; records the
/// change and returns its reason (the inputs and the matrix) when it moved.
pub(crate) fn reprioritise(
    t: &mut Ticket,
    matrix: &PriorityMatrix,
    changes: &mut Vec<FieldChange>,
) -> Option<String> {
    if t.process.priority_override {
        return None;
    }
    let p = matrix.priority(t.impact, t.urgency);
    if p == t.priority {
        return None;
    }
    change(changes, "priority", json!(t.priority), json!(p));
    t.priority = p;
    Some(matrix.explain(t.impact, t.urgency))
}
