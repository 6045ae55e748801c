//! Agents' commands in the engine: dispatch, create, update and comment (transitions, links and
//! auto-close have their own modules). Every command is checked against the lifecycle and the
//! people configuration; a refused one answers with a [`Refusal`] and the batch rolls back all
//! it did, so it leaves no trace. Changes are made on a copy of the ticket, then described as
//! history by comparing before and after. This module must not serve HTTP or read the wall
//! clock: time is the engine's clock.

use tracing::info;

use crate::alerts::step::Handled;
use crate::engine::apply::{Changes, reprioritise};
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::store::layout::Outcome;
use crate::store::{StoreError, Tree, encode, layout};
use crate::tickets::diff::diff;
use crate::tickets::lifecycle::{IllegalTransition, TransitionError, Unmet};
use crate::tickets::{
    Action, Actor, Command, Comment, CommentRequest, Flow, Kind, Level, NewTicket, ProcessFields,
    State, Ticket, TicketId, TicketUpdate, Visibility, Window,
};

/// Why a command was refused. Nothing of a refused command is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("ticket {0} does not exist")]
    NotFound(TicketId),
    /// Not a transition of the ticket's state machine; lists the allowed targets.
    #[error(transparent)]
    Illegal(IllegalTransition),
    /// Invalid input, every problem with the field it concerns.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Unmet>),
    /// The actor may not do this (e.g. approve without being an approver).
    #[error("{0}")]
    Forbidden(String),
    /// The ticket's current state does not allow it (e.g. a link that exists already).
    #[error("{0}")]
    Conflict(String),
}

impl From<TransitionError> for Refusal {
    fn from(e: TransitionError) -> Refusal {
        match e {
            TransitionError::Illegal(i) => Refusal::Illegal(i),
            TransitionError::Unmet(u) => Refusal::Invalid(u),
        }
    }
}

/// A command handler's failure: refused (the sender's fault) or a store error (the batch's).
pub(crate) enum Failure {
    Store(StoreError),
    Refused(Refusal),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::Refused(r)
    }
}

pub(crate) type Done = Result<Handled, Failure>;

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::Invalid(vec![Unmet {
        field: field.into(),
        message: message.into(),
    }])
}

/// Collects every problem of a command's input, so all are reported at once.
#[derive(Default)]
pub(crate) struct Problems(Vec<Unmet>);

impl Problems {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(Unmet {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn finish(self) -> Result<(), Refusal> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Invalid(self.0))
        }
    }
}

/// The state machine a ticket follows.
pub(crate) fn flow_of(t: &Ticket) -> Flow {
    Flow::of(t.kind(), t.process.change.as_ref().map(|c| c.change_type))
}

fn updated(id: TicketId) -> Handled {
    Handled {
        ticket: Some(id),
        outcome: Outcome::Updated,
        rule_failures: Vec::new(),
    }
}

impl Engine {
    /// Runs one command. `Ok(Err(_))` is a refusal: the caller rolls the batch back to before
    /// the event.
    pub(crate) fn command(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        command: &Command,
    ) -> Result<Result<Handled, Refusal>, StoreError> {
        let ctx = Changes {
            event: event.id,
            at: self.now(),
            rules_version: self.rules.version(),
        };
        let by = &command.by;
        let done = match &command.action {
            Action::Create(new) => self.create(txn, &ctx, by, new),
            Action::Update {
                ticket,
                fields,
                if_assignee,
            } => self.update(txn, &ctx, by, *ticket, fields, if_assignee.as_deref()),
            Action::Transition { ticket, step } => self.transition(txn, &ctx, by, *ticket, step),
            Action::Comment { ticket, comment } => self.comment(txn, &ctx, by, *ticket, comment),
            Action::Link { ticket, link } => self.link(txn, &ctx, by, *ticket, link),
            Action::Review { ticket, review } => self.review(txn, &ctx, by, *ticket, review),
            Action::AutoClose => self.auto_close(txn, &ctx),
        };
        match done {
            Ok(handled) => Ok(Ok(handled)),
            Err(Failure::Refused(r)) => Ok(Err(r)),
            Err(Failure::Store(e)) => Err(e),
        }
    }

    pub(crate) fn load(&self, txn: &mut Txn<'_>, id: TicketId) -> Result<Ticket, Failure> {
        Ok(txn.ticket(id)?.ok_or(Refusal::NotFound(id))?)
    }

