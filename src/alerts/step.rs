//! Alerts: find the incident an alert belongs to, run `on_alert`, then open, update, reopen
//! or link an incident. The per-occurrence bookkeeping (counts, cleared alerts, flapping,
//! auto-resolve, acknowledge) is `alert_update.rs`. This module owns which ticket an alert
//! goes to; it must not parse wire formats, and routing is the rules' business.
//!
//! Two indexes find tickets: `TicketByKey` maps a correlation key (possibly set by a rule)
//! to the latest ticket opened for it, `TicketByAlert` maps an alert's own key to the ticket
//! it last went to. A firing alert is matched by correlation key; a resolve or acknowledge
//! goes to the ticket its alert went to, whatever the rules would group it by now.

use jiff::Timestamp;
use serde_json::json;
use tracing::{info, warn};

use crate::alerts::config::Reopen;
use crate::alerts::{Alert, AlertFormat, AlertMember, AlertStatus};
use crate::engine::Receipt;
use crate::engine::apply::{Changes, reprioritise, set_group};
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::rules::{Decision, HookRun, TicketView};
use crate::store::layout::Outcome;
use crate::store::{StoreError, Tree, decode, encode, layout};
use crate::tickets::transitions::{Entry, enter};
use crate::tickets::{
    Actor, AlertLink, FieldChange, HistoryEntry, Kind, Level, Link, LinkRel, Resolution, State,
    Ticket, TicketId, lifecycle,
};

/// What handling one event did, for the receipt and the journal.
pub(crate) struct Handled {
    pub ticket: Option<TicketId>,
    pub outcome: Outcome,
    pub rule_failures: Vec<String>,
}

/// How stale a re-sent alert's `last_seen` may get before a re-send rewrites it.
const SEEN_RESOLUTION: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);

impl Engine {
    /// The cheap path for an unchanged re-send (Prometheus re-sends every active alert each
    /// minute; Alertmanager repeats group notifications): the same alert, with the same start
    /// and status, that a ticket already has. Only its last-seen time is updated; no event,
    /// history or occurrence is written and no rule runs. `None`: process it in full.
    pub(crate) fn resent(
        &self,
        txn: &mut Txn<'_>,
        alert: &Alert,
    ) -> Result<Option<Receipt>, StoreError> {
        if alert.starts_at.is_none() || alert.acknowledged {
            return Ok(None);
        }
        let now = self.now();
        let Some(id) = ticket_id_via(txn, Tree::TicketByAlert, &alert.key)? else {
            return Ok(None);
        };
        // A look first: most re-sends change nothing, and then the ticket is not copied.
        let Some(seen) = txn.peek_ticket(id)? else {
            return Ok(None);
        };
        let Some(link) = seen.alert.as_ref() else {
            return Ok(None);
        };
        // A lapsed flapping flag is a change to record: take the full path.
        if link.flapping_until.is_some_and(|until| until <= now) {
            return Ok(None);
        }
        let Some(member) = link.alerts.get(&alert.key) else {
            return Ok(None);
        };
        if member.status != alert.status || member.starts_at != alert.starts_at {
            return Ok(None);
        }
        let event_id = member.last_event;
        // Prometheus re-sends every active alert each minute: rewriting the ticket for each
        // would cost a ticket write per alert per minute for nothing new. last_seen moves in
        // steps of SEEN_RESOLUTION instead.
        if member.last_seen.duration_until(now) >= SEEN_RESOLUTION {
            drop(seen);
            let Some(mut ticket) = txn.ticket(id)? else {
                return Ok(None);
            };
            if let Some(link) = ticket.alert.as_mut() {
                link.last_seen = now;
                if let Some(member) = link.alerts.get_mut(&alert.key) {
                    member.last_seen = now;
                }
            }
            txn.save_ticket(ticket);
        }
        // A re-send pushes its expiry out.
        self.arm_expiry(txn, alert)?;
        Ok(Some(Receipt {
            event_id,
            ticket: Some(id),
            outcome: Outcome::Seen,
        }))
    }

