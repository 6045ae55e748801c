//! Links in the engine: check a link request against the relation's kinds and the tickets'
//! existing links, then write both ends, each with a history entry. The relations and which
//! kinds they join are [`crate::tickets::link`]'s; this module enforces the graph rules (no
//! self-links, no duplicates, one parent and one original at most, no parent cycles).

use tracing::info;

use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::store::layout::Outcome;
use crate::tickets::commands::{Done, Failure, Refusal, invalid};
use crate::tickets::diff::link_added;
use crate::tickets::{Actor, Link, LinkRel, LinkRequest, Ticket, TicketId};

impl Engine {
    pub(crate) fn link(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        id: TicketId,
        req: &LinkRequest,
    ) -> Done {
        let (rel, other) = (req.rel, req.ticket);
        if other == id {
            return Err(invalid("ticket", format!("{id} cannot be linked to itself")).into());
        }
        let a = self.load(txn, id)?;
        let b = self.load(txn, other)?;
        rel.check(a.kind(), b.kind())
            .map_err(|m| invalid("rel", m))?;
        let forward = Link { rel, ticket: other };
        if a.process.links.contains(&forward) {
            return Err(
                Refusal::Conflict(format!("{id} is already {} {other}", rel.as_str())).into(),
            );
        }
        single(&a, rel)?;
        single(&b, rel.inverse())?;
        // The would-be child must not already be an ancestor of the would-be parent.
        match rel {
            LinkRel::ParentOf => self.refuse_cycle(txn, id, other)?,
            LinkRel::ChildOf => self.refuse_cycle(txn, other, id)?,
            _ => {}
        }

        let reason = format!("linked: {id} {} {other}", rel.as_str());
        self.write_link(txn, ctx, by, (a, forward), b, &reason);
        info!(ticket = %id, rel = %rel.as_str(), other = %other, "Tickets linked.");
        Ok(crate::alerts::step::Handled {
            ticket: Some(id),
            outcome: Outcome::Updated,
            rule_failures: Vec::new(),
        })
    }

    /// Writes a link checked by the caller: `forward` on `a`, its inverse on `b`, each end with
    /// a history entry. A link changes nothing but the links, so each end's change is the link
    /// added, without comparing the whole tickets (a problem may hold hundreds of links).
    pub(crate) fn write_link(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        (a, forward): (Ticket, Link),
        b: Ticket,
        reason: &str,
    ) {
        let back = Link {
            rel: forward.rel.inverse(),
            ticket: a.id,
        };
        for (mut t, link) in [(a, forward), (b, back)] {
            t.process.links.push(link);
            let changes = vec![link_added(link)];
            ctx.record(txn, &mut t, by.clone(), changes, Some(reason.to_string()));
            txn.save_ticket(t);
        }
    }

    /// Refuses making `child` a child of `parent` when `child` is `parent` or one of its
    /// ancestors.
    fn refuse_cycle(
        &self,
        txn: &mut Txn<'_>,
        parent: TicketId,
        child: TicketId,
    ) -> Result<(), Failure> {
        let mut at = Some(parent);
        let mut steps = 0;
        while let Some(current) = at {
            if current == child {
                return Err(Refusal::Conflict(format!(
                    "{child} is an ancestor of {parent}; the link would make a cycle"
                ))
                .into());
            }
            steps += 1;
            if steps > 10_000 {
                break;
            }
            at = txn.ticket(current)?.and_then(|t| {
                t.process
                    .links
                    .iter()
                    .find(|l| l.rel == LinkRel::ChildOf)
                    .map(|l| l.ticket)
            });
        }
        Ok(())
    }
}

/// Refuses a second parent or a second original.
fn single(t: &Ticket, rel: LinkRel) -> Result<(), Failure> {
    if !rel.is_single() {
        return Ok(());
    }
    match t.process.links.iter().find(|l| l.rel == rel) {
        Some(l) => Err(Refusal::Conflict(format!(
            "{} is already {} {}; a ticket has one at most",
            t.id,
            rel.as_str(),
            l.ticket
        ))
        .into()),
        None => Ok(()),
    }
}
