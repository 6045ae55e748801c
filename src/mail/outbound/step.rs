//! The engine's mail-out step: for this event's history entries, the mails a ticket's
//! caller is owed (acknowledgement of a mailed-in ticket, public comments that are not the
//! caller's own, resolution, closure), each as an outbox row on the mail channel written in
//! the same commit as the change. It never mails the desk's own addresses, bounce senders
//! (mailer-daemon, postmaster, no address) or a sender the loop protection is limiting.

use jiff::Timestamp;
use serde::Deserialize;
use tracing::{debug, warn};

use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::mail::message::is_daemon;
use crate::mail::outbound::compose::{Draft, compose, message_id};
use crate::mail::outbound::config::bare_address;
use crate::mail::outbound::templates::{self, TemplateError};
use crate::mail::outbound::{SmtpConfig, coalesce, people, thread};
use crate::mail::step::MailRecord;
use crate::store::layout::Outcome;
use crate::store::{StoreError, Tree, decode, encode};
use crate::tickets::Visibility as Seen;
use crate::tickets::{Actor, Comment, HistoryEntry, Kind, Ticket, TicketId, Visibility};
use crate::vendors::step::{Destination, comment_of, enqueue, hurry};
use crate::vendors::{Channel, MAIL_DESTINATION};

/// The kinds of caller mail (the outbox row's `type`).
pub const ACKNOWLEDGED: &str = "mail.acknowledged";
pub const COMMENTED: &str = "mail.commented";
pub const RESOLVED: &str = "mail.resolved";
pub const CLOSED: &str = "mail.closed";

/// One mail to write.
pub(crate) struct Letter<'a> {
    pub kind: &'static str,
    pub to: &'a str,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub thread: &'a [String],
    pub auto: &'static str,
    /// Quiet hours or a coalescing window: the person's own queue (`@smtp/NAME`) and when
    /// the mail is due.
    pub held: Option<(String, Timestamp)>,
    /// A coalesced batch's notices, kept in the row.
    pub batch: Vec<crate::mail::outbound::coalesce::BatchItem>,
}

/// The loop protection's window of one sender (as `mail::step` stores it).
#[derive(Deserialize)]
struct Window {
    start: Timestamp,
    count: u32,
}

impl Engine {
    /// Writes an outbox row for every mail this event's changes owe a ticket's caller.
    pub(crate) fn enqueue_mail(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        entries: &[(TicketId, HistoryEntry)],
    ) -> Result<(), StoreError> {
        // One message per person and ticket for the whole event, however many entries.
        let mut tickets: Vec<TicketId> = Vec::new();
        for (id, _) in entries {
            if !tickets.contains(id) {
                tickets.push(*id);
            }
        }
        for id in tickets {
            let of: Vec<&HistoryEntry> = entries
                .iter()
                .filter(|(t, _)| *t == id)
                .map(|(_, e)| e)
                .collect();
            self.people_mail(txn, event, id, &of)?;
        }
        let Some(smtp) = &self.settings.smtp else {
            return Ok(());
        };
        for (id, entry) in entries {
            let Some(kind) = caller_kind(smtp, entry) else {
                continue;
            };
            let Some(ticket) = txn.ticket(*id)? else {
                continue;
            };
            let mut thread = thread::get(txn, *id)?.unwrap_or_default();
            if thread.token.is_empty() {
                thread.token = thread::new_token();
            }
            let to = if thread.caller.is_empty() {
                caller_of(&ticket)
            } else {
                thread.caller.clone()
            };
            if let Some(why) = self.not_to(txn, smtp, &to, event)? {
                debug!(ticket = %id, kind, why, "No caller mail.");
                continue;
            }
            let comment = if kind == COMMENTED {
                match comment_of(txn, *id, entry)? {
                    Some(c) if c.visibility == Visibility::Public => Some(c),
                    _ => continue,
                }
            } else {
                None
            };
            let render = |set: &templates::Templates| {
                words(kind, &ticket, &thread.token, comment.as_ref(), self, set)
            };
            // A template that checked at load can still fail on one ticket (a branch the
            // sample did not take): the caller gets the shipped wording rather than nothing.
            let (subject, text) = match render(&self.settings.templates) {
                Ok(w) => w,
                Err(e) => match render(&templates::Templates::shipped()) {
                    Ok(w) => {
                        warn!(ticket = %id, kind, error = %e, "Caller mail's template failed; the shipped one was used.");
                        w
                    }
                    Err(shipped) => {
                        warn!(ticket = %id, kind, error = %e, shipped = %shipped, "Caller mail not sent: its template failed.");
                        continue;
                    }
                },
            };
            let auto = if kind == ACKNOWLEDGED {
                "auto-replied"
            } else {
                "auto-generated"
            };
            let letter = Letter {
                kind,
                to: &to,
                subject,
                text,
                html: None,
                thread: &thread.ids,
                auto,
                held: None,
                batch: Vec::new(),
            };
            let (_, sent_id) = self.write_mail(txn, smtp, event, *id, letter)?;
            thread.caller = to;
            thread.push(&sent_id);
            thread::put(txn, *id, &thread);
        }
        Ok(())
    }