    /// Records the difference between `before` and `after` as one history entry and keeps
    /// `after` as the ticket.
    pub(crate) fn commit(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        before: Option<&Ticket>,
        mut after: Ticket,
        reason: String,
    ) {
        let changes = diff(before, &after);
        ctx.record(txn, &mut after, by.clone(), changes, Some(reason));
        txn.save_ticket(after);
    }

    fn check_group(&self, group: &str, p: &mut Problems) {
        if !self.settings.groups.contains(group) {
            p.add(
                "group",
                format!(
                    "unknown group `{group}`; configured groups: {}",
                    self.settings.groups.names()
                ),
            );
        }
    }

    fn check_assignee(&self, group: &str, assignee: &str, p: &mut Problems) {
        if self.settings.groups.contains(group) && !self.settings.groups.is_member(group, assignee)
        {
            p.add(
                "assignee",
                format!("`{assignee}` is not a member of group `{group}`"),
            );
        }
    }

    pub(crate) fn create(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        new: &NewTicket,
    ) -> Done {
        let mut p = Problems::default();
        if new.title.trim().is_empty() {
            p.add("title", "a ticket needs a title");
        }
        // An unrouted ticket would sit unseen: without a group it goes to triage.
        let group = new
            .group
            .clone()
            .unwrap_or_else(|| self.settings.triage_group.clone());
        self.check_group(&group, &mut p);
        if let Some(a) = &new.assignee {
            self.check_assignee(&group, a, &mut p);
        }
        if let Some(prio) = new.priority {
            check_priority(prio, &mut p);
        }
        if new.kind != Kind::Change {
            if new.change_type.is_some() {
                p.add("change_type", "only changes have a change type");
            }
            if new.window.is_some() {
                p.add("window", "only changes have a planned window");
            }
        }
        if let Some(w) = &new.window {
            check_window(w, &mut p);
        }
        let (change, change_note) = self.new_change(new, &mut p);
        check_tags(new.tags.iter(), &mut p);
        p.finish()?;

        let id = txn.next_ticket_id(new.kind)?;
        let impact = new.impact.unwrap_or(Level::Medium);
        let urgency = new.urgency.unwrap_or(Level::Medium);
        let matrix = &self.settings.matrix;
        let (priority, why) = match new.priority {
            Some(prio) => (prio, format!("manual priority {prio}")),
            None => (
                matrix.priority(impact, urgency),
                matrix.explain(impact, urgency),
            ),
        };
        let ticket = Ticket {
            id,
            state: State::New,
            title: new.title.trim().to_string(),
            description: new.description.clone(),
            group: Some(group),
            assignee: new.assignee.clone(),
            impact,
            urgency,
            priority,
            tags: new.tags.clone(),
            correlation_key: None,
            key_source: None,
            alert: None,
            custom: new.custom.clone(),
            process: ProcessFields {
                priority_override: new.priority.is_some(),
                state_since: Some(ctx.at),
                change,
                ..ProcessFields::default()
            },
            created_at: ctx.at,
            updated_at: ctx.at,
            history_len: 0,
            sla: Default::default(),
        };
        let why = match change_note {
            Some(note) => format!("{why}; {note}"),
            None => why,
        };
        self.commit(txn, ctx, by, None, ticket, format!("created; {why}"));
        info!(ticket = %id, by = %by, "Ticket created.");
        Ok(Handled {
            ticket: Some(id),
            outcome: Outcome::Opened,
            rule_failures: Vec::new(),
        })
    }

