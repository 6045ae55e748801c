//! Alerts: correlate by key, run `on_alert`, then open, update or clear an incident.

use serde_json::json;
use tracing::warn;

use super::apply::{Changes, reprioritise, set_group};
use super::batch::Engine;
use super::txn::Txn;
use crate::model::{
    Actor, Alert, AlertLink, AlertStatus, Event, FieldChange, Kind, Level, State, Ticket, TicketId,
};
use crate::records::Outcome;
use crate::rules::{Decision, HookRun, TicketView};
use crate::store::{StoreError, Tree};

/// What handling one event did, for the receipt and the journal.
pub(super) struct Handled {
    pub ticket: Option<TicketId>,
    pub outcome: Outcome,
    pub rule_failures: Vec<String>,
}

impl Engine {
    pub(super) fn alert(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        alert: &Alert,
    ) -> Result<Handled, StoreError> {
        let open = self.open_ticket_for(txn, &alert.key)?;
        let view = match &open {
            Some(t) => TicketView::of(t),
            None => TicketView {
                kind: Kind::Incident.as_str().into(),
                state: State::New.as_str().into(),
                title: alert.summary.clone(),
                key: Some(alert.key.clone()),
                ..TicketView::default()
            },
        };
        let run = self.rules.on_alert(alert, view);
        let rule_failures = self.report_failures(event, &run);

        // A rule may regroup the alert under another key, which may have its own ticket.
        let key = run
            .decisions
            .iter()
            .rev()
            .find_map(|d| match &d.decision {
                Decision::SetKey { value } => Some(value.clone()),
                _ => None,
            })
            .unwrap_or_else(|| alert.key.clone());
        let open = if key == alert.key {
            open
        } else {
            self.open_ticket_for(txn, &key)?
        };

        if run.view.suppressed {
            return Ok(Handled {
                ticket: None,
                outcome: Outcome::Suppressed,
                rule_failures,
            });
        }
        let changes = Changes {
            event: event.id,
            at: self.now(),
            rules_version: self.rules.version(),
        };
        let (mut ticket, outcome) = match (open, alert.status) {
            (Some(mut t), _) => {
                self.touch(txn, &changes, &mut t, event, alert);
                (t, Outcome::Updated)
            }
            (None, AlertStatus::Firing) => (
                self.open_incident(txn, &changes, event, alert, &key)?,
                Outcome::Opened,
            ),
            (None, AlertStatus::Resolved) => {
                return Ok(Handled {
                    ticket: None,
                    outcome: Outcome::Recorded,
                    rule_failures,
                });
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
        txn.save_ticket(ticket);
        Ok(Handled {
            ticket: Some(id),
            outcome,
            rule_failures,
        })
    }

    /// The open ticket an alert with `key` belongs to, if any.
    fn open_ticket_for(&self, txn: &mut Txn<'_>, key: &str) -> Result<Option<Ticket>, StoreError> {
        let Some(bytes) = txn.get(Tree::TicketByKey, key.as_bytes())? else {
            return Ok(None);
        };
        let Some(id) = TicketId::from_key(&bytes) else {
            return Ok(None);
        };
        Ok(txn.ticket(id)?.filter(|t| t.state.is_open()))
    }

    fn open_incident(
        &self,
        txn: &mut Txn<'_>,
        changes: &Changes<'_>,
        event: &Event,
        alert: &Alert,
        key: &str,
    ) -> Result<Ticket, StoreError> {
        let id = txn.next_ticket_id(Kind::Incident)?;
        let now = changes.at;
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
            alert: Some(AlertLink {
                source: alert.source.clone(),
                status: alert.status,
                count: 1,
                first_seen: event.received_at,
                last_seen: event.received_at,
                last_event: event.id,
            }),
            custom: Default::default(),
            process: Default::default(),
            created_at: now,
            updated_at: now,
            history_len: 0,
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
        ];
        let priority = reprioritise(&mut ticket, &self.settings.matrix, &mut c);
        let reason = format!(
            "opened for alert {} from {}{}",
            alert.fingerprint,
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
        txn.put(Tree::TicketByKey, key.as_bytes().to_vec(), id.key());
        Ok(ticket)
    }

    /// Counts another occurrence of the alert on its open ticket.
    fn touch(
        &self,
        txn: &mut Txn<'_>,
        changes: &Changes<'_>,
        t: &mut Ticket,
        event: &Event,
        alert: &Alert,
    ) {
        let link = t.alert.get_or_insert_with(|| AlertLink {
            source: alert.source.clone(),
            status: alert.status,
            count: 0,
            first_seen: event.received_at,
            last_seen: event.received_at,
            last_event: event.id,
        });
        let mut c = Vec::new();
        if alert.status == AlertStatus::Firing {
            c.push(FieldChange {
                field: "alert.count".into(),
                old: json!(link.count),
                new: json!(link.count + 1),
            });
            link.count += 1;
        }
        if link.status != alert.status {
            c.push(FieldChange {
                field: "alert.status".into(),
                old: json!(link.status),
                new: json!(alert.status),
            });
            link.status = alert.status;
        }
        link.last_seen = event.received_at;
        link.last_event = event.id;
        let reason = format!(
            "alert {} from {} {}",
            alert.fingerprint,
            alert.source,
            alert.status.as_str()
        );
        changes.record(txn, t, Actor::system("correlation"), c, Some(reason));
    }

    /// Logs each failed rule with its file and line, and returns them as text for the journal.
    fn report_failures(&self, event: &Event, run: &HookRun) -> Vec<String> {
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