    /// The staff notifications an event's entries on one ticket owe: one mail per person
    /// with an address, one message per chat channel that carries them.
    fn people_mail(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        id: TicketId,
        entries: &[&HistoryEntry],
    ) -> Result<(), StoreError> {
        let smtp = self.settings.smtp.as_ref();
        if smtp.is_none() && self.settings.chat.is_empty() {
            return Ok(());
        }
        let Some(ticket) = txn.ticket(id)? else {
            return Ok(());
        };
        let defaults = SmtpConfig::default();
        let mut owed = Vec::new();
        let mut comment = None;
        for entry in entries {
            let more = people::owed(
                smtp.unwrap_or(&defaults),
                &self.settings.groups,
                entry,
                &ticket,
            );
            if more.is_empty() {
                continue;
            }
            if let Some(c) = comment_of(txn, id, entry)? {
                comment = Some(c);
            }
            owed.extend(more);
        }
        // One message per person and per channel for the entry: several notices for the
        // same recipient are coalesced into one digest, never a storm.
        let set = &self.settings.templates;
        if let Some(smtp) = smtp {
            let mut names: Vec<&String> = Vec::new();
            for n in owed.iter().flat_map(|o| &o.names) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            for name in names {
                let mine: Vec<&people::Owed> =
                    owed.iter().filter(|o| o.names.contains(name)).collect();
                let Some(address) = smtp.people.get(name) else {
                    debug!(ticket = %id, person = %name, kind = mine[0].notice.kind(), "No address for a person in smtp.people; not mailed.");
                    continue;
                };
                let (kind, (subject, text, html)) = match people::render_for(
                    set,
                    &mine,
                    name,
                    &ticket,
                    comment.as_ref(),
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(ticket = %id, person = %name, error = %e, "Notification not mailed: its template failed.");
                        continue;
                    }
                };
                let urgent = mine.iter().any(|o| o.notice == people::Notice::P1Opened);
                let quiet_end = smtp
                    .quiet
                    .get(name.as_str())
                    .filter(|q| !(urgent && q.pages))
                    .and_then(|q| q.ends(self.now()));
                if let Some(until) = &quiet_end {
                    debug!(ticket = %id, person = %name, until = %until, "Quiet hours: the notification is held.");
                }
                let coalescing = !smtp.coalesce.0.is_zero();
                let held = quiet_end
                    .filter(|_| !coalescing)
                    .map(|until| (format!("{MAIL_DESTINATION}/{name}"), until));
                let letter = Letter {
                    kind,
                    to: address,
                    subject,
                    text,
                    html: Some(html),
                    thread: &[],
                    auto: "auto-generated",
                    held,
                    batch: Vec::new(),
                };
                if coalescing {
                    let notices = coalesce::Notices {
                        name,
                        address,
                        mine: &mine,
                        now: letter,
                        quiet_end,
                    };
                    self.coalesce_mail(txn, smtp, event, &ticket, notices)?;
                } else {
                    self.write_mail(txn, smtp, event, id, letter)?;
                }
            }
        }
        for (name, channel) in &self.settings.chat {
            let mine: Vec<&people::Owed> = owed
                .iter()
                .filter(|o| {
                    channel.people.iter().any(|p| o.names.contains(p))
                        || channel.groups.iter().any(|g| o.groups.contains(g))
                })
                .collect();
            if !mine.is_empty() {
                let held = chat_held(smtp, channel, &mine, self.now());
                self.chat_row(txn, event, &ticket, (name, channel), &mine, held)?;
            }
        }
        Ok(())
    }

    /// Writes one mail row and records its Message-ID (so replies thread back and the mail
    /// coming back in is seen); returns the row's id and the Message-ID.
    pub(crate) fn write_mail(
        &self,
        txn: &mut Txn<'_>,
        smtp: &SmtpConfig,
        event: &Event,
        id: TicketId,
        letter: Letter<'_>,
    ) -> Result<(u64, String), StoreError> {
        let at = self.now();
        let mut sent_id = String::new();
        let mut failed = None;
        let (name, due) = match &letter.held {
            Some((queue, until)) => (queue.as_str(), Some(*until)),
            None => (MAIL_DESTINATION, None),
        };
        let dest = Destination {
            name,
            channel: Channel::Mail,
            ticket: id,
            kind: letter.kind,
            event: event.id,
            at,
            due,
        };
        let kind = letter.kind;
        let row = enqueue(txn, dest, |row| {
            sent_id = message_id(row, at, &smtp.from_address());
            let draft = Draft {
                from: &smtp.from,
                to: letter.to,
                subject: letter.subject,
                text: letter.text,
                html: letter.html,
                message_id: sent_id.clone(),
                thread: letter.thread,
                auto: letter.auto,
                at,
                batch: letter.batch,
            };
            compose(&draft).unwrap_or_else(|e| {
                failed = Some(e.to_string());
                String::new()
            })
        })?;
        if let Some(error) = failed {
            // The row stays and goes dead on its first attempt, where `itsmd outbox` shows
            // it; the change itself is not held up by a bad address.
            warn!(ticket = %id, row, error = %error, "Mail cannot be composed.");
        }
        let record = MailRecord {
            event: event.id,
            ticket: Some(id),
            outcome: Outcome::Recorded,
            reason: Some(format!("{} ({kind})", crate::mail::step::SENT_BY_ITSMD)),
        };
        txn.put(
            Tree::MailByMessageId,
            sent_id.as_bytes().to_vec(),
            encode(&record),
        );
        Ok((row, sent_id))
    }

    /// Why `to` gets no mail, if it gets none.
    fn not_to(
        &self,
        txn: &Txn<'_>,
        smtp: &SmtpConfig,
        to: &str,
        _event: &Event,
    ) -> Result<Option<&'static str>, StoreError> {
        if to.is_empty() || !to.contains('@') {
            return Ok(Some("no caller address"));
        }
        if smtp.is_own(to) {
            return Ok(Some("the desk's own address"));
        }
        if is_daemon(to) {
            return Ok(Some("a bounce sender"));
        }
        let m = &self.settings.mail;
        if m.rate_limit > 0
            && let Some(w) = txn
                .get(Tree::MailSenders, to.as_bytes())?
                .map(|b| decode::<Window>(Tree::MailSenders, &b))
                .transpose()?
            && w.start.duration_until(self.now()) < m.rate_window.0
            && w.count > m.rate_limit
        {
            return Ok(Some("the sender is rate-limited by loop protection"));
        }
        Ok(None)
    }
}

