//! Coalescing with a window (`[smtp] coalesce`): a person gets at most one notification mail
//! per window. The first goes at once; what follows within the window waits as one batch row
//! in the person's own queue (`@smtp/NAME`), due when the window ends (or when the person's
//! quiet hours do, if later), and every further notice replaces that row, in the same commit,
//! by a fuller one (the `batch` template listing every notice, most urgent first).
//!
//! Durable like any mail: the batch is an outbox row with its due time, its notices kept in
//! the row (`Envelope::batch`), and the person's window (when their last mail was due, which
//! row is their open batch) a record in the meta tree; a restart sends the batch when due.
//! A batch the dispatcher has tried once is closed: what comes later starts a new one.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::mail::outbound::compose::Envelope;
use crate::mail::outbound::step::Letter;
use crate::mail::outbound::templates::{self, TemplateError, Templates};
use crate::mail::outbound::{SmtpConfig, people};
use crate::store::{StoreError, Tree, decode, encode};
use crate::tickets::Ticket;
use crate::vendors::MAIL_DESTINATION;
use crate::vendors::step::{pending_row, withdraw};

/// The outbox `type` of a coalesced batch.
pub const BATCH: &str = "mail.batch";

/// One notice in a batch, as the `batch` template sees it (`items`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The ticket's id (`INC-000001`) and title.
    pub ticket: String,
    pub title: String,
    /// The notice's own subject line, headline, note and kind (`mail.assigned`…).
    pub subject: String,
    pub headline: String,
    pub note: Option<String>,
    pub kind: String,
}

/// A person's window: when their latest notification mail was (or is) due, and their open
/// batch row, if any.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Window {
    last: Option<Timestamp>,
    batch: Option<u64>,
}

/// The meta prefix of the people's windows (one key per person).
pub const KEY_PREFIX: &[u8] = b"mail/coalesce/";

fn key(name: &str) -> Vec<u8> {
    let mut k = KEY_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// Whether `value` reads as a person's window (for `itsmd check` and `itsmd import`).
pub fn check_window(value: &[u8]) -> Result<(), StoreError> {
    decode::<Window>(Tree::Meta, value).map(drop)
}

/// When a notice for a person is due: now, unless the window since their last mail or their
/// quiet hours end later.
fn due(
    now: Timestamp,
    window: SignedDuration,
    last: Option<Timestamp>,
    quiet_end: Option<Timestamp>,
) -> Timestamp {
    let open = last.and_then(|l| l.checked_add(window).ok());
    [Some(now), open, quiet_end]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now)
}

/// The subject, text and HTML of a batch for `name`.
fn render(
    set: &Templates,
    name: &str,
    items: &[BatchItem],
) -> Result<(String, String, String), TemplateError> {
    let ctx = minijinja::context! {
        name => name,
        items => templates::value(items),
    };
    set.notification("batch", &ctx)
}

/// One person's notices of this event, for [`Engine::coalesce_mail`].
pub(crate) struct Notices<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub mine: &'a [&'a people::Owed],
    /// The mail to send if it goes at once (the notice, or this event's digest).
    pub now: Letter<'a>,
    /// When the person's quiet hours end, if they hold these notices.
    pub quiet_end: Option<Timestamp>,
}

impl Engine {
    /// Sends a person's notices at once, or adds them to the person's batch.
    pub(crate) fn coalesce_mail(
        &self,
        txn: &mut Txn<'_>,
        smtp: &SmtpConfig,
        event: &Event,
        ticket: &Ticket,
        n: Notices<'_>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut w: Window = txn
            .get(Tree::Meta, &key(n.name))?
            .map(|b| decode(Tree::Meta, &b))
            .transpose()?
            .unwrap_or_default();
        let own = due(now, smtp.coalesce.0, w.last, n.quiet_end);
        // Only a batch nobody has tried yet, still waiting, can take more.
        let open = match w.batch {
            Some(id) => pending_row(txn, id)?
                .filter(|r| r.attempts == 0 && r.next_at.is_some_and(|at| at > now)),
            None => None,
        };
        if open.is_none() && own <= now {
            let id = ticket.id;
            self.write_mail(txn, smtp, event, id, n.now)?;
            w = Window {
                last: Some(now),
                batch: None,
            };
            txn.put(Tree::Meta, key(n.name), encode(&w));
            return Ok(());
        }
        let mut items = match people::batch_items(&self.settings.templates, n.mine, n.name, ticket)
        {
            Ok(items) => items,
            Err(e) => {
                warn!(ticket = %ticket.id, person = %n.name, error = %e, "Notification not mailed: its template failed.");
                return Ok(());
            }
        };
        // The open batch's notices; one whose row is not a mail is left to go as it is.
        let earlier = open.and_then(|row| match serde_json::from_str::<Envelope>(&row.body) {
            Ok(e) => Some((row, e.batch)),
            Err(e) => {
                warn!(row = row.id, person = %n.name, error = %e, "A batch row is not a mail; it is left as it is.");
                None
            }
        });
        let (queue_ticket, due_at) = match earlier {
            Some((row, mut all)) => {
                all.append(&mut items);
                items = all;
                let at = row.next_at.map_or(own, |t| t.min(own));
                let ticket = row.ticket;
                withdraw(txn, row, now)?;
                (ticket, at)
            }
            None => (ticket.id, own),
        };
        items.sort_by_key(|i| people::rank_of(&i.kind));
        let (subject, text, html) = match render(&self.settings.templates, n.name, &items) {
            Ok(r) => r,
            Err(e) => {
                warn!(ticket = %ticket.id, person = %n.name, error = %e, "Notification not mailed: the batch template failed.");
                return Ok(());
            }
        };
        debug!(person = %n.name, notices = items.len(), due = %due_at, "Notifications coalesced into one batch.");
        let letter = Letter {
            kind: BATCH,
            to: n.address,
            subject,
            text,
            html: Some(html),
            thread: &[],
            auto: "auto-generated",
            held: Some((format!("{MAIL_DESTINATION}/{}", n.name), due_at)),
            batch: items,
        };
        let (row, _) = self.write_mail(txn, smtp, event, queue_ticket, letter)?;
        w = Window {
            last: Some(due_at),
            batch: Some(row),
        };
        txn.put(Tree::Meta, key(n.name), encode(&w));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_waits_for_the_window_or_the_quiet_hours_whichever_ends_later() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let now = at("2026-01-10T10:00:00Z");
        let w = SignedDuration::from_mins(5);
        assert_eq!(due(now, w, None, None), now);
        assert_eq!(due(now, w, Some(at("2026-01-10T09:50:00Z")), None), now);
        assert_eq!(
            due(now, w, Some(at("2026-01-10T09:58:00Z")), None),
            at("2026-01-10T10:03:00Z")
        );
        assert_eq!(
            due(
                now,
                w,
                Some(at("2026-01-10T09:58:00Z")),
                Some(at("2026-01-10T11:00:00Z"))
            ),
            at("2026-01-10T11:00:00Z")
        );
    }
}

