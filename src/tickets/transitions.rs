//! Transitions in the engine: judge them with [`crate::tickets::lifecycle`], handle the
//! votes (N of M) of a service request's approvers and of a change's authority (the same
//! mechanism: a quorum snapshot on entering `awaiting_approval` or `authorize`, one vote per
//! transition out of it), keep `implement` inside the change's window, enter the new state,
//! and resolve the open children of a resolved parent. The rules themselves live in the lifecycle module; this one only
//! gathers the facts and applies the verdict.

use std::collections::HashSet;

use jiff::Timestamp;
use tracing::{debug, info};

use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::store::StoreError;
use crate::store::layout::Outcome;
use crate::tickets::commands::{Done, Failure, Refusal, flow_of, invalid};
use crate::tickets::config::Quorum;
use crate::tickets::lifecycle::Facts;
use crate::tickets::{
    Actor, Approval, ChangeType, HoldReason, LinkRel, Resolution, ReviewOutcome, State, Ticket,
    TicketId, TransitionRequest, lifecycle,
};

/// What entering a state sets besides the state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Entry {
    pub hold_reason: Option<HoldReason>,
    pub resolution: Option<Resolution>,
    pub outcome: Option<ReviewOutcome>,
}

/// Moves `t` to `to`: stamps the time, keeps the hold reason only while on hold, records the
/// resolution (cleared again on reopen) and a change's review outcome.
pub(crate) fn enter(t: &mut Ticket, to: State, at: Timestamp, e: Entry) {
    let from = t.state;
    t.state = to;
    t.process.state_since = Some(at);
    t.process.hold_reason = if to == State::OnHold {
        e.hold_reason
    } else {
        None
    };
    if e.resolution.is_some() {
        t.process.resolution = e.resolution;
    } else if lifecycle::is_reopen(from, to) {
        t.process.resolution = None;
    }
    if let (Some(o), Some(c)) = (e.outcome, t.process.change.as_mut()) {
        c.outcome = Some(o);
    }
}

/// The facts the lifecycle judges a transition of `t` on.
fn facts(t: &Ticket, e: Entry) -> Facts {
    Facts {
        hold_reason: e.hold_reason,
        resolution: e.resolution,
        outcome: e.outcome,
        has_window: t
            .process
            .change
            .as_ref()
            .is_some_and(|c| c.window.is_some()),
        duplicate_of: t
            .process
            .links
            .iter()
            .any(|l| l.rel == LinkRel::DuplicateOf),
    }
}

