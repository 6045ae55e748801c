//! "Possibly caused by": an incident opened on a service while a change to that service is
//! being implemented, or while a scheduled change's window covers the moment, is linked to
//! the change (`possibly_caused_by`, the change gets `possibly_causes`) in the same engine
//! commit that opens it, with a history entry on both tickets, whoever opened it (an alert,
//! a mail, an agent, a rule's `open_ticket`). Runs before the rules' on_ticket rounds, so the
//! rules see the link, and after them, for incidents a rule opened or gave a service. A
//! change the same batch moved to `implement` counts.
//!
//! An incident's service is its `custom.service` (set on create or by a rule), else its
//! alert's `service`, `job` or `source` label (as [`crate::alerts::changes`] reads it).

use tracing::info;

use std::collections::BTreeSet;

use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::{Event, EventBody};
use crate::store::StoreError;
use crate::store::layout;
use crate::tickets::{Actor, Kind, Link, LinkRel, State, Ticket, TicketId};

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
    /// Links every incident opened by this event (by its source, or by a rule's
    /// `open_ticket`) to the changes that may have caused it. Runs before the rules'
    /// `on_ticket` rounds, so they see the link, and again after them, for the incidents a
    /// rule opened and those whose service a rule set; a link made once is not made again.
    pub(crate) fn link_suspect_changes(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
    ) -> Result<(), StoreError> {
        for id in txn.created_since_savepoint() {
            if id.kind == Kind::Incident {
                self.link_incident(txn, event, id)?;
            }
        }
        Ok(())
    }

    /// Links incident `id` to the changes to its service being implemented now, or
    /// scheduled with a window covering now: those in the store, and those this batch has
    /// (a change moved to `implement` by an earlier event of the batch is not in the store's
    /// state index yet).
    fn link_incident(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        id: TicketId,
    ) -> Result<(), StoreError> {
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
        let in_batch: BTreeSet<TicketId> = txn.batch_ticket_ids(Kind::Change).into_iter().collect();
        let mut candidates: BTreeSet<TicketId> = in_batch.clone();
        candidates.extend(txn.stored_ids_in_state(State::Implement)?);
        candidates.extend(txn.stored_ids_in_state(State::Scheduled)?);
        let service_of = |t: &Ticket| t.process.change.as_ref().and_then(|c| c.service.clone());
        for cid in candidates {
            // Sift a change the batch has not loaded on its stored copy, so that changes to
            // other services are not loaded into the batch (whose later steps go over every
            // ticket it loaded); then judge the batch's own view.
            if !in_batch.contains(&cid) {
                let stored = layout::get_ticket(&*self.store, cid)?;
                if stored.as_ref().and_then(service_of).as_deref() != Some(service.as_str()) {
                    continue;
                }
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
            self.write_link(txn, &ctx, &by, (before, forward), change, &reason);
            info!(ticket = %id, change = %cid, service = %service, "Incident linked to the change that may have caused it.");
        }
        Ok(())
    }
}