    pub(crate) fn alert(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        alert: &Alert,
    ) -> Result<Handled, StoreError> {
        let now = self.now();
        // The ticket this very alert went to last time, in any state.
        let known = self.ticket_of_alert(txn, &alert.key)?;
        let candidate = match known.clone().filter(|t| t.state.is_open()) {
            Some(t) => Some(t),
            None => self.open_ticket_for(txn, &alert.key)?,
        };
        // Rules see the ticket the alert will update, or the one it would reopen.
        let reopenable = match &candidate {
            Some(_) => None,
            None if alert.status == AlertStatus::Firing && !alert.acknowledged => {
                match self.latest_ticket_for(txn, &alert.key)? {
                    Some(t) if self.reopenable_since(txn, &t, now, alert)?.is_some() => Some(t),
                    _ => None,
                }
            }
            None => None,
        };
        let fires = alert.status == AlertStatus::Firing && !alert.acknowledged;
        // A resolve or acknowledge goes to the ticket its alert went to, open or not: the
        // rules are shown that ticket, never a fresh one (which would rewrite its title).
        let shown = match candidate.as_ref().or(reopenable.as_ref()) {
            Some(t) => Some(t),
            None if !fires => known.as_ref(),
            None => None,
        };
        let action = if alert.acknowledged {
            "acknowledge"
        } else if alert.status == AlertStatus::Resolved {
            "resolve"
        } else if shown
            .and_then(|t| t.alert.as_ref())
            .and_then(|l| l.alerts.get(&alert.key))
            .is_some_and(|m| m.status == AlertStatus::Firing)
            && candidate.is_some()
        {
            "resend"
        } else {
            "trigger"
        };
        let view = match shown {
            Some(t) => {
                let mut v = TicketView::of(t);
                v.flapping = t.alert.as_ref().is_some_and(|l| l.flapping_at(now));
                v
            }
            None => TicketView {
                kind: Kind::Incident.as_str().into(),
                state: State::New.as_str().into(),
                title: alert.summary.clone(),
                key: Some(alert.key.clone()),
                ..TicketView::default()
            },
        };
        let mut run = self.rules.on_alert(&self.metrics, alert, action, view);
        self.vet_vendors(&mut run);
        let rule_failures = self.report_failures(event, &run);
        if run.view.suppressed {
            return Ok(Handled {
                ticket: None,
                outcome: Outcome::Suppressed,
                rule_failures,
            });
        }

        // A rule may regroup the alert under another key, which may have its own ticket.
        let (key, key_source) = run
            .decisions
            .iter()
            .rev()
            .find_map(|d| match &d.decision {
                Decision::SetKey { value } => Some((value.clone(), format!("rule:{}", d.by.file))),
                _ => None,
            })
            .unwrap_or_else(|| (alert.key.clone(), key_source(alert).to_string()));
        let changes = Changes {
            event: event.id,
            at: now,
            rules_version: self.rules.version(),
        };
        let target = if !fires {
            known.or(candidate)
        } else if key == alert.key {
            candidate
        } else {
            self.open_ticket_for(txn, &key)?
        };
        let (mut ticket, outcome) = match target {
            Some(mut t) => {
                self.update_alert(txn, &changes, &mut t, event, alert);
                (t, Outcome::Updated)
            }
            None if !fires => {
                return Ok(Handled {
                    ticket: None,
                    outcome: Outcome::Recorded,
                    rule_failures,
                });
            }
            None => {
                self.fire_without_open_ticket(txn, &changes, event, alert, &key, &key_source)?
            }
        };
        changes.apply_rules(txn, &mut ticket, &run.decisions, &self.settings);
        if !run.failures.is_empty() {
            let mut c = Vec::new();
            set_group(&mut ticket, &self.settings.triage_group, &mut c);
            let reason = format!("rule failed: {}", rule_failures.join("; "));
            changes.record(txn, &mut ticket, Actor::system("rules"), c, Some(reason));
        }
        let id = ticket.id;
        txn.put(
            Tree::TicketAlerts,
            layout::ticket_alert_key(id, event.id),
            encode(&()),
        );
        if txn.get(Tree::TicketByAlert, alert.key.as_bytes())? != Some(encode(&id)) {
            txn.put(
                Tree::TicketByAlert,
                alert.key.as_bytes().to_vec(),
                encode(&id),
            );
        }
        txn.save_ticket(ticket);
        self.arm_expiry(txn, alert)?;
        self.act(txn, &changes, id, &run.decisions)?;
        Ok(Handled {
            ticket: Some(id),
            outcome,
            rule_failures,
        })
    }

