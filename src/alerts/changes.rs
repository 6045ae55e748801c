//! PagerDuty change events and the incidents they may explain. Each change event becomes a
//! closed standard change (kind change, type standard, review outcome successful): what
//! (`title`), where (`custom.service`), when (`custom.changed_at`), its links and details;
//! indexed by service (`store::layout::changes`). An incident shows the changes recorded
//! for its service within `alerts.changes_window` before it opened (`recent_changes` in
//! `GET /api/v1/tickets/{id}`).
//!
//! An incident's service is its first alert's `service` label, else its `job` label (what
//! Prometheus scrapes), else its `source` label (a PagerDuty trigger's `payload.source`).
//! A change's service is its `payload.source`.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;
use tracing::info;

use crate::alerts::intake::pd_change::ChangeEvent;
use crate::alerts::step::Handled;
use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::{Event, EventBody};
use crate::store::layout::Outcome;
use crate::store::{Store, StoreError, Tree, encode, layout};
use crate::tickets::process::{ChangeInfo, ProcessFields};
use crate::tickets::{
    Actor, ChangeType, FieldChange, Kind, Level, ReviewOutcome, State, Ticket, TicketId,
};

/// Most recent changes shown with one incident.
const MAX_SHOWN: usize = 50;

impl Engine {
    /// Records a change event as a closed standard change.
    pub(crate) fn change_event(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        c: &ChangeEvent,
    ) -> Result<Handled, StoreError> {
        let now = self.now();
        let at = c.timestamp.unwrap_or(now);
        let id = txn.next_ticket_id(Kind::Change)?;
        let mut custom = std::collections::BTreeMap::new();
        custom.insert("changed_at".to_string(), json!(at));
        custom.insert("change_source".to_string(), json!(c.sender));
        if let Some(s) = &c.service {
            custom.insert("service".to_string(), json!(s));
        }
        if !c.links.is_empty() {
            custom.insert("links".to_string(), json!(c.links));
        }
        if let Some(d) = &c.custom_details {
            custom.insert("custom_details".to_string(), d.clone());
        }
        let mut ticket = Ticket {
            id,
            state: State::Closed,
            title: c.summary.trim().to_string(),
            description: describe(c, at),
            group: None,
            assignee: None,
            impact: Level::Low,
            urgency: Level::Low,
            priority: self.settings.matrix.priority(Level::Low, Level::Low),
            tags: Default::default(),
            correlation_key: None,
            key_source: None,
            alert: None,
            custom,
            process: ProcessFields {
                state_since: Some(now),
                change: Some(ChangeInfo {
                    change_type: ChangeType::Standard,
                    window: None,
                    outcome: Some(ReviewOutcome::Successful),
                    ..ChangeInfo::default()
                }),
                ..ProcessFields::default()
            },
            created_at: now,
            updated_at: now,
            history_len: 0,
            sla: Default::default(),
        };
        let changes = Changes {
            event: event.id,
            at: now,
            rules_version: self.rules.version(),
        };
        let fields = vec![
            FieldChange {
                field: "state".into(),
                old: json!(null),
                new: json!(State::Closed),
            },
            FieldChange {
                field: "title".into(),
                old: json!(null),
                new: json!(ticket.title),
            },
        ];
        let reason = format!(
            "recorded from a PagerDuty change event from {}: a standard change, done when it arrived",
            c.sender
        );
        changes.record(
            txn,
            &mut ticket,
            Actor::system("changes"),
            fields,
            Some(reason),
        );
        if let Some(service) = &c.service {
            txn.put(
                Tree::ChangesByService,
                layout::changes::key(service, at, id),
                encode(&()),
            );
        }
        info!(ticket = %id, service = %c.service.as_deref().unwrap_or("(none)"), sender = %c.sender, "Change recorded.");
        txn.save_ticket(ticket);
        Ok(Handled {
            ticket: Some(id),
            outcome: Outcome::Opened,
            rule_failures: Vec::new(),
        })
    }
}

/// The description of a change: what, where, when, links, details.
fn describe(c: &ChangeEvent, at: Timestamp) -> String {
    let mut out = vec![
        format!("What: {}", c.summary.trim()),
        format!(
            "Where: {}",
            c.service.as_deref().unwrap_or("(no source given)")
        ),
        format!("When: {at}"),
    ];
    for l in &c.links {
        out.push(match &l.text {
            Some(t) => format!("Link: {t} <{}>", l.href),
            None => format!("Link: {}", l.href),
        });
    }
    if let Some(d) = &c.custom_details {
        out.push(format!("Details: {d}"));
    }
    out.join("\n")
}

/// One change shown with an incident.
#[derive(Debug, Clone, Serialize)]
pub struct RecentChange {
    pub id: TicketId,
    pub summary: String,
    pub service: String,
    pub changed_at: Timestamp,
}

/// The service an incident is about, read from its first alert's labels.
pub fn service_of(store: &dyn Store, t: &Ticket) -> Result<Option<String>, StoreError> {
    if t.alert.is_none() {
        return Ok(None);
    }
    let (first, _) = layout::ticket_alerts(store, t.id, None, 1)?;
    Ok(first.into_iter().find_map(|e| match e.event.body {
        EventBody::Alert(a) => ["service", "job", "source"]
            .iter()
            .find_map(|k| a.labels.get(*k).filter(|v| !v.is_empty()).cloned()),
        _ => None,
    }))
}

/// The changes recorded for an alert ticket's service within `window` before it opened,
/// oldest first; `None` for a ticket without a service.
pub fn recent_changes(
    store: &dyn Store,
    t: &Ticket,
    window: jiff::SignedDuration,
) -> Result<Option<Vec<RecentChange>>, StoreError> {
    let Some(service) = service_of(store, t)? else {
        return Ok(None);
    };
    let from = t.created_at.checked_sub(window).unwrap_or(t.created_at);
    let ids = layout::changes::between(store, &service, from, t.created_at, MAX_SHOWN)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = layout::get_ticket(store, id)? {
            let changed_at = c
                .custom
                .get("changed_at")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or(c.created_at);
            out.push(RecentChange {
                id,
                summary: c.title,
                service: service.clone(),
                changed_at,
            });
        }
    }
    Ok(Some(out))
}
