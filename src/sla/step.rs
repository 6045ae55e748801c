//! SLA clocks in the engine: keep each touched ticket's clock timelines and timer rows in
//! step with the ticket, handle fired timers (re-check, record, run `on_clock`), and apply
//! the escalation decisions rules make.
//!
//! The hook is one place: after every event, [`Engine::sla_after_event`] looks at each ticket
//! the event touched (the Txn's undo log since the savepoint names them), chooses the policy,
//! appends the clock marks its state calls for (`sla::track::reconcile`, level-triggered, so
//! no command, alert or rule path needs its own call) and rewrites the ticket's timer rows
//! when their set changed, all in the event's own Txn. This module must not sleep or read
//! the wall clock: time is the engine's clock, and the clock task delivers due timers.

use jiff::Timestamp;
use rhai::{Dynamic, Map};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::alerts::step::Handled;
use crate::engine::Settings;
use crate::engine::apply::{Changes, change, set_group};
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::{Event, EventBody};
use crate::metrics::SlaLabels;
use crate::rules::{Decision, TicketView};
use crate::sla::clock::Stage;
use crate::sla::track::{Scheduled, Signals};
use crate::sla::{PolicyConfig, clock, track};
use crate::store::layout::Outcome;
use crate::store::layout::sla_timers::Timer;
use crate::store::{StoreError, Tree, Write, WriteBatch, encode};
use crate::tickets::{Action, Actor, Command, FieldChange, Ticket, TicketId, Visibility};

/// Whether a batch stores any new timer row (the clock task must then look again).
pub(crate) fn stores_timers(batch: &WriteBatch) -> bool {
    batch.writes.iter().any(|w| {
        matches!(
            w,
            Write::Put {
                tree: Tree::SlaTimers,
                ..
            }
        )
    })
}

/// The partner vendor the ticket is assigned to (whose underpinning clock runs while the
/// ticket awaits it).
fn vendor_of(t: &Ticket) -> Option<&str> {
    t.process.vendor.as_deref()
}

/// What the event says about responses to ticket `id`, which waits on `vendor`.
fn signals_for<'a>(event: &Event, id: TicketId, vendor: Option<&'a str>) -> Signals<'a> {
    let mut s = Signals {
        vendor,
        ..Signals::default()
    };
    match &event.body {
        EventBody::Alert(a) => s.acknowledged = a.acknowledged,
        EventBody::Command(Command {
            by: Actor::User { .. },
            action: Action::Comment { ticket, comment },
        }) => s.public_comment = *ticket == id && comment.visibility == Visibility::Public,
        _ => {}
    }
    s
}

/// Timer rows as scheduled in the ticket record.
fn timer_of(id: TicketId, s: &Scheduled) -> Timer {
    Timer {
        ticket: id,
        clock: s.clock.clone(),
        stage: s.stage,
        due: s.due,
    }
}

fn stage_name(stage: Stage) -> (&'static str, u8) {
    match stage {
        Stage::Warning(p) => ("warning", p),
        Stage::Breach => ("breach", 100),
    }
}