    /// A firing alert whose key has no open ticket: reopen the latest one if it resolved
    /// within the reopen window, else open a new incident, linked to the latest one if any.
    fn fire_without_open_ticket(
        &self,
        txn: &mut Txn<'_>,
        changes: &Changes<'_>,
        event: &Event,
        alert: &Alert,
        key: &str,
        key_source: &str,
    ) -> Result<(Ticket, Outcome), StoreError> {
        let previous = self.latest_ticket_for(txn, key)?;
        if let Some(mut prev) = previous.clone()
            && let Some(resolved_at) = self.reopenable_since(txn, &prev, changes.at, alert)?
            && lifecycle::check(prev.kind(), State::Resolved, State::InProgress).is_ok()
        {
            let c = vec![
                FieldChange {
                    field: "state".into(),
                    old: json!(State::Resolved),
                    new: json!(State::InProgress),
                },
                FieldChange {
                    field: "resolution".into(),
                    old: json!(prev.process.resolution),
                    new: json!(null),
                },
            ];
            enter(&mut prev, State::InProgress, changes.at, Entry::default());
            let alerts = &self.settings.alerts;
            let rule = match alerts.policy_origin(&alert.source, alert.format.as_str(), "reopen") {
                Some(key)
                    if alerts.policy(&alert.source, alert.format.as_str()).reopen
                        == Reopen::Always =>
                {
                    format!("{key} = always")
                }
                _ => format!("within the reopen window of {:#}", alerts.reopen_window),
            };
            let reason = format!(
                "alert {} fired again {:#} after the incident resolved, {rule}",
                alert.key,
                resolved_at
                    .duration_until(changes.at)
                    .round(jiff::Unit::Second)
                    .unwrap_or_default(),
            );
            changes.record(
                txn,
                &mut prev,
                Actor::system("correlation"),
                c,
                Some(reason),
            );
            info!(ticket = %prev.id, alert = %alert.key, "Incident reopened: its alert fired again.");
            self.update_alert(txn, changes, &mut prev, event, alert);
            return Ok((prev, Outcome::Reopened));
        }
        let mut ticket = self.open_incident(txn, changes, event, alert, key, key_source)?;
        if let Some(mut prev) = previous {
            link(
                txn,
                changes,
                &mut ticket,
                LinkRel::RecurrenceOf,
                prev.id,
                "earlier incident of this alert",
            );
            let reason = format!(
                "alert {} fired again after the reopen window; new incident {}",
                alert.key, ticket.id
            );
            link(
                txn,
                changes,
                &mut prev,
                LinkRel::RecurredAs,
                ticket.id,
                &reason,
            );
            txn.save_ticket(prev);
        }
        Ok((ticket, Outcome::Opened))
    }

    /// The open ticket an alert with correlation `key` belongs to, if any.
    fn open_ticket_for(&self, txn: &mut Txn<'_>, key: &str) -> Result<Option<Ticket>, StoreError> {
        Ok(self
            .latest_ticket_for(txn, key)?
            .filter(|t| t.state.is_open()))
    }

    /// The latest ticket opened for correlation `key`, in any state.
    fn latest_ticket_for(
        &self,
        txn: &mut Txn<'_>,
        key: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        self.ticket_via(txn, Tree::TicketByKey, key)
    }

    /// The ticket the alert with its own key `key` last went to, in any state.
    fn ticket_of_alert(&self, txn: &mut Txn<'_>, key: &str) -> Result<Option<Ticket>, StoreError> {
        self.ticket_via(txn, Tree::TicketByAlert, key)
    }

    fn ticket_via(
        &self,
        txn: &mut Txn<'_>,
        index: Tree,
        key: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        match ticket_id_via(txn, index, key)? {
            Some(id) => txn.ticket(id),
            None => Ok(None),
        }
    }

    /// When `t` resolved, if a firing `alert` reopens it at `now`: it is resolved, not as
    /// `duplicate`, `user_error` or `risk_accepted`, and the source's `reopen` policy allows
    /// it (`window`: within `alerts.reopen_window`; `always`; never with `never`).
    fn reopenable_since(
        &self,
        txn: &Txn<'_>,
        t: &Ticket,
        now: Timestamp,
        alert: &Alert,
    ) -> Result<Option<Timestamp>, StoreError> {
        if t.state != State::Resolved
            || matches!(
                t.process.resolution,
                Some(Resolution::Duplicate | Resolution::UserError | Resolution::RiskAccepted)
            )
        {
            return Ok(None);
        }
        let alerts = &self.settings.alerts;
        let window = match alerts.policy(&alert.source, alert.format.as_str()).reopen {
            Reopen::Never => return Ok(None),
            Reopen::Window => alerts.reopen_window,
            Reopen::Always => return self.resolved_at(txn, t),
        };
        Ok(self
            .resolved_at(txn, t)?
            .filter(|at| at.duration_until(now) <= window))
    }

    /// When the ticket last became resolved, read from its history (whoever resolved it).
    fn resolved_at(&self, txn: &Txn<'_>, t: &Ticket) -> Result<Option<Timestamp>, StoreError> {
        let resolved = json!(State::Resolved);
        for seq in (1..=t.history_len).rev() {
            let Some(bytes) = txn.get(Tree::History, &layout::history_key(t.id, seq))? else {
                continue;
            };
            let entry: HistoryEntry = decode(Tree::History, &bytes)?;
            if entry
                .changes
                .iter()
                .any(|c| c.field == "state" && c.new == resolved)
            {
                return Ok(Some(entry.at));
            }
        }
        Ok(None)
    }

