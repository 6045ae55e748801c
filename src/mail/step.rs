//! Mail in the engine: recognise a re-delivery, stop loops and noise, thread a reply onto its
//! ticket (subject tag, then In-Reply-To / References), run `on_mail`, then comment on,
//! reopen, follow up or open a ticket. Every mail, whatever became of it, is recorded under
//! its Message-ID in the same batch, which is both the idempotence record and the thread
//! index. This module must not read files or parse messages (the Maildir source does), and
//! what kind of ticket a new mail opens is the rules' business.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::alerts::step::Handled;
use crate::engine::Receipt;
use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::{Event, EventId};
use crate::mail::message::reply_tag;
use crate::mail::{Mail, outbound};
use crate::metrics::{Metrics, ReasonLabels};
use crate::rules::{Decision, TicketView};
use crate::store::layout::Outcome;
use crate::store::{StoreError, Tree, decode, encode};
use crate::tickets::commands::Failure;
use crate::tickets::transitions::{Entry, enter};
use crate::tickets::{
    Actor, Kind, LinkRel, LinkRequest, NewTicket, State, Ticket, TicketId, Visibility, lifecycle,
};

/// Longest mail text copied into a ticket's description or a comment; the whole mail stays
/// in the event journal. Tickets are rewritten on every change, so they stay small.
const TEXT_LIMIT: usize = 64 * 1024;

/// What became of a mail, stored under its Message-ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MailRecord {
    /// The event that recorded the mail.
    pub event: EventId,
    /// The ticket it opened, commented on or was attached to: replies thread onto it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketId>,
    pub outcome: Outcome,
    /// Why it opened nothing (loop protection, a rule), or what a bounce was attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How the record of a mail itsmd sent starts its `reason`.
pub(crate) const SENT_BY_ITSMD: &str = "sent by itsmd";

impl MailRecord {
    /// Whether this is the record of a mail itsmd sent (not one it received).
    fn is_ours(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|r| r.starts_with(SENT_BY_ITSMD))
    }
}

/// One sender's mails in the current rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct SenderWindow {
    /// When the window opened (the first mail counted in it).
    start: Timestamp,
    /// Mails counted in it so far.
    count: u32,
}

impl SenderWindow {
    /// Whether the window is over at `now`: a new mail would open a fresh one, so the row
    /// limits nothing any more (the retention sweep deletes it).
    pub(crate) fn ended(&self, now: Timestamp, window: jiff::SignedDuration) -> bool {
        self.start.duration_until(now) >= window
    }
}

/// The ticket a mail answers, or the one it named but may not speak for, with why.
#[derive(Default)]
struct Threaded {
    ticket: Option<Ticket>,
    refused: Option<(TicketId, String)>,
}

/// A ticket's caller (bare address): its mail thread's, else `custom.caller`.
fn caller_of_ticket(txn: &Txn<'_>, t: &Ticket) -> Result<String, StoreError> {
    let caller = outbound::thread::get(txn, t.id)?
        .map(|th| th.caller)
        .unwrap_or_default();
    Ok(if caller.is_empty() {
        outbound::step::caller_of(t)
    } else {
        caller
    })
}

/// A mail's outcome and the reason kept with its record.
type Disposal = (Handled, Option<String>);

fn handled(ticket: Option<TicketId>, outcome: Outcome, rule_failures: Vec<String>) -> Handled {
    Handled {
        ticket,
        outcome,
        rule_failures,
    }
}