impl Engine {
    pub(crate) fn transition(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        id: TicketId,
        step: &TransitionRequest,
    ) -> Done {
        if step.reason.trim().is_empty() {
            return Err(invalid(
                "reason",
                "a transition needs a reason; it is recorded in the history",
            )
            .into());
        }
        let before = self.load(txn, id)?;
        let closes_change = before.state == State::Review && step.to == State::Closed;
        // A recorded review's outcome stands for the close's when it gives none.
        let reviewed = before
            .process
            .change
            .as_ref()
            .and_then(|c| c.review.as_ref())
            .map(|r| r.outcome)
            .filter(|_| closes_change);
        if let (Some(found), Some(given)) = (reviewed, step.outcome)
            && found != given
        {
            return Err(invalid(
                "outcome",
                format!(
                    "the post-implementation review found {found}; close with that outcome or none"
                ),
            )
            .into());
        }
        let entry = Entry {
            hold_reason: step.hold_reason,
            resolution: step.resolution,
            outcome: step.outcome.or(reviewed),
        };
        let flow = flow_of(&before);
        lifecycle::validate(flow, before.state, step.to, &facts(&before, entry))
            .map_err(Refusal::from)?;

        let mut after = before.clone();
        let mut reason = step.reason.trim().to_string();
        let mut to = step.to;
        let change_type = before.process.change.as_ref().map(|c| c.change_type);
        match (before.state, step.to) {
            (_, State::AwaitingApproval) => {
                let quorum = self.settings.approval.request();
                after.process.approval = Some(open_vote(
                    Some(&quorum),
                    "[approval] approvers",
                    "a request cannot be sent for approval",
                )?);
            }
            (_, State::Authorize) => {
                let t = change_type.unwrap_or(ChangeType::Normal);
                let risk = before.process.change.as_ref().and_then(|c| c.risk);
                let authority = self.settings.approval.change(t);
                let mut key = format!("[approval.changes.{t}]");
                if let Some(a) = authority
                    && a.depends_on_risk()
                {
                    let Some(r) = risk else {
                        return Err(invalid(
                            "risk",
                            format!(
                                "who authorises a {t} change depends on its risk ({key} has risk                                  levels); set its risk (one of low, medium, high) first"
                            ),
                        )
                        .into());
                    };
                    if a.risk.contains_key(r.as_str()) {
                        key = format!("[approval.changes.{t}.risk.{r}]");
                    }
                }
                let quorum = authority.map(|a| a.quorum(risk, &self.settings.groups));
                let vote = open_vote(
                    quorum.as_ref(),
                    &format!("{key} approvers"),
                    "a change cannot be sent for authorization",
                )?;
                reason = format!(
                    "{reason} (change authority {key}: {} of {})",
                    vote.required,
                    vote.approvers.join(", ")
                );
                after.process.approval = Some(vote);
            }
            (State::Review, State::Closed) => {
                if let Some(note) = crate::tickets::change::review::closing(&before)? {
                    reason = format!("{reason} ({note})");
                }
            }
            (State::AwaitingApproval, State::Approved | State::Rejected)
            | (State::Authorize, State::Scheduled | State::Rejected) => {
                let name = approver(by, &before)?;
                let Some(approval) = after.process.approval.as_mut() else {
                    return Err(Refusal::Forbidden(format!("{id} has no approvers")).into());
                };
                if step.to == State::Rejected {
                    approval.rejected_by = Some(name);
                } else {
                    if !approval.approved_by.insert(name.clone()) {
                        return Err(
                            Refusal::Conflict(format!("{name} has already approved {id}")).into(),
                        );
                    }
                    let (have, need) = (approval.approved_by.len(), approval.required as usize);
                    let what = if before.state == State::Authorize {
                        "authorization"
                    } else {
                        "approval"
                    };
                    reason = format!("{reason} ({what} {have} of {need}, by {name})");
                    if have < need {
                        // A vote short of the quorum: recorded, the ticket keeps waiting.
                        to = before.state;
                    }
                }
            }
            (State::Scheduled, State::Implement) => {
                if let Some(note) = self.outside_window(&before, by, step, ctx.at)? {
                    reason = format!("{reason} ({note})");
                }
            }
            _ => {}
        }
        if to != before.state {
            enter(&mut after, to, ctx.at, entry);
            info!(ticket = %id, from = %before.state, to = %to, "Ticket transitioned.");
        } else {
            info!(ticket = %id, by = %by, "Vote recorded; more are needed.");
        }
        self.commit(txn, ctx, by, Some(&before), after.clone(), reason.clone());
        if matches!(to, State::Resolved | State::Fulfilled) {
            self.resolve_children(txn, ctx, by, &after, &reason)?;
        }
        Ok(crate::alerts::step::Handled {
            ticket: Some(id),
            outcome: Outcome::Updated,
            rule_failures: Vec::new(),
        })
    }

    /// Who has authority over change `t` (overrides its window, records its review): the
    /// approvers its authorization vote had, or, for a change authorised without a vote (a
    /// standard change), the normal changes' authority for its risk in force now.
    pub(crate) fn change_authority(&self, t: &Ticket) -> Vec<String> {
        match &t.process.approval {
            Some(a) => a.approvers.clone(),
            None => self
                .settings
                .approval
                .change(ChangeType::Normal)
                .map(|a| {
                    let risk = t.process.change.as_ref().and_then(|c| c.risk);
                    a.quorum(risk, &self.settings.groups).approvers
                })
                .unwrap_or_default(),
        }
    }