/// Until when quiet hours hold a chat message: only one for people alone (no notice the
/// channel carries for a group), when every person it is for is in their quiet hours and
/// none of them is paged (a priority 1 notice with `pages`); then until the first of their
/// windows ends.
fn chat_held(
    smtp: Option<&SmtpConfig>,
    channel: &crate::mail::chat::ChatChannel,
    mine: &[&people::Owed],
    now: Timestamp,
) -> Option<Timestamp> {
    let quiet = &smtp?.quiet;
    if mine
        .iter()
        .any(|o| channel.groups.iter().any(|g| o.groups.contains(g)))
    {
        return None;
    }
    let urgent = mine.iter().any(|o| o.notice == people::Notice::P1Opened);
    let mut end: Option<Timestamp> = None;
    for person in channel
        .people
        .iter()
        .filter(|p| mine.iter().any(|o| o.names.contains(p)))
    {
        let q = quiet.get(person)?;
        if urgent && q.pages {
            return None;
        }
        let until = q.ends(now)?;
        end = Some(end.map_or(until, |e| e.min(until)));
    }
    end
}

/// Which caller mail an entry is, if the configuration sends it.
fn caller_kind(smtp: &SmtpConfig, entry: &HistoryEntry) -> Option<&'static str> {
    let c = &smtp.caller;
    let state = entry
        .changes
        .iter()
        .find(|c| c.field == "state")
        .and_then(|c| c.new.as_str());
    let kind = if entry.seq == 1 {
        matches!(entry.actor, Actor::Caller { .. }).then_some(ACKNOWLEDGED)?
    } else if matches!(state, Some("resolved" | "fulfilled")) {
        RESOLVED
    } else if state == Some("closed") {
        CLOSED
    } else if entry.changes.iter().any(|c| c.field == "comments")
        && !matches!(entry.actor, Actor::Caller { .. })
    {
        COMMENTED
    } else {
        return None;
    };
    let on = match kind {
        ACKNOWLEDGED => c.acknowledged,
        RESOLVED => c.resolved,
        CLOSED => c.closed,
        _ => c.commented,
    };
    on.then_some(kind)
}