impl Engine {
    /// The policy `t` runs under now: a rule's pick stands, else kind and priority choose.
    fn policy_for<'s>(&self, s: &'s Settings, t: &Ticket) -> Option<&'s PolicyConfig> {
        if t.sla.pinned {
            t.sla.policy.as_deref().and_then(|n| s.sla.policy(n))
        } else {
            s.sla.choose(t.kind(), t.priority)
        }
    }

    /// Brings the SLA of every ticket `event` touched in step with the ticket.
    pub(crate) fn sla_after_event(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
    ) -> Result<(), StoreError> {
        let settings = self.settings.clone();
        let now = self.now();
        for id in txn.touched_since_savepoint() {
            let Some(mut t) = txn.ticket(id)? else {
                continue;
            };
            let before = t.sla.clone();
            let mut changes = Vec::new();
            let mut notes = Vec::new();
            let policy = self.policy_for(&settings, &t);
            let name = policy.map(|p| p.name.clone());
            if !t.sla.pinned && t.sla.policy != name {
                change(&mut changes, "sla.policy", json!(t.sla.policy), json!(name));
                notes.push(match &name {
                    Some(n) => format!(
                        "SLA policy {n} applies to {} P{}",
                        t.kind().as_str(),
                        t.priority
                    ),
                    None => format!(
                        "no SLA policy applies to {} P{}",
                        t.kind().as_str(),
                        t.priority
                    ),
                });
                t.sla.policy = name;
            }
            if let Some(policy) = policy {
                let vendor = vendor_of(&t).map(str::to_string);
                let signals = signals_for(event, id, vendor.as_deref());
                let (state, hold) = (t.state, t.process.hold_reason);
                for (clock, said) in track::reconcile(&mut t.sla, policy, state, hold, signals, now)
                {
                    change(
                        &mut changes,
                        &format!("sla.{clock}"),
                        Value::Null,
                        json!(said),
                    );
                    notes.push(format!("{clock} clock {said}"));
                }
            }
            // Due times only move when the policy or a timeline does, or when one of the
            // ticket's timers fires (a configuration reload leaves stale rows; each is judged
            // at its due time against the policy in force, then the rest are recomputed).
            let original = txn.ticket_at_savepoint(id)?;
            let fired_here = matches!(&event.body, EventBody::Clock(tm) if tm.ticket == id);
            let moved = fired_here
                || original
                    .is_none_or(|o| o.sla.policy != t.sla.policy || o.sla.clocks != t.sla.clocks);
            let wanted = if moved {
                self.schedule(&settings, policy, &t, now)
            } else {
                t.sla.timers.clone()
            };
            // Only the ticket's earliest timer has a row: when it fires, the schedule is
            // recomputed and the next one gets its row. A fired timer's row is already gone
            // (`clock_fired`), so its successor needs one even if the schedule is unchanged.
            if wanted != t.sla.timers || fired_here {
                if let Some(old) = t.sla.timers.first() {
                    txn.delete(Tree::SlaTimers, timer_of(id, old).key());
                }
                if let Some(next) = wanted.first() {
                    let timer = timer_of(id, next);
                    txn.put(Tree::SlaTimers, timer.key(), encode(&timer));
                }
                t.sla.timers = wanted;
            }
            if t.sla == before {
                continue;
            }
            let ctx = Changes {
                event: event.id,
                at: now,
                rules_version: self.rules.version(),
            };
            // The clocks follow a change this event made: say so in that change's entry.
            let entry = txn
                .latest_history_in_batch(&t)
                .filter(|e| e.event == Some(event.id))
                .cloned();
            match entry {
                Some(mut e) if !changes.is_empty() => {
                    e.changes.extend(changes);
                    txn.amend_latest_history(&t, e);
                }
                _ => {
                    let reason = (!notes.is_empty()).then(|| notes.join("; "));
                    ctx.record(txn, &mut t, Actor::system("sla"), changes, reason);
                }
            }
            txn.save_ticket(t);
        }
        Ok(())
    }

    /// The timers `t` should have: every stage reached but not yet fired (due when it was
    /// reached, so at once) and every stage a running clock has yet to reach, earliest first.
    fn schedule(
        &self,
        s: &Settings,
        policy: Option<&PolicyConfig>,
        t: &Ticket,
        now: Timestamp,
    ) -> Vec<Scheduled> {
        let Some(policy) = policy else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, track) in &t.sla.clocks {
            let vendor = track.vendor.as_deref();
            let stages = s
                .sla
                .setup(&s.calendars, policy, name, vendor)
                .and_then(|c| {
                    let at = |e: clock::ClockError| e.to_string();
                    let status = clock::status(&c.target, &c.calendar, &track.timeline, now);
                    let pending = clock::pending(&c.target, &c.calendar, &track.timeline, now);
                    Ok(status
                        .map_err(at)?
                        .reached
                        .into_iter()
                        .chain(pending.map_err(at)?))
                });
            match stages {
                Ok(stages) => out.extend(stages.filter(|st| !track.fired.contains(&st.stage)).map(
                    |st| Scheduled {
                        clock: name.clone(),
                        stage: st.stage,
                        due: st.at,
                    },
                )),
                Err(e) => {
                    warn!(ticket = %t.id, clock = %name, error = %e, "SLA clock cannot be scheduled; it will not warn or breach.")
                }
            }
        }
        out.sort_by(|a, b| a.due.cmp(&b.due).then(a.clock.cmp(&b.clock)));
        out
    }

    /// A timer fell due. Its row is deleted in this batch, so it fires once; a row whose
    /// stage is not reached at its due instant (the clock paused or the policy changed since)
    /// is stale and only recorded.
    pub(crate) fn clock_fired(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        timer: &Timer,
    ) -> Result<Handled, StoreError> {
        let quiet = |outcome| Handled {
            ticket: Some(timer.ticket),
            outcome,
            rule_failures: Vec::new(),
        };
        let key = timer.key();
        if txn.get(Tree::SlaTimers, &key)?.is_none() {
            debug!(ticket = %timer.ticket, clock = %timer.clock, "Timer already fired or dropped; nothing to do.");
            return Ok(quiet(Outcome::Recorded));
        }
        txn.delete(Tree::SlaTimers, key);
        let Some(mut t) = txn.ticket(timer.ticket)? else {
            return Ok(quiet(Outcome::Recorded));
        };
        let scheduled = Scheduled {
            clock: timer.clock.clone(),
            stage: timer.stage,
            due: timer.due,
        };
        t.sla.timers.retain(|s| *s != scheduled);
        let settings = self.settings.clone();
        let Some(policy) = self.policy_for(&settings, &t) else {
            txn.save_ticket(t);
            return Ok(quiet(Outcome::Recorded));
        };
        let reached = t.sla.clocks.get(&timer.clock).and_then(|track| {
            let c = settings
                .sla
                .setup(
                    &settings.calendars,
                    policy,
                    &timer.clock,
                    track.vendor.as_deref(),
                )
                .ok()?;
            let status = clock::status(&c.target, &c.calendar, &track.timeline, timer.due).ok()?;
            status
                .reached
                .iter()
                .find(|r| r.stage == timer.stage)
                .map(|r| r.at)
        });
        let fired_before = t
            .sla
            .clocks
            .get(&timer.clock)
            .is_some_and(|track| track.fired.contains(&timer.stage));
        let Some(reached_at) = reached.filter(|_| !fired_before) else {
            debug!(ticket = %t.id, clock = %timer.clock, "Stale timer: its stage is not reached; recorded only.");
            txn.save_ticket(t);
            return Ok(quiet(Outcome::Recorded));
        };
        if let Some(track) = t.sla.clocks.get_mut(&timer.clock) {
            track.fired.push(timer.stage);
        }
        let (stage, percent) = stage_name(timer.stage);
        self.metrics
            .sla_stages
            .get_or_create(&SlaLabels {
                policy: policy.name.clone(),
                clock: timer.clock.clone(),
                stage: stage.to_string(),
            })
            .inc();
        info!(ticket = %t.id, policy = %policy.name, clock = %timer.clock, stage, percent, due = %reached_at, "SLA clock reached a stage.");
        let ctx = Changes {
            event: event.id,
            at: self.now(),
            rules_version: self.rules.version(),
        };
        let fired = json!({
            "clock": timer.clock,
            "stage": stage,
            "percent": percent,
            "policy": policy.name,
            "due": reached_at,
        });
        let what = match timer.stage {
            Stage::Warning(p) => format!("reached {p}% of its target"),
            Stage::Breach => "breached its target".to_string(),
        };
        // The entry's `due` keeps the exact instant; the reason is read by people.
        let reason = format!(
            "{} clock ({}) {what} at {}",
            timer.clock,
            policy.name,
            crate::clock::readable(reached_at)
        );
        let c = vec![FieldChange {
            field: "sla_stage".into(),
            old: Value::Null,
            new: fired,
        }];
        ctx.record(txn, &mut t, Actor::system("sla"), c, Some(reason));

        let mut view = TicketView::of(&t);
        view.flapping = t.alert.as_ref().is_some_and(|l| l.flapping_at(ctx.at));
        let mut clock = Map::new();
        clock.insert("name".into(), timer.clock.clone().into());
        clock.insert("stage".into(), stage.into());
        clock.insert("percent".into(), Dynamic::from(i64::from(percent)));
        clock.insert("policy".into(), policy.name.clone().into());
        clock.insert("due".into(), reached_at.to_string().into());
        let vendor = t
            .sla
            .clocks
            .get(&timer.clock)
            .and_then(|c| c.vendor.clone());
        clock.insert(
            "vendor".into(),
            vendor.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
        );
        let mut run = self.rules.on_clock(&self.metrics, clock, view);
        self.vet_vendors(&mut run);
        let rule_failures = self.report_failures(event, &run);
        self.settle(txn, &ctx, t, &run, &rule_failures)?;
        Ok(Handled {
            ticket: Some(timer.ticket),
            outcome: Outcome::Updated,
            rule_failures,
        })
    }
}