    /// Whether `t` may be implemented at `at`: inside its window, or an emergency change, or
    /// with a `window_override` by one of its approvers (for a standard change, one of the
    /// normal changes' authority). `Some(note)` says why it went ahead outside the window.
    fn outside_window(
        &self,
        t: &Ticket,
        by: &Actor,
        step: &TransitionRequest,
        at: Timestamp,
    ) -> Result<Option<String>, Failure> {
        let Some(change) = &t.process.change else {
            return Ok(None);
        };
        let Some(w) = change.window else {
            return Ok(None);
        };
        if w.start <= at && at < w.end {
            return Ok(None);
        }
        let window = format!("outside its window {} .. {}", w.start, w.end);
        if change.change_type == ChangeType::Emergency {
            return Ok(Some(format!("{window}: emergency change")));
        }
        let Some(why) = step
            .window_override
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty())
        else {
            return Err(Refusal::Conflict(format!(
                "{} is {window} (now {at}); implement it then, or give window_override with a reason (one of its approvers)",
                t.id
            ))
            .into());
        };
        let approvers = self.change_authority(t);
        let name = match by {
            Actor::User { name } if approvers.contains(name) => name,
            _ => {
                return Err(Refusal::Forbidden(format!(
                    "only one of the approvers of {} may implement it outside its window; approvers: {}",
                    t.id,
                    approvers.join(", ")
                ))
                .into());
            }
        };
        info!(ticket = %t.id, by = %name, window_start = %w.start, window_end = %w.end, "Change implemented outside its window by override.");
        Ok(Some(format!("{window}, overridden by {name}: {why}")))
    }

    /// Resolving a parent resolves its open children (and theirs), each with its own history
    /// entry; a child whose lifecycle does not allow it (or needs a resolution the parent's
    /// does not fit) is left as it is.
    fn resolve_children(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        parent: &Ticket,
        why: &str,
    ) -> Result<(), StoreError> {
        let to = parent.state;
        let children = |t: &Ticket| -> Vec<(TicketId, TicketId)> {
            t.process
                .links
                .iter()
                .filter(|l| l.rel == LinkRel::ParentOf)
                .map(|l| (t.id, l.ticket))
                .collect()
        };
        let mut work = children(parent);
        let mut seen = HashSet::from([parent.id]);
        while let Some((pid, cid)) = work.pop() {
            if !seen.insert(cid) {
                continue;
            }
            let Some(child) = txn.ticket(cid)? else {
                continue;
            };
            if !child.state.is_open() {
                continue;
            }
            let flow = flow_of(&child);
            let entry = Entry {
                resolution: lifecycle::resolutions(flow, child.state, to)
                    .and(parent.process.resolution),
                ..Entry::default()
            };
            if let Err(e) = lifecycle::validate(flow, child.state, to, &facts(&child, entry)) {
                debug!(ticket = %cid, parent = %pid, error = %e, "Child left as it is.");
                continue;
            }
            let mut after = child.clone();
            enter(&mut after, to, ctx.at, entry);
            work.extend(children(&after));
            let reason = format!("{to} with parent {pid}: {why}");
            self.commit(txn, ctx, by, Some(&child), after, reason);
            info!(ticket = %cid, parent = %pid, to = %to, "Child ticket followed its parent.");
        }
        Ok(())
    }
}

/// The vote opened on entering `awaiting_approval` or `authorize`: a snapshot of the quorum
/// in force, so a later reload does not change who votes on this ticket.
fn open_vote(quorum: Option<&Quorum>, key: &str, what: &str) -> Result<Approval, Failure> {
    match quorum.filter(|q| !q.approvers.is_empty()) {
        Some(q) => Ok(Approval {
            required: q.required,
            approvers: q.approvers.clone(),
            approved_by: Default::default(),
            rejected_by: None,
        }),
        None => Err(invalid(
            "to",
            format!("no approvers are configured ({key}), so {what}"),
        )
        .into()),
    }
}

/// The approver's name, if `by` is one of the ticket's approvers.
fn approver(by: &Actor, t: &Ticket) -> Result<String, Failure> {
    let Actor::User { name } = by else {
        return Err(Refusal::Forbidden("only a person can approve or reject".into()).into());
    };
    let approvers = t
        .process
        .approval
        .as_ref()
        .map(|a| a.approvers.clone())
        .unwrap_or_default();
    if approvers.contains(name) {
        Ok(name.clone())
    } else {
        Err(Refusal::Forbidden(format!(
            "`{name}` is not an approver of {}; approvers: {}",
            t.id,
            approvers.join(", ")
        ))
        .into())
    }
}
