//! One alert occurrence on the ticket it correlated to: count it, track which of the
//! ticket's alerts fire and which cleared, detect flapping, and apply the lifecycle effects
//! alerts have (auto-resolve when all cleared, in_progress on a PagerDuty acknowledge). Every
//! change is history with actor `system/correlation`. A storm of occurrences in one batch is
//! folded into one history entry. This module must not choose the ticket (`alerts.rs` does).

use jiff::Timestamp;
use serde_json::json;
use tracing::info;

use crate::alerts::config::OnResolve;
use crate::alerts::{Alert, AlertMember, AlertStatus};
use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::tickets::transitions::{Entry, enter};
use crate::tickets::{Actor, AlertLink, FieldChange, Resolution, State, Ticket, lifecycle};

fn change(c: &mut Vec<FieldChange>, field: &str, old: serde_json::Value, new: serde_json::Value) {
    if old != new {
        c.push(FieldChange {
            field: field.into(),
            old,
            new,
        });
    }
}

impl Engine {
    /// Records one occurrence of `alert` on `t` and applies its lifecycle effects.
    pub(crate) fn update_alert(
        &self,
        txn: &mut Txn<'_>,
        changes: &Changes<'_>,
        t: &mut Ticket,
        event: &Event,
        alert: &Alert,
    ) {
        let now = changes.at;
        let link = t.alert.get_or_insert_with(|| AlertLink {
            source: alert.source.clone(),
            status: alert.status,
            count: 0,
            first_seen: now,
            last_seen: now,
            last_event: event.id,
            service: None,
            alerts: Default::default(),
            changes: Vec::new(),
            flapping_until: None,
        });
        let mut c = Vec::new();
        let mut why = vec![match alert.expired {
            Some(since) => format!(
                "alert {} from {} expired, not re-sent since {since} (it ended at {})",
                alert.key,
                alert.source,
                alert
                    .ends_at
                    .map_or_else(|| "?".to_string(), |e| e.to_string())
            ),
            None => format!(
                "alert {} from {} {}",
                alert.key,
                alert.source,
                if alert.acknowledged {
                    "acknowledged"
                } else {
                    alert.status.as_str()
                }
            ),
        }];
        let firing_before = link.firing();
        if let Some(until) = link.flapping_until
            && until <= now
        {
            change(&mut c, "alert.flapping_until", json!(until), json!(null));
            link.flapping_until = None;
            why.push(format!(
                "flapping stopped: no state change for {:#}",
                self.settings.alerts.flap_quiet
            ));
        }
        let previous = link.alerts.insert(
            alert.key.clone(),
            AlertMember {
                status: alert.status,
                starts_at: alert.starts_at,
                last_event: event.id,
                last_seen: now,
            },
        );
        let state_changed = previous.is_some_and(|m| m.status != alert.status);
        if alert.status == AlertStatus::Firing && !alert.acknowledged {
            change(
                &mut c,
                "alert.count",
                json!(link.count),
                json!(link.count + 1),
            );
            link.count += 1;
        }
        change(
            &mut c,
            "alert.status",
            json!(link.status),
            json!(alert.status),
        );
        link.status = alert.status;
        change(
            &mut c,
            "alert.firing",
            json!(firing_before),
            json!(link.firing()),
        );
        link.last_seen = now;
        link.last_event = event.id;
        link.service = alert.labels.get("service").cloned();
        if state_changed {
            self.count_state_change(link, now, &mut c, &mut why);
        }
        let reason = why.join("; ");
        if !fold_into_batch_entry(txn, t, &c, event, &reason) {
            changes.record(txn, t, Actor::system("correlation"), c, Some(reason));
        }
        if alert.acknowledged {
            self.move_by_alerts(
                txn,
                changes,
                t,
                State::InProgress,
                None,
                format!("alert {} acknowledged by {}", alert.key, alert.source),
            );
        }
        if alert.status == AlertStatus::Resolved
            && t.state.is_open()
            && t.alert.as_ref().is_some_and(|l| l.firing() == 0)
        {
            let n = t.alert.as_ref().map_or(0, |l| l.alerts.len());
            let policy = self
                .settings
                .alerts
                .policy(&alert.source, alert.format.as_str());
            let why = self
                .settings
                .alerts
                .policy_origin(&alert.source, alert.format.as_str(), "resolve")
                .map_or_else(
                    || "alerts.auto_resolve is on".to_string(),
                    |key| format!("{key} = {}", policy.resolve.as_str()),
                );
            match policy.resolve {
                OnResolve::Resolve => self.move_by_alerts(
                    txn,
                    changes,
                    t,
                    State::Resolved,
                    Some(Resolution::AlertCleared),
                    format!("all {n} alert(s) cleared; {why}"),
                ),
                OnResolve::Comment => {
                    let c = vec![FieldChange {
                        field: "comment".into(),
                        old: json!(null),
                        new: json!(format!("all {n} alert(s) cleared; left open as {why} says")),
                    }];
                    changes.record(
                        txn,
                        t,
                        Actor::system("correlation"),
                        c,
                        Some(format!("all {n} alert(s) cleared; {why}")),
                    );
                }
                OnResolve::Nothing => {}
            }
        }
    }