    fn open_incident(
        &self,
        txn: &mut Txn<'_>,
        changes: &Changes<'_>,
        event: &Event,
        alert: &Alert,
        key: &str,
        key_source: &str,
    ) -> Result<Ticket, StoreError> {
        let id = txn.next_ticket_id(Kind::Incident)?;
        let now = changes.at;
        let member = AlertMember {
            status: alert.status,
            starts_at: alert.starts_at,
            last_event: event.id,
            last_seen: now,
        };
        let mut ticket = Ticket {
            id,
            state: State::New,
            title: if alert.summary.is_empty() {
                format!("Alert {}", alert.fingerprint)
            } else {
                alert.summary.clone()
            },
            description: alert.description.clone().unwrap_or_default(),
            group: None,
            assignee: None,
            impact: Level::Medium,
            urgency: Level::Medium,
            priority: 0,
            tags: Default::default(),
            correlation_key: Some(key.to_string()),
            key_source: Some(key_source.to_string()),
            alert: Some(AlertLink {
                source: alert.source.clone(),
                status: alert.status,
                count: 1,
                first_seen: now,
                last_seen: now,
                last_event: event.id,
                service: alert.labels.get("service").cloned(),
                alerts: [(alert.key.clone(), member)].into(),
                changes: Vec::new(),
                flapping_until: None,
            }),
            custom: Default::default(),
            process: Default::default(),
            created_at: now,
            updated_at: now,
            history_len: 0,
            sla: Default::default(),
        };
        let mut c = vec![
            FieldChange {
                field: "state".into(),
                old: json!(null),
                new: json!(State::New),
            },
            FieldChange {
                field: "title".into(),
                old: json!(null),
                new: json!(ticket.title),
            },
            FieldChange {
                field: "correlation_key".into(),
                old: json!(null),
                new: json!(key),
            },
            FieldChange {
                field: "key_source".into(),
                old: json!(null),
                new: json!(key_source),
            },
        ];
        // A new incident has no priority before this entry: it reads "— → 3", not "0 → 3".
        let priority = reprioritise(&mut ticket, &self.settings.matrix, &mut c);
        if let Some(p) = c.iter_mut().find(|c| c.field == "priority") {
            p.old = json!(null);
        }
        let reason = format!(
            "opened for alert {} from {}{}",
            alert.key,
            alert.source,
            priority.map(|p| format!("; {p}")).unwrap_or_default()
        );
        changes.record(
            txn,
            &mut ticket,
            Actor::system("correlation"),
            c,
            Some(reason),
        );
        txn.put(Tree::TicketByKey, key.as_bytes().to_vec(), encode(&id));
        Ok(ticket)
    }

    /// Logs each failed rule with its file and line, and returns them as text for the journal.
    pub(crate) fn report_failures(&self, event: &Event, run: &HookRun) -> Vec<String> {
        run.failures
            .iter()
            .map(|f| {
                warn!(
                    event = event.id,
                    rule = %f.file,
                    hook = f.hook,
                    line = f.line,
                    error = %f.message,
                    "Rule failed; its decisions for this event were dropped."
                );
                match f.line {
                    Some(l) => format!("{}:{l}: {}", f.file, f.message),
                    None => format!("{}: {}", f.file, f.message),
                }
            })
            .collect()
    }
}

/// How an alert's own key was made, by its wire format.
fn key_source(alert: &Alert) -> &'static str {
    match alert.format {
        AlertFormat::Pagerduty => "dedup_key",
        AlertFormat::Generic if alert.key != alert.fingerprint => "key",
        _ => "fingerprint",
    }
}

/// Links `t` to `other` as `rel` (once), with a history entry saying why.
fn link(
    txn: &mut Txn<'_>,
    changes: &Changes<'_>,
    t: &mut Ticket,
    rel: LinkRel,
    other: TicketId,
    why: &str,
) {
    let new = Link { rel, ticket: other };
    if t.process.links.contains(&new) {
        return;
    }
    let old = json!(t.process.links);
    t.process.links.push(new);
    let c = vec![FieldChange {
        field: "links".into(),
        old,
        new: json!(t.process.links),
    }];
    changes.record(
        txn,
        t,
        Actor::system("correlation"),
        c,
        Some(why.to_string()),
    );
}

/// The ticket `index` (by alert or by correlation key) names for `key`, if any.
fn ticket_id_via(txn: &Txn<'_>, index: Tree, key: &str) -> Result<Option<TicketId>, StoreError> {
    txn.get(index, key.as_bytes())?
        .map(|bytes| decode(index, &bytes))
        .transpose()
}