#[cfg(test)]
mod engine_tests {
    //! Coalescing in the engine, on a pinned clock: the first notice goes at once, the next
    //! ones become one batch row due at the window's end, and after it a notice goes at once.

    use std::sync::Arc;

    use jiff::SignedDuration;

    use crate::event::EventBody;
    use crate::store::layout::outbox;
    use crate::store::{MemoryStore, Store, Tree};
    use crate::tickets::command::{Action, Command};
    use crate::tickets::{Actor, NewTicket};
    use crate::vendors::OutboxRow;

    const CONFIG: &str = r#"
[groups.triage]
[groups.network]
members = ["alice", "bob"]
[smtp]
host = "127.0.0.1"
from = "desk@example.com"
coalesce = "5m"
[smtp.notify]
assigned = ["assignee"]
p1_opened = []
[smtp.people]
bob = "bob@example.com"
"#;

    fn rows(store: &dyn Store) -> Vec<OutboxRow> {
        outbox::rows(store, Tree::Outbox, None, None, 100).unwrap()
    }

    #[tokio::test]
    async fn notices_within_the_window_wait_as_one_batch_row() {
        let config = crate::config::parse(CONFIG, "t").unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let rules = crate::engine::test_support::rules(&config, &[]);
        let t0 = "2026-01-10T10:00:00Z";
        let (engine, clock) =
            crate::engine::test_support::engine(&config, store.clone(), rules, t0);
        let assign = |title: &str| {
            let new: NewTicket = serde_json::from_value(serde_json::json!({
                "kind": "incident", "title": title, "group": "network", "assignee": "bob"
            }))
            .unwrap();
            EventBody::Command(Command {
                by: Actor::User {
                    name: "carol".into(),
                },
                action: Action::Create(new),
            })
        };
        engine.submit(assign("one")).await.unwrap();
        let r = rows(&*store);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(
            (r[0].vendor.as_str(), r[0].kind.as_str()),
            ("@smtp", "mail.assigned")
        );

        clock.advance(SignedDuration::from_secs(30));
        engine.submit(assign("two")).await.unwrap();
        clock.advance(SignedDuration::from_secs(30));
        engine.submit(assign("three")).await.unwrap();
        let r = rows(&*store);
        let batches: Vec<&OutboxRow> = r.iter().filter(|r| r.kind == super::BATCH).collect();
        assert_eq!((r.len(), batches.len()), (2, 1), "{r:?}");
        let b = batches[0];
        assert_eq!(b.vendor, "@smtp/bob");
        assert_eq!(b.next_at, Some("2026-01-10T10:05:00Z".parse().unwrap()));
        let e: crate::mail::outbound::Envelope = serde_json::from_str(&b.body).unwrap();
        let titles: Vec<&str> = e.batch.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(titles, ["two", "three"]);
        assert!(e.message.contains("(and 1 more)"), "{}", e.message);
        assert!(
            e.message.contains(&format!("Message-ID: <itsmd.{}.", b.id)),
            "{}",
            e.message
        );

        // After the batch's time a new window starts from it: within it, a new batch.
        clock.set("2026-01-10T10:07:00Z".parse().unwrap());
        engine.submit(assign("four")).await.unwrap();
        let r = rows(&*store);
        let late = r.iter().find(|r| r.body.contains("four")).unwrap();
        assert_eq!(late.kind, super::BATCH, "{r:?}");
        assert_eq!(late.next_at, Some("2026-01-10T10:10:00Z".parse().unwrap()));
        // Past that window, a notice goes at once again.
        clock.set("2026-01-10T10:30:00Z".parse().unwrap());
        engine.submit(assign("five")).await.unwrap();
        let r = rows(&*store);
        let now = r.iter().find(|r| r.body.contains("five")).unwrap();
        assert_eq!(
            (now.vendor.as_str(), now.kind.as_str()),
            ("@smtp", "mail.assigned")
        );

        // `itsmd outbox replay --vendor @smtp/bob` takes the person's queue: due now.
        let replay = crate::vendors::Delivery::ReplayVendor {
            vendor: "@smtp/bob".into(),
        };
        engine.submit(EventBody::Delivery(replay)).await.unwrap();
        let r = rows(&*store);
        let late = r.iter().find(|r| r.body.contains("four")).unwrap();
        assert_eq!(late.next_at, Some("2026-01-10T10:30:00Z".parse().unwrap()));
    }
}