    /// Counts a firing ↔ resolved change; enough of them within the window flag flapping.
    fn count_state_change(
        &self,
        link: &mut AlertLink,
        now: Timestamp,
        c: &mut Vec<FieldChange>,
        why: &mut Vec<String>,
    ) {
        let policy = &self.settings.alerts;
        link.changes.push(now);
        link.changes
            .retain(|at| at.duration_until(now) <= policy.flap_window);
        let excess = link.changes.len().saturating_sub(policy.flap_changes);
        link.changes.drain(..excess);
        if link.changes.len() < policy.flap_changes {
            return;
        }
        let Ok(until) = now.checked_add(policy.flap_quiet) else {
            return;
        };
        if link.flapping_until.is_none() {
            why.push(format!(
                "flapping: {} state changes within {:#}",
                link.changes.len(),
                policy.flap_window
            ));
        }
        change(
            c,
            "alert.flapping_until",
            json!(link.flapping_until),
            json!(until),
        );
        link.flapping_until = Some(until);
    }

    /// Moves `t` to `to` when its state machine allows it, recording why; otherwise nothing.
    fn move_by_alerts(
        &self,
        txn: &mut Txn<'_>,
        changes: &Changes<'_>,
        t: &mut Ticket,
        to: State,
        resolution: Option<Resolution>,
        reason: String,
    ) {
        if t.state == to || lifecycle::check(t.kind(), t.state, to).is_err() {
            return;
        }
        // Acknowledging only starts work on a new incident; it does not take one off hold.
        if to == State::InProgress && t.state != State::New {
            return;
        }
        let (from, resolved_as) = (t.state, t.process.resolution);
        info!(ticket = %t.id, from = %from, to = %to, reason = %reason, "Ticket moved by its alerts.");
        enter(
            t,
            to,
            changes.at,
            Entry {
                resolution,
                ..Entry::default()
            },
        );
        let mut c = Vec::new();
        change(&mut c, "state", json!(from), json!(to));
        change(
            &mut c,
            "resolution",
            json!(resolved_as),
            json!(t.process.resolution),
        );
        changes.record(txn, t, Actor::system("correlation"), c, Some(reason));
    }
}

/// A storm: when this occurrence only bumps the count and the ticket's latest entry, written
/// in this batch, is a count-only correlation entry too, that entry absorbs it. Returns
/// whether it did.
fn fold_into_batch_entry(
    txn: &mut Txn<'_>,
    t: &Ticket,
    c: &[FieldChange],
    event: &Event,
    reason: &str,
) -> bool {
    let count_only = |c: &[FieldChange]| c.len() == 1 && c[0].field == "alert.count";
    if !count_only(c) {
        return false;
    }
    let Some(last) = txn.latest_history_in_batch(t) else {
        return false;
    };
    if last.actor != Actor::system("correlation") || !count_only(&last.changes) {
        return false;
    }
    let mut entry = last.clone();
    entry.changes[0].new = c[0].new.clone();
    let first = entry.event.unwrap_or(event.id);
    entry.reason = Some(format!(
        "{reason}; folded with the occurrences since event {first} in one batch"
    ));
    txn.amend_latest_history(t, entry);
    true
}
