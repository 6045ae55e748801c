//! Vendors' callbacks in the engine: a verified callback sets the vendor's reference on the
//! ticket, adds its comment and moves the ticket to the state its status maps to, all as the
//! vendor and all or nothing (an illegal transition refuses the whole callback). Each
//! webhook-id is applied once. A vendor may call back about a ticket assigned to it, or one
//! it was notified about that was never assigned elsewhere; once taken off a ticket
//! (unassigned, or assigned to another vendor) it may not touch it any more. The signature was checked by the API; this module must not
//! see secrets.

use tracing::info;

use crate::alerts::step::Handled;
use crate::engine::Receipt;
use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::store::layout::outbox::{callback_key, vendor_ticket_key};
use crate::store::layout::{Outcome, history_key};
use crate::store::{StoreError, Tree, decode, encode};
use crate::tickets::commands::{Failure, Refusal, invalid};
use crate::tickets::{
    Actor, CommentRequest, HistoryEntry, HoldReason, State, Ticket, TransitionRequest, Visibility,
};
use crate::vendors::VendorCallback;

/// Whether the ticket's history has `vendor` unassigned from it (a change of its vendor
/// away from that name).
fn taken_off(txn: &Txn<'_>, ticket: &Ticket, vendor: &str) -> Result<bool, StoreError> {
    for seq in 1..=ticket.history_len {
        let Some(bytes) = txn.get(Tree::History, &history_key(ticket.id, seq))? else {
            continue;
        };
        let entry: HistoryEntry = decode(Tree::History, &bytes)?;
        if entry
            .changes
            .iter()
            .any(|c| c.field == "vendor" && c.old.as_str() == Some(vendor))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Engine {
    /// The receipt of a callback whose webhook-id was applied before: nothing is done again.
    pub(crate) fn callback_seen(
        &self,
        txn: &mut Txn<'_>,
        cb: &VendorCallback,
    ) -> Result<Option<Receipt>, StoreError> {
        let Some(bytes) = txn.get(
            Tree::VendorCallbacks,
            &callback_key(&cb.vendor, &cb.webhook_id),
        )?
        else {
            return Ok(None);
        };
        let event_id: u64 = decode(Tree::VendorCallbacks, &bytes)?;
        Ok(Some(Receipt {
            event_id,
            ticket: Some(cb.ticket),
            outcome: Outcome::Seen,
        }))
    }

    pub(crate) fn callback(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        cb: &VendorCallback,
    ) -> Result<Result<Handled, Refusal>, StoreError> {
        match self.apply_callback(txn, event, cb) {
            Ok(handled) => Ok(Ok(handled)),
            Err(Failure::Refused(r)) => Ok(Err(r)),
            Err(Failure::Store(e)) => Err(e),
        }
    }

    fn apply_callback(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        cb: &VendorCallback,
    ) -> Result<Handled, Failure> {
        let name = &cb.vendor;
        let Some(config) = self.settings.vendors.get(name) else {
            return Err(Refusal::Forbidden(format!("vendor `{name}` is not configured")).into());
        };
        let id = cb.ticket;
        let before = self.load(txn, id)?;
        let current = before.process.vendor.as_deref();
        if current != Some(name.as_str()) {
            let claimed = txn
                .get(Tree::VendorTickets, &vendor_ticket_key(name, id))?
                .is_some();
            if !claimed {
                return Err(Refusal::Forbidden(format!(
                    "{id} is not assigned to vendor `{name}` and it was never notified about it"
                ))
                .into());
            }
            if current.is_some() || taken_off(txn, &before, name)? {
                return Err(Refusal::Forbidden(format!(
                    "vendor `{name}` was taken off {id}; it is assigned to {}",
                    current.map_or("no vendor".to_string(), |v| format!("vendor `{v}`"))
                ))
                .into());
            }
        }
        let target = match &cb.status {
            Some(word) => match config.status_map.get(word) {
                Some(t) => Some((word, t)),
                None => {
                    let known: Vec<&str> = config.status_map.keys().map(String::as_str).collect();
                    return Err(invalid(
                        "status",
                        format!(
                            "vendor `{name}` has no mapping for status `{word}`; mapped: {}",
                            if known.is_empty() {
                                "(none)".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    )
                    .into());
                }
            },
            None => None,
        };
        let reference = cb
            .reference
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let comment = cb.comment.as_deref().filter(|c| !c.trim().is_empty());
        if reference.is_none() && comment.is_none() && target.is_none() {
            return Err(invalid(
                "body",
                "a callback needs at least one of reference, comment and status",
            )
            .into());
        }
        let ctx = Changes {
            event: event.id,
            at: self.now(),
            rules_version: self.rules.version(),
        };
        let by = Actor::Vendor { name: name.clone() };
        if let Some(r) = reference
            && before.process.vendor_ref.as_deref() != Some(r)
        {
            let mut after = before.clone();
            after.process.vendor_ref = Some(r.to_string());
            self.commit(
                txn,
                &ctx,
                &by,
                Some(&before),
                after,
                format!("vendor {name} reference"),
            );
        }
        if let Some(body) = comment {
            let request = CommentRequest {
                body: body.to_string(),
                visibility: Visibility::Internal,
            };
            self.comment(txn, &ctx, &by, id, &request)?;
        }
        if let Some((word, t)) = target {
            let current = self.load(txn, id)?;
            if current.state != t.to {
                let step = TransitionRequest {
                    to: t.to,
                    reason: format!("vendor {name} reported status `{word}`"),
                    resolution: t.resolution,
                    hold_reason: (t.to == State::OnHold)
                        .then(|| t.hold_reason.unwrap_or(HoldReason::AwaitingVendor)),
                    outcome: None,
                    window_override: None,
                };
                self.transition(txn, &ctx, &by, id, &step)?;
            }
        }
        txn.put(
            Tree::VendorCallbacks,
            callback_key(name, &cb.webhook_id),
            encode(&event.id),
        );
        info!(vendor = %name, ticket = %id, webhook_id = %cb.webhook_id, "Vendor callback applied.");
        Ok(Handled {
            ticket: Some(id),
            outcome: Outcome::Updated,
            rule_failures: Vec::new(),
        })
    }
}
