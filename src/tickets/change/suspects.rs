//! "Possibly caused by": an incident opened on a service while a change to that service is
//! being implemented, or while a scheduled change's window covers the moment, is linked to
//! the change (`possibly_caused_by`, the change gets `possibly_causes`) in the same engine
//! commit that opens it, with a history entry on both tickets. Runs once per event, before
//! the rules' on_ticket rounds, so the rules see the link.
//!
//! An incident's service is its `custom.service` (set on create or by a rule), else its
//! alert's `service`, `job` or `source` label (as [`crate::alerts::changes`] reads it).

use tracing::info;

use crate::alerts::step::Handled;
use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::{Event, EventBody};
use crate::store::StoreError;
use crate::store::layout::{self, Outcome};
use crate::tickets::{Actor, Kind, Link, LinkRel, State, Ticket};

/// The service an incident opened by `event` is about.
fn service(event: &Event, t: &Ticket) -> Option<String> {
    if let Some(s) = t.custom.get("service").and_then(|v| v.as_str()) {
        return Some(s.to_string()).filter(|s| !s.is_empty());
    }
    match &event.body {
        EventBody::Alert(a) => ["service", "job", "source"]
            .iter()
            .find_map(|k| a.labels.get(*k).filter(|v| !v.is_empty()).cloned()),
        _ => None,
    }
}

impl Engine {
    /// Links the incident `handled` opened to the changes that may have caused it.
    pub(crate) fn link_suspect_changes(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        handled: &Handled,
    ) -> Result<(), StoreError> {
        let (Outcome::Opened, Some(id)) = (handled.outcome, handled.ticket) else {
            return Ok(());
        };
        if id.kind != Kind::Incident {
            return Ok(());
        }
        let Some(incident) = txn.ticket(id)? else {
            return Ok(());
        };
        let Some(service) = service(event, &incident) else {
            return Ok(());
        };
        let ctx = Changes {
            event: event.id,
            at: self.now(),
            rules_version: self.rules.version(),
        };
        let by = Actor::system("changes");
        let mut candidates = layout::ticket_ids_in_state(&*self.store, State::Implement)?;
        candidates.extend(layout::ticket_ids_in_state(&*self.store, State::Scheduled)?);
        candidates.sort();
        for cid in candidates {
            // Sift on the stored copy, so that changes to other services are not loaded into
            // the batch (whose later steps go over every ticket it loaded); then judge the
            // batch's own view: an earlier event of it may have moved the change.
            let stored = layout::get_ticket(&*self.store, cid)?;
            let service_of = |t: &Ticket| t.process.change.as_ref().and_then(|c| c.service.clone());
            if stored.as_ref().and_then(service_of).as_deref() != Some(service.as_str()) {
                continue;
            }
            let Some(change) = txn.ticket(cid)? else {
                continue;
            };
            let Some(info) = &change.process.change else {
                continue;
            };
            if info.service.as_deref() != Some(service.as_str()) {
                continue;
            }
            let why = match (change.state, info.window) {
                (State::Implement, _) => "being implemented".to_string(),
                (State::Scheduled, Some(w)) if w.start <= ctx.at && ctx.at < w.end => {
                    format!("in its window {} .. {}", w.start, w.end)
                }
                _ => continue,
            };
            let Some(before) = txn.ticket(id)? else {
                continue;
            };
            let forward = Link {
                rel: LinkRel::PossiblyCausedBy,
                ticket: cid,
            };
            if before.process.links.contains(&forward) {
                continue;
            }
            let reason = format!(
                "linked: {id} possibly_caused_by {cid}: opened on service `{service}` while the change was {why}"
            );
            let mut a = before.clone();
            a.process.links.push(forward);
            let mut b = change.clone();
            b.process.links.push(Link {
                rel: LinkRel::PossiblyCauses,
                ticket: id,
            });
            self.commit(txn, &ctx, &by, Some(&before), a, reason.clone());
            self.commit(txn, &ctx, &by, Some(&change), b, reason);
            info!(ticket = %id, change = %cid, service = %service, "Incident linked to the change that may have caused it.");
        }
        Ok(())
    }
}