/// Who a mail's changes are recorded as: its sender.
fn caller(mail: &Mail) -> Actor {
    Actor::Caller {
        address: mail
            .from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

/// `text` cut to [`TEXT_LIMIT`] at a character boundary, saying so.
fn clip(text: &str, event: EventId) -> String {
    if text.len() <= TEXT_LIMIT {
        return text.to_string();
    }
    let mut end = TEXT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[… cut at {TEXT_LIMIT} bytes; the whole mail is event {event}]",
        &text[..end]
    )
}

/// What a mail's ticket description or comment says: its text, then its attachments.
fn comment_text(mail: &Mail, event: EventId) -> String {
    let mut text = if mail.body.trim().is_empty() {
        "(no text)".to_string()
    } else {
        clip(&mail.body, event)
    };
    if !mail.attachments.is_empty() {
        text.push_str("\n\nAttachments:");
        for a in &mail.attachments {
            text.push_str(&format!(
                "\n- {} ({}, {} bytes)",
                a.name, a.content_type, a.size
            ));
        }
    }
    text
}

fn title(mail: &Mail) -> String {
    if mail.subject.trim().is_empty() {
        "(no subject)".to_string()
    } else {
        mail.subject.trim().to_string()
    }
}

impl Engine {
    /// A Message-ID already recorded: the receipt of the event that recorded it, and nothing
    /// is written (re-delivery, or a crash between commit and the move to cur/).
    pub(crate) fn mail_seen(
        &self,
        txn: &Txn<'_>,
        mail: &Mail,
    ) -> Result<Option<Receipt>, StoreError> {
        let Some(record) = self.mail_record(txn, &mail.message_id)? else {
            return Ok(None);
        };
        info!(message_id = %crate::telemetry::Escaped(&mail.message_id), event = record.event, "Mail seen before; nothing new.");
        Ok(Some(Receipt {
            event_id: record.event,
            ticket: record.ticket,
            outcome: Outcome::Seen,
        }))
    }

    fn mail_record(&self, txn: &Txn<'_>, id: &str) -> Result<Option<MailRecord>, StoreError> {
        txn.get(Tree::MailByMessageId, id.as_bytes())?
            .map(|b| decode(Tree::MailByMessageId, &b))
            .transpose()
    }

    pub(crate) fn mail(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        mail: &Mail,
    ) -> Result<Handled, StoreError> {
        let ctx = Changes {
            event: event.id,
            at: self.now(),
            rules_version: self.rules.version(),
        };
        let (handled, reason) = self.dispose(txn, &ctx, event, mail)?;
        let record = MailRecord {
            event: event.id,
            ticket: handled.ticket,
            outcome: handled.outcome,
            reason,
        };
        txn.put(
            Tree::MailByMessageId,
            mail.message_id.as_bytes().to_vec(),
            encode(&record),
        );
        Ok(handled)
    }

    fn dispose(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        event: &Event,
        mail: &Mail,
    ) -> Result<Disposal, StoreError> {
        if mail.is_bounce() {
            return self.bounce(txn, ctx, mail);
        }
        if let Some(noise) = mail.noise() {
            return Ok(suppressed(
                &self.metrics,
                mail,
                noise.label(),
                noise.to_string(),
                Vec::new(),
            ));
        }
        if self.over_rate(txn, &mail.sender(), ctx.at)? {
            let m = &self.settings.mail;
            let why = format!(
                "more than {} mails from {} within {}",
                m.rate_limit,
                mail.sender(),
                m.rate_window
            );
            return Ok(suppressed(
                &self.metrics,
                mail,
                "rate_limit",
                why,
                Vec::new(),
            ));
        }

        let Threaded {
            ticket: thread,
            refused,
        } = self.thread(txn, mail)?;
        let view = match &thread {
            Some(t) if !lifecycle::is_final(t.state) => TicketView::of(t),
            // A reply to a closed ticket opens a follow-up of the same kind.
            Some(t) => new_view(t.kind(), mail),
            None => new_view(Kind::Request, mail),
        };
        let mut run = self
            .rules
            .on_mail(&self.metrics, mail, thread.as_ref().map(|t| t.id), view);
        self.vet_vendors(&mut run);
        let rule_failures = self.report_failures(event, &run);
        if run.view.suppressed {
            let why = run
                .decisions
                .iter()
                .rev()
                .find_map(|d| match &d.decision {
                    Decision::Suppress { reason } => Some(format!("{}: {reason}", d.by.file)),
                    _ => None,
                })
                .unwrap_or_default();
            return Ok(suppressed(&self.metrics, mail, "rule", why, rule_failures));
        }
        let kind = run.view.kind.parse().unwrap_or(Kind::Request);

        let (id, outcome) = match thread {
            Some(t) if t.state.is_open() => (
                Some(self.reply(txn, ctx, event, mail, &t)?),
                Outcome::Updated,
            ),
            Some(t)
                if lifecycle::is_reopen(t.state, State::InProgress)
                    && lifecycle::check(t.kind(), t.state, State::InProgress).is_ok() =>
            {
                let mut after = t.clone();
                enter(&mut after, State::InProgress, ctx.at, Entry::default());
                let by = Actor::system("mail");
                self.commit(
                    txn,
                    ctx,
                    &by,
                    Some(&t),
                    after,
                    "caller replied by mail".into(),
                );
                info!(ticket = %t.id, message_id = %crate::telemetry::Escaped(&mail.message_id), "Ticket reopened: the caller replied by mail.");
                (
                    Some(self.reply(txn, ctx, event, mail, &t)?),
                    Outcome::Reopened,
                )
            }
            Some(t) if lifecycle::is_final(t.state) => {
                let id = self.open(txn, ctx, event, mail, kind)?;
                if let Some(new) = id {
                    self.follow_up(txn, ctx, new, t.id)?;
                }
                (id, Outcome::Opened)
            }
            // Resolved but not reopenable (a problem): the reply is kept on it all the same.
            Some(t) => (
                Some(self.reply(txn, ctx, event, mail, &t)?),
                Outcome::Updated,
            ),
            None => {
                let id = self.open(txn, ctx, event, mail, kind)?;
                if let (Some(new), Some((named, why))) = (id, &refused) {
                    self.unverified(txn, ctx, new, *named, why)?;
                }
                (id, Outcome::Opened)
            }
        };
        let Some(id) = id else {
            return Ok((
                handled(None, Outcome::Recorded, rule_failures),
                Some("no ticket could be opened".into()),
            ));
        };
        if let Some(ticket) = txn.ticket(id)? {
            self.settle(txn, ctx, ticket, &run, &rule_failures)?;
        }
        Ok((handled(Some(id), outcome, rule_failures), None))
    }

    /// Adds the mail to `t` as a public comment by its sender.
    fn reply(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        event: &Event,
        mail: &Mail,
        t: &Ticket,
    ) -> Result<TicketId, StoreError> {
        let text = comment_text(mail, event.id);
        match self.add_comment(txn, ctx, &caller(mail), t.id, Visibility::Public, &text) {
            Ok(()) => {}
            Err(Failure::Store(e)) => return Err(e),
            // The ticket was just read in this batch, so it exists.
            Err(Failure::Refused(r)) => {
                warn!(ticket = %t.id, error = %r, "Mail not added as a comment.")
            }
        }
        info!(ticket = %t.id, message_id = %crate::telemetry::Escaped(&mail.message_id), "Mail added to its ticket.");
        note_in_thread(txn, t.id, mail, false)?;
        Ok(t.id)
    }

    /// Opens a ticket of `kind` for the mail; `None` (logged) if the configuration refuses it.
    fn open(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        event: &Event,
        mail: &Mail,
        kind: Kind,
    ) -> Result<Option<TicketId>, StoreError> {
        let mut custom = std::collections::BTreeMap::new();
        if let Some(from) = &mail.from {
            custom.insert("caller".to_string(), from.to_string().into());
        }
        let new = NewTicket {
            description: comment_text(mail, event.id),
            custom,
            ..NewTicket::new(kind, title(mail))
        };
        match self.create(txn, ctx, &caller(mail), &new) {
            Ok(h) => {
                if let Some(id) = h.ticket {
                    info!(ticket = %id, message_id = %crate::telemetry::Escaped(&mail.message_id), "Ticket opened for a mail.");
                    note_in_thread(txn, id, mail, true)?;
                }
                Ok(h.ticket)
            }
            Err(Failure::Store(e)) => Err(e),
            Err(Failure::Refused(r)) => {
                warn!(message_id = %crate::telemetry::Escaped(&mail.message_id), error = %r, "No ticket opened for a mail.");
                Ok(None)
            }
        }
    }

    /// A mail that named a ticket it may not speak for opened `new`: linked as a follow-up
    /// of the one it named, and an internal comment on both says why.
    fn unverified(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        new: TicketId,
        named: TicketId,
        why: &str,
    ) -> Result<(), StoreError> {
        self.follow_up(txn, ctx, new, named)?;
        let by = Actor::system("mail");
        let notes = [
            (
                new,
                format!("Opened as a new ticket, not added to {named}: {why}."),
            ),
            (
                named,
                format!("A mail naming this ticket opened {new} instead: {why}."),
            ),
        ];
        for (id, text) in notes {
            match self.add_comment(txn, ctx, &by, id, Visibility::Internal, &text) {
                Ok(()) => {}
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Refused(r)) => {
                    warn!(ticket = %id, error = %r, "Note on an unverified mail not added.")
                }
            }
        }
        info!(ticket = %new, named = %named, why, "Mail opened a new ticket: it may not speak for the ticket it named.");
        Ok(())
    }

    /// Links the new ticket as a follow-up of the closed one the mail replied to.
    fn follow_up(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        new: TicketId,
        closed: TicketId,
    ) -> Result<(), StoreError> {
        let req = LinkRequest {
            rel: LinkRel::FollowUpOf,
            ticket: closed,
        };
        match self.link(txn, ctx, &Actor::system("mail"), new, &req) {
            Ok(_) => Ok(()),
            Err(Failure::Store(e)) => Err(e),
            Err(Failure::Refused(r)) => {
                warn!(ticket = %new, closed = %closed, error = %r, "Follow-up not linked.");
                Ok(())
            }
        }
    }

    /// The ticket a mail answers: a ticket tag in its subject, else the ticket of a mail it
    /// replies to; then whether the mail may speak for it: only when it carries the ticket's
    /// reply token or comes from the ticket's caller. Otherwise the mail answers nothing and
    /// the ticket it named comes back with why, so the new ticket can be linked to it. A
    /// closed ticket that has a follow-up by the same caller hands over to the follow-up.
    fn thread(&self, txn: &mut Txn<'_>, mail: &Mail) -> Result<Threaded, StoreError> {
        let tag = reply_tag(&mail.subject);
        let mut found = match &tag {
            Some((id, _)) => txn.ticket(*id)?,
            None => None,
        };
        if found.is_none() {
            // In-Reply-To first, then References from the newest.
            let ids = mail.in_reply_to.iter().chain(mail.references.iter().rev());
            found = self.ticket_of_any(txn, ids)?;
        }
        let Some(named) = found else {
            return Ok(Threaded::default());
        };
        let caller = caller_of_ticket(txn, &named)?;
        let token = tag
            .filter(|(id, _)| *id == named.id)
            .and_then(|(_, token)| token);
        let thread = outbound::thread::get(txn, named.id)?.unwrap_or_default();
        let sender = mail.sender();
        if !outbound::thread::token_matches(&thread, token.as_deref())
            && (caller.is_empty() || sender != caller)
        {
            let why = format!(
                "mail from {sender} named {} but carries no valid reply token and is not from its caller",
                named.id
            );
            return Ok(Threaded {
                ticket: None,
                refused: Some((named.id, why)),
            });
        }
        let mut found = Some(named);
        // Bounded: a follow-up chain is as long as the caller's patience, not a cycle.
        for _ in 0..64 {
            let Some(t) = &found else { break };
            if !lifecycle::is_final(t.state) {
                break;
            }
            let next = t
                .process
                .links
                .iter()
                .rev()
                .find(|l| l.rel == LinkRel::FollowedUpBy)
                .map(|l| l.ticket);
            let Some(id) = next else { break };
            let Some(n) = txn.ticket(id)? else { break };
            // A follow-up someone else's mail opened is not this caller's thread.
            if !caller.is_empty() && caller_of_ticket(txn, &n)? != caller {
                break;
            }
            found = Some(n);
        }
        Ok(Threaded {
            ticket: found,
            refused: None,
        })
    }

    /// The ticket of the first of `ids` that is a recorded mail with a ticket.
    fn ticket_of_any<'a>(
        &self,
        txn: &mut Txn<'_>,
        ids: impl Iterator<Item = &'a String>,
    ) -> Result<Option<Ticket>, StoreError> {
        for id in ids {
            if let Some(ticket) = self.mail_record(txn, id)?.and_then(|r| r.ticket)
                && let Some(t) = txn.ticket(ticket)?
            {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// A delivery failure report: kept as an internal comment on the ticket its returned
    /// message belonged to, when that can be found; it never opens a ticket.
    fn bounce(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        mail: &Mail,
    ) -> Result<Disposal, StoreError> {
        // Only a report that returns a mail itsmd sent (by its Message-ID, which itsmd made)
        // goes on that mail's ticket: a subject's ticket tag anyone can write, and a report
        // "from postmaster" naming one would otherwise put any text on any ticket.
        let mut target = None;
        if let Some(id) = mail.returned.as_ref().and_then(|r| r.message_id.as_ref())
            && let Some(record) = self.mail_record(txn, id)?
            && record.is_ours()
            && let Some(ticket) = record.ticket
        {
            target = txn.ticket(ticket)?;
        }
        let Some(t) = target else {
            return Ok(suppressed(
                &self.metrics,
                mail,
                "bounce",
                "delivery failure report that returns none of itsmd's mails".into(),
                Vec::new(),
            ));
        };
        let text = format!(
            "Delivery failure reported by {}: {}\n\n{}",
            mail.sender(),
            mail.subject,
            clip(&mail.body, ctx.event)
        );
        match self.add_comment(
            txn,
            ctx,
            &Actor::system("mail"),
            t.id,
            Visibility::Internal,
            &text,
        ) {
            Ok(()) => {}
            Err(Failure::Store(e)) => return Err(e),
            Err(Failure::Refused(r)) => warn!(ticket = %t.id, error = %r, "Bounce not added."),
        }
        count_suppressed(&self.metrics, "bounce");
        info!(ticket = %t.id, message_id = %crate::telemetry::Escaped(&mail.message_id), "Bounce attached to its ticket.");
        Ok((
            handled(Some(t.id), Outcome::Updated, Vec::new()),
            Some(format!("bounce: attached to {}", t.id)),
        ))
    }

    /// Counts the mail against its sender's window; true when the sender is over the limit.
    /// The windows are stored (written in the batch like everything else), so a mail loop
    /// stays limited across restarts and a replay counts exactly as the original run did.
    fn over_rate(
        &self,
        txn: &mut Txn<'_>,
        sender: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let m = &self.settings.mail;
        if m.rate_limit == 0 {
            return Ok(false);
        }
        let key = sender.as_bytes().to_vec();
        let current: Option<SenderWindow> = txn
            .get(Tree::MailSenders, &key)?
            .map(|b| decode(Tree::MailSenders, &b))
            .transpose()?;
        let next = match current {
            Some(w) if w.start.duration_until(now) < m.rate_window.0 => SenderWindow {
                start: w.start,
                count: w.count.saturating_add(1),
            },
            _ => SenderWindow {
                start: now,
                count: 1,
            },
        };
        txn.put(Tree::MailSenders, key, encode(&next));
        Ok(next.count > m.rate_limit)
    }
}

/// Adds the mail to its ticket's mail thread (so what itsmd sends replies to it); the
/// sender of the mail that opened the ticket becomes the thread's caller.
fn note_in_thread(
    txn: &mut Txn<'_>,
    id: TicketId,
    mail: &Mail,
    opened: bool,
) -> Result<(), StoreError> {
    let mut thread = outbound::thread::get(txn, id)?.unwrap_or_default();
    if opened || thread.caller.is_empty() {
        thread.caller = mail.sender();
    }
    if thread.token.is_empty() {
        thread.token = outbound::thread::new_token();
    }
    thread.push(&mail.message_id);
    outbound::thread::put(txn, id, &thread);
    Ok(())
}

/// The view of the ticket a mail would open.
fn new_view(kind: Kind, mail: &Mail) -> TicketView {
    TicketView {
        kind: kind.as_str().into(),
        state: State::New.as_str().into(),
        title: title(mail),
        description: mail.body.clone(),
        ..TicketView::default()
    }
}

fn count_suppressed(m: &Metrics, reason: &str) {
    m.mails_suppressed
        .get_or_create(&ReasonLabels {
            reason: reason.into(),
        })
        .inc();
}

/// A mail that opens and changes nothing: counted by reason and logged.
fn suppressed(
    m: &Metrics,
    mail: &Mail,
    label: &str,
    why: String,
    rule_failures: Vec<String>,
) -> Disposal {
    count_suppressed(m, label);
    info!(
        message_id = %crate::telemetry::Escaped(&mail.message_id),
        from = %mail.sender(),
        reason = label,
        why = %why,
        "Mail suppressed: it opens no ticket."
    );
    (
        handled(None, Outcome::Suppressed, rule_failures),
        Some(format!("{label}: {why}")),
    )
}