/// The caller a ticket names (`custom.caller`, as a mail or an agent set it), bare.
pub(crate) fn caller_of(ticket: &Ticket) -> String {
    ticket
        .custom
        .get("caller")
        .and_then(|v| v.as_str())
        .map(bare_address)
        .unwrap_or_default()
}

/// Who wrote a comment, as the caller should read it.
fn author(a: &Actor) -> String {
    match a {
        Actor::User { name } => name.clone(),
        Actor::Vendor { name } => format!("{name} (our partner)"),
        _ => "The service desk".to_string(),
    }
}

/// A duration as a caller reads it: "5 days", "12 hours", "90 minutes", else as configured.
fn in_words(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs();
    let unit = |n: i64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    match secs {
        s if s > 0 && s % 86_400 == 0 => unit(s / 86_400, "day"),
        s if s > 0 && s % 3_600 == 0 => unit(s / 3_600, "hour"),
        s if s > 0 && s % 60 == 0 => unit(s / 60, "minute"),
        _ => format!("{d:#}"),
    }
}

/// The subject and text of a caller mail (English; templates are a later step).
fn words(
    kind: &str,
    t: &Ticket,
    token: &str,
    comment: Option<&Comment>,
    engine: &Engine,
    set: &templates::Templates,
) -> Result<(String, String), TemplateError> {
    let lifecycle = &engine.settings.lifecycle;
    let reopen_within = if t.kind() == Kind::Incident {
        lifecycle.incident_close_after
    } else {
        lifecycle.request_close_after
    };
    let ctx = minijinja::context! {
        ticket => templates::facts(t),
        tag => format!("[{} #{token}]", t.id),
        author => comment.map(|c| author(&c.author)),
        comment => comment.map(|c| c.body.clone()),
        comment_public => comment.map(|c| c.visibility == Seen::Public),
        reopen_within => in_words(reopen_within.0),
    };
    let name = format!("caller_{}", &kind["mail.".len()..]);
    let subject = set.render(&format!("{name}.subject"), &ctx)?;
    let text = set.render(&format!("{name}.txt"), &ctx)?;
    Ok((subject.trim().to_string(), text))
}

impl Engine {
    /// The outbox row of one chat message: a notification, or the digest of several; due at
    /// once, or when `held` says (quiet hours). One that goes at once first makes a held
    /// message ahead of it in the channel's queue for the ticket due now: a page is not kept
    /// waiting behind it (and what was held goes with it).
    fn chat_row(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        ticket: &Ticket,
        (name, channel): (&str, &crate::mail::chat::ChatChannel),
        mine: &[&people::Owed],
        held: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let (kind, subject, summary) = match people::chat_words(
            &self.settings.templates,
            mine,
            name,
            ticket,
        ) {
            Ok(w) => w,
            Err(e) => {
                warn!(ticket = %ticket.id, channel = %name, error = %e, "Chat message not sent: its template failed.");
                return Ok(());
            }
        };
        let message = crate::mail::chat::payload::Message {
            subject: &subject,
            summary: &summary,
            ticket,
        };
        let body = crate::mail::chat::payload::body(channel.format, &message).to_string();
        let destination = crate::mail::chat::destination(name);
        match held {
            Some(until) => {
                debug!(ticket = %ticket.id, channel = %name, until = %until, "Quiet hours: the chat message is held.");
            }
            None => hurry(txn, &destination, ticket.id, self.now())?,
        }
        let dest = Destination {
            name: &destination,
            channel: Channel::Chat,
            ticket: ticket.id,
            kind,
            event: event.id,
            at: self.now(),
            due: held,
        };
        enqueue(txn, dest, |_| body)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reopen_window_reads_in_words() {
        let w = |secs| super::in_words(jiff::SignedDuration::from_secs(secs));
        assert_eq!(w(5 * 86_400), "5 days");
        assert_eq!(w(86_400), "1 day");
        assert_eq!(w(36 * 3_600), "36 hours");
        assert_eq!(w(90 * 60), "90 minutes");
        assert_eq!(w(45), "45s");
    }
}