/// Applies the escalation and SLA decisions (`Escalate`, `RaisePriority`, `NotifyLead`,
/// `SetSlaPolicy`) to `t`, noting changes and reasons; false for every other decision.
pub(crate) fn apply_decision(
    t: &mut Ticket,
    d: &Decision,
    s: &Settings,
    changes: &mut Vec<FieldChange>,
    notes: &mut Vec<String>,
) -> bool {
    match d {
        Decision::Escalate => {
            let level = t.sla.escalation + 1;
            change(changes, "escalation", json!(t.sla.escalation), json!(level));
            t.sla.escalation = level;
            let target = t
                .group
                .as_deref()
                .and_then(|g| s.groups.get(g))
                .and_then(|g| g.escalate_to.clone())
                .filter(|g| s.groups.contains(g));
            match target {
                Some(to) => {
                    set_group(t, &to, changes);
                    if let Some(a) = t.assignee.clone()
                        && !s.groups.is_member(&to, &a)
                    {
                        change(changes, "assignee", json!(a), Value::Null);
                        t.assignee = None;
                    }
                    notes.push(format!(
                        "escalated to level {level}; handed to group `{to}`"
                    ));
                }
                None => notes.push(format!(
                    "escalated to level {level}; group `{}` has no escalate_to",
                    t.group.as_deref().unwrap_or("(none)")
                )),
            }
            info!(ticket = %t.id, level, group = %t.group.as_deref().unwrap_or("(none)"), "Ticket escalated.");
        }
        Decision::RaisePriority => {
            if t.priority > 1 {
                change(
                    changes,
                    "priority",
                    json!(t.priority),
                    json!(t.priority - 1),
                );
                t.priority -= 1;
                t.process.priority_override = true;
                notes.push(format!("priority raised to {} by escalation", t.priority));
            }
        }
        Decision::NotifyLead { message } => {
            let group = t.group.clone().unwrap_or_default();
            match s.groups.get(&group).and_then(|g| g.lead.clone()) {
                Some(lead) => {
                    changes.push(FieldChange {
                        field: "notified".into(),
                        old: Value::Null,
                        new: json!({ "lead": lead, "group": group, "message": message }),
                    });
                    notes.push(format!("lead `{lead}` of group `{group}` notified"));
                    info!(ticket = %t.id, lead = %lead, group = %group, note = %message, "Group lead notified.");
                }
                None => {
                    warn!(ticket = %t.id, group = %group, "No lead to notify: the group has none configured.")
                }
            }
        }
        Decision::SetSlaPolicy { value } => match s.sla.policy(value) {
            Some(_) => {
                change(changes, "sla.policy", json!(t.sla.policy), json!(value));
                t.sla.policy = Some(value.clone());
                t.sla.pinned = true;
            }
            None => notes.push(format!("SLA policy `{value}` is not configured; ignored")),
        },
        _ => return false,
    }
    true
}
