//! The post-implementation review in the engine: recorded on a change in `review` (who,
//! when, outcome, notes), once, by its change authority (the approvers of its vote, or the
//! normal changes' authority for a standard change); an emergency change cannot close without it, and closing
//! takes the review's outcome when the transition gives none.

use tracing::info;

use crate::alerts::step::Handled;
use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::store::layout::Outcome;
use crate::tickets::commands::{Done, Refusal, invalid};
use crate::tickets::{Actor, ChangeType, Review, ReviewRequest, State, Ticket, TicketId};

impl Engine {
    pub(crate) fn review(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        id: TicketId,
        r: &ReviewRequest,
    ) -> Done {
        if r.notes.trim().is_empty() {
            return Err(invalid(
                "notes",
                "a post-implementation review needs notes: what was found and learnt",
            )
            .into());
        }
        let before = self.load(txn, id)?;
        let Some(change) = &before.process.change else {
            return Err(Refusal::Conflict(format!(
                "{id} is not a change; only changes have a post-implementation review"
            ))
            .into());
        };
        let authority = self.change_authority(&before);
        if !matches!(by, Actor::User { name } if authority.contains(name)) {
            return Err(Refusal::Forbidden(format!(
                "only the change authority of {id} records its post-implementation review; {}",
                if authority.is_empty() {
                    "none is configured ([approval.changes.normal])".to_string()
                } else {
                    format!("authority: {}", authority.join(", "))
                }
            ))
            .into());
        }
        if let Some(done) = &change.review {
            return Err(Refusal::Conflict(format!(
                "{id} was already reviewed at {} ({})",
                done.at, done.outcome
            ))
            .into());
        }
        if before.state != State::Review {
            return Err(Refusal::Conflict(format!(
                "{id} is {}; the post-implementation review is recorded while the change is in review",
                before.state
            ))
            .into());
        }
        let mut after = before.clone();
        if let Some(c) = after.process.change.as_mut() {
            c.outcome = Some(r.outcome);
            c.review = Some(Review {
                by: by.clone(),
                at: ctx.at,
                outcome: r.outcome,
                notes: r.notes.trim().to_string(),
            });
        }
        let reason = format!("post-implementation review by {}: {}", who(by), r.outcome);
        self.commit(txn, ctx, by, Some(&before), after, reason);
        info!(ticket = %id, outcome = %r.outcome, "Post-implementation review recorded.");
        Ok(Handled {
            ticket: Some(id),
            outcome: Outcome::Updated,
            rule_failures: Vec::new(),
        })
    }
}

/// A short name of who acted, for history reasons.
fn who(by: &Actor) -> String {
    match by {
        Actor::User { name } => name.clone(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| {
                ["component", "file", "name", "address"]
                    .iter()
                    .find_map(|k| v[*k].as_str().map(str::to_string))
            })
            .unwrap_or_else(|| "itsmd".into()),
    }
}

/// What closing `t` from review needs beyond the lifecycle's checks: an emergency change's
/// review. `Ok(Some(note))` says, for the history, which review the close rests on.
pub(crate) fn closing(t: &Ticket) -> Result<Option<String>, Refusal> {
    let Some(change) = &t.process.change else {
        return Ok(None);
    };
    match (&change.review, change.change_type) {
        (Some(r), _) => Ok(Some(format!(
            "post-implementation review by {} at {}: {}",
            who(&r.by),
            r.at,
            r.outcome
        ))),
        (None, ChangeType::Emergency) => Err(invalid(
            "review",
            format!(
                "an emergency change closes only after its post-implementation review: \
                 POST /api/v1/tickets/{}/review with outcome and notes",
                t.id
            ),
        )),
        (None, _) => Ok(None),
    }
}
