//! Carrying out what rules ask of a ticket beyond its fields — transitions, comments, links —
//! through the same engine code as the agent API, with the rule as the actor. Must not
//! bypass those checks: a rule gets no more power than an agent.

use serde_json::json;
use tracing::{info, warn};

use crate::engine::apply::{Changes, set_group};
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::metrics::RuleLabels;
use crate::rules::{Decided, Decision, HookRun, OpenTicket};
use crate::store::StoreError;
use crate::tickets::commands::Failure;
use crate::tickets::{
    Actor, CommentRequest, FieldChange, LinkRequest, Ticket, TicketId, TransitionRequest,
    Visibility,
};

impl Engine {
    /// What every hook's outcome goes through on an existing ticket: the rules' field
    /// decisions (one history entry per rule), the triage group when a rule failed, the ticket
    /// saved, then the rules' actions carried out.
    pub(crate) fn settle(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        mut ticket: Ticket,
        run: &HookRun,
        failures: &[String],
    ) -> Result<(), StoreError> {
        ctx.apply_rules(txn, &mut ticket, &run.decisions, &self.settings);
        if !failures.is_empty() {
            let mut c = Vec::new();
            set_group(&mut ticket, &self.settings.triage_group, &mut c);
            let reason = format!("rule failed: {}", failures.join("; "));
            ctx.record(txn, &mut ticket, Actor::system("rules"), c, Some(reason));
        }
        let id = ticket.id;
        txn.save_ticket(ticket);
        self.act(txn, ctx, id, &run.decisions)
    }

    /// Runs the action decisions of one hook run on ticket `id`, in order. A refused action
    /// (an illegal transition, a link to a missing ticket) is noted in the ticket's history,
    /// logged and counted as the rule's error; the rule's other decisions stand.
    pub(crate) fn act(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        id: TicketId,
        decided: &[Decided],
    ) -> Result<(), StoreError> {
        for d in decided.iter().filter(|d| d.decision.is_action()) {
            let by = Actor::Rule {
                file: d.by.file.to_string(),
                hook: d.by.hook.to_string(),
                line: d.by.line,
            };
            let done = match &d.decision {
                Decision::Transition {
                    to,
                    reason,
                    resolution,
                    hold_reason,
                } => {
                    let step = TransitionRequest {
                        to: *to,
                        reason: reason.clone(),
                        resolution: *resolution,
                        hold_reason: *hold_reason,
                        outcome: None,
                        window_override: None,
                    };
                    self.transition(txn, ctx, &by, id, &step)
                }
                Decision::Comment { body, public } => {
                    let visibility = if *public {
                        Visibility::Public
                    } else {
                        Visibility::Internal
                    };
                    self.comment(
                        txn,
                        ctx,
                        &by,
                        id,
                        &CommentRequest {
                            body: body.clone(),
                            visibility,
                        },
                    )
                }
                Decision::Link { rel, ticket } => self.link(
                    txn,
                    ctx,
                    &by,
                    id,
                    &LinkRequest {
                        rel: *rel,
                        ticket: *ticket,
                    },
                ),
                Decision::OpenTicket(open) => self.open_ticket(txn, ctx, &by, id, open),
                Decision::CapReached { what, limit } => {
                    self.cap_reached(txn, ctx, by, id, what, *limit)?;
                    continue;
                }
                _ => continue,
            };
            let refused = match done {
                Ok(_) => continue,
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Refused(r)) => r.to_string(),
            };
            warn!(ticket = %id, rule = %d.by.file, line = d.by.line, error = %refused, "Rule decision refused.");
            let labels = RuleLabels {
                rule: d.by.file.to_string(),
                hook: d.by.hook.to_string(),
            };
            self.metrics.rule_errors.get_or_create(&labels).inc();
            let Some(mut t) = txn.ticket(id)? else {
                continue;
            };
            let note = FieldChange {
                field: "refused_decision".into(),
                old: json!(null),
                new: serde_json::to_value(&d.decision).unwrap_or_default(),
            };
            ctx.record(
                txn,
                &mut t,
                by,
                vec![note],
                Some(format!("refused: {refused}")),
            );
            txn.save_ticket(t);
        }
        Ok(())
    }
}

impl Engine {
    /// A rule reached a per-event cap: said in the ticket's history (and counted as the
    /// rule's error); what it dropped is named by kind and the setting that caps it.
    fn cap_reached(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: Actor,
        id: TicketId,
        what: &str,
        limit: u32,
    ) -> Result<(), StoreError> {
        if let Actor::Rule { file, hook, .. } = &by {
            let labels = RuleLabels {
                rule: file.clone(),
                hook: hook.clone(),
            };
            self.metrics.rule_errors.get_or_create(&labels).inc();
        }
        let Some(mut t) = txn.ticket(id)? else {
            return Ok(());
        };
        let note = FieldChange {
            field: "rule_cap".into(),
            old: json!(null),
            new: json!({ "what": what, "limit": limit }),
        };
        let setting = format!("rules.max_{}_per_event", what.replace(' ', "_"));
        let reason = format!(
            "rule reached the cap of {limit} {what} per event ({setting}); the rest it asked for this event were dropped"
        );
        ctx.record(txn, &mut t, by, vec![note], Some(reason));
        txn.save_ticket(t);
        Ok(())
    }

    /// `open_ticket`: creates the ticket with the same checks as an agent's request, then
    /// links the causing ticket `cause` and every ticket of `open.also` to it. A refused
    /// creation opens nothing; a refused link (a ticket that does not exist) is refused alone.
    fn open_ticket(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        cause: TicketId,
        open: &OpenTicket,
    ) -> Result<crate::alerts::step::Handled, Failure> {
        let opened = self.create(txn, ctx, by, &open.new)?;
        let Some(new) = opened.ticket else {
            return Ok(opened);
        };
        info!(ticket = %new, cause = %cause, rule = %by, "Rule opened a ticket.");
        let mut refused = Vec::new();
        for other in std::iter::once(cause).chain(open.also.iter().copied()) {
            let link = LinkRequest {
                rel: open.rel,
                ticket: new,
            };
            match self.link(txn, ctx, by, other, &link) {
                Ok(_) => {}
                Err(Failure::Store(e)) => return Err(Failure::Store(e)),
                Err(Failure::Refused(r)) => refused.push(format!("{other}: {r}")),
            }
        }
        if refused.is_empty() {
            return Ok(opened);
        }
        Err(Failure::Refused(crate::tickets::commands::invalid(
            "also",
            format!("opened {new} but could not link {}", refused.join("; ")),
        )))
    }
}