    fn update(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        id: TicketId,
        u: &TicketUpdate,
        if_assignee: Option<&str>,
    ) -> Done {
        let before = self.load(txn, id)?;
        if let Some(was) = if_assignee
            && before.assignee.as_deref().unwrap_or("") != was
        {
            let now = before.assignee.as_deref().unwrap_or("nobody");
            return Err(Refusal::Conflict(format!(
                "{id} was assigned to {now} meanwhile; nothing changed"
            ))
            .into());
        }
        if crate::tickets::lifecycle::is_final(before.state) {
            return Err(Refusal::Conflict(format!(
                "{id} is {}; a ticket in a final state cannot be changed",
                before.state
            ))
            .into());
        }
        if u.is_empty() {
            return Err(invalid("body", "nothing to update: no fields given").into());
        }
        let mut p = Problems::default();
        let mut t = before.clone();
        let mut notes = Vec::new();
        if let Some(title) = &u.title {
            if title.trim().is_empty() {
                p.add("title", "a ticket needs a title");
            }
            t.title = title.trim().to_string();
        }
        if let Some(d) = &u.description {
            t.description = d.clone();
        }
        if let Some(g) = &u.group {
            self.check_group(g, &mut p);
            t.group = Some(g.clone());
        }
        match &u.assignee {
            Some(Some(a)) => match &t.group {
                Some(g) => self.check_assignee(g, a, &mut p),
                None => p.add("assignee", "the ticket has no group to assign within"),
            },
            // Moving to another group unassigns someone who is not a member there.
            None if t.group != before.group => {
                if let (Some(a), Some(g)) = (&t.assignee, &t.group)
                    && !self.settings.groups.is_member(g, a)
                {
                    notes.push(format!("unassigned `{a}`: not a member of group `{g}`"));
                    t.assignee = None;
                }
            }
            _ => {}
        }
        if let Some(a) = &u.assignee {
            t.assignee = a.clone();
        }
        if let Some(i) = u.impact {
            t.impact = i;
        }
        if let Some(ur) = u.urgency {
            t.urgency = ur;
        }
        match u.priority {
            Some(Some(prio)) => {
                check_priority(prio, &mut p);
                t.priority = prio;
                t.process.priority_override = true;
                notes.push(format!("manual priority override {prio}"));
            }
            Some(None) => t.process.priority_override = false,
            None => {}
        }
        if let Some(tags) = &u.tags {
            check_tags(tags.iter(), &mut p);
            t.tags = tags.clone();
        }
        self.update_change(&mut t, u, &mut p);
        if let Some(vendor) = &u.vendor {
            if let Some(v) = vendor
                && !self.settings.vendors.contains_key(v)
            {
                let known: Vec<&str> = self.settings.vendors.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                };
                p.add(
                    "vendor",
                    format!("unknown vendor `{v}`; configured vendors: {known}"),
                );
            }
            t.process.vendor = vendor.clone();
        }
        for (k, v) in &u.custom {
            if v.is_null() {
                t.custom.remove(k);
            } else {
                t.custom.insert(k.clone(), v.clone());
            }
        }
        p.finish()?;
        notes.extend(reprioritise(&mut t, &self.settings.matrix, &mut Vec::new()));
        if diff(Some(&before), &t).is_empty() {
            return Ok(updated(id));
        }
        let reason = u
            .reason
            .clone()
            .into_iter()
            .chain(notes)
            .collect::<Vec<_>>();
        let reason = if reason.is_empty() {
            "fields edited".to_string()
        } else {
            reason.join("; ")
        };
        self.commit(txn, ctx, by, Some(&before), t, reason);
        info!(ticket = %id, by = %by, "Ticket updated.");
        Ok(updated(id))
    }

    pub(crate) fn comment(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        id: TicketId,
        c: &CommentRequest,
    ) -> Done {
        if c.body.trim().is_empty() {
            return Err(invalid("body", "a comment needs a body").into());
        }
        self.add_comment(txn, ctx, by, id, c.visibility, &c.body)?;
        Ok(updated(id))
    }

    /// Stores a comment on ticket `id` as its own record, with a history entry on the ticket.
    /// Shared by agents' comments and mail intake.
    pub(crate) fn add_comment(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        by: &Actor,
        id: TicketId,
        visibility: Visibility,
        body: &str,
    ) -> Result<(), Failure> {
        let before = self.load(txn, id)?;
        let mut t = before.clone();
        t.process.comments += 1;
        let seq = t.process.comments;
        let comment = Comment {
            seq,
            at: ctx.at,
            author: by.clone(),
            visibility,
            body: body.to_string(),
            event: ctx.event,
        };
        txn.put(
            Tree::Comments,
            layout::comment_key(id, seq),
            encode(&comment),
        );
        for key in layout::search::comment_entries(id, body) {
            txn.put(Tree::CommentWords, key, encode(&()));
        }
        let reason = format!("{visibility} comment #{seq}");
        self.commit(txn, ctx, by, Some(&before), t, reason);
        info!(ticket = %id, comment = seq, visibility = %visibility, "Comment added.");
        Ok(())
    }
}

fn check_priority(prio: u8, p: &mut Problems) {
    if !(1..=5).contains(&prio) {
        p.add(
            "priority",
            format!("priority {prio} is out of range: 1 (critical) to 5 (planning)"),
        );
    }
}

pub(crate) fn check_window(w: &Window, p: &mut Problems) {
    if w.start >= w.end {
        p.add(
            "window",
            format!(
                "the window starts ({}) at or after it ends ({})",
                w.start, w.end
            ),
        );
    }
}

fn check_tags<'a>(tags: impl Iterator<Item = &'a String>, p: &mut Problems) {
    if tags.into_iter().any(|t| t.trim().is_empty()) {
        p.add("tags", "a tag must not be empty");
    }
}
