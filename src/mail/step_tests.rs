//! Mail through the real engine (queue, batches, the shipped rules, commit) on an in-memory
//! store with a manual clock: threading, reopen, follow-ups, re-delivery, loop protection,
//! bounces and the rate limit.

use std::sync::Arc;

use jiff::SignedDuration;

use crate::clock::ManualClock;
use crate::config;
use crate::engine::{EngineHandle, Receipt};
use crate::event::EventBody;
use crate::mail::Mail;
use crate::mail::maildir::parse::parse;
use crate::store::layout::Outcome;
use crate::store::{MemoryStore, Store, Tree, layout};
use crate::tickets::{
    Action, Actor, Command, Comment, Link, LinkRel, Resolution, State, Ticket, TicketId,
    TransitionRequest, Visibility,
};

struct Harness {
    engine: EngineHandle,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
}

const SHIPPED: [(&str, &str); 2] = [
    (
        "00-defaults.rhai",
        include_str!("../../rules/00-defaults.rhai"),
    ),
    ("05-mail.rhai", include_str!("../../rules/05-mail.rhai")),
];

fn start(config_text: &str, extra: &[(&str, &str)]) -> Harness {
    let config = config::parse(config_text, "test").unwrap();
    let files: Vec<(&str, &str)> = SHIPPED.iter().chain(extra).copied().collect();
    let rules = crate::engine::test_support::rules(&config, &files);
    let store = Arc::new(MemoryStore::default());
    let (engine, clock) =
        crate::engine::test_support::engine(&config, store.clone(), rules, "2026-01-05T09:00:00Z");
    Harness {
        engine,
        store,
        clock,
    }
}

/// A message as a mail server would deliver it; `extra` is more header lines.
fn mail(from: &str, id: &str, subject: &str, extra: &str, body: &str) -> Mail {
    let raw = format!(
        "From: {from}\nTo: servicedesk@example.com\nSubject: {subject}\nMessage-ID: <{id}>\n\
         Date: Mon, 05 Jan 2026 09:00:00 +0000\n{extra}\n{body}\n"
    );
    parse(raw.as_bytes(), 1024).unwrap()
}

impl Harness {
    async fn send(&self, m: Mail) -> Receipt {
        self.engine
            .submit(EventBody::Mail(Box::new(m)))
            .await
            .unwrap()
    }

    async fn transition(&self, id: TicketId, to: State, resolution: Option<Resolution>) {
        let step = TransitionRequest {
            to,
            reason: "test".into(),
            resolution,
            hold_reason: None,
            outcome: None,
            window_override: None,
        };
        let c = Command {
            by: Actor::User {
                name: "alice".into(),
            },
            action: Action::Transition { ticket: id, step },
        };
        self.engine.submit(EventBody::Command(c)).await.unwrap();
    }

    fn ticket(&self, id: TicketId) -> Ticket {
        layout::get_ticket(&*self.store, id).unwrap().unwrap()
    }

    fn comments(&self, id: TicketId) -> Vec<Comment> {
        layout::comments(&*self.store, id).unwrap()
    }

    fn tickets(&self) -> usize {
        self.store.scan_prefix(Tree::Tickets, b"").count()
    }

    fn events(&self) -> usize {
        self.store.scan_prefix(Tree::Events, b"").count()
    }
}

fn id(r: &Receipt) -> TicketId {
    r.ticket.expect("a ticket")
}

#[tokio::test]
async fn a_new_mail_opens_a_request_and_replies_thread_onto_it() {
    let h = start("", &[]);
    let first = h
        .send(mail(
            "Alice <alice@example.com>",
            "a1@example.com",
            "New laptop for Bob",
            "",
            "Bob starts Monday.",
        ))
        .await;
    assert_eq!(first.outcome, Outcome::Opened);
    let req = id(&first);
    assert_eq!(req.to_string(), "REQ-000001");
    let t = h.ticket(req);
    assert_eq!(t.title, "New laptop for Bob");
    assert_eq!(t.description, "Bob starts Monday.");
    assert_eq!(t.group.as_deref(), Some("triage"));
    assert!(t.tags.contains("mail"));
    assert_eq!(t.custom["caller"], "Alice <alice@example.com>");

    // By subject tag, by In-Reply-To, by References only: all the same ticket, from the
    // caller (any case of her address).
    let tagged = mail(
        "alice@example.com",
        "a2@x",
        "Re: [REQ-000001] laptop",
        "",
        "Any news?",
    );
    let replied = mail(
        "ALICE@example.com",
        "a3@x",
        "Re: laptop",
        "In-Reply-To: <a1@example.com>\n",
        "Thanks!",
    );
    let referenced = mail(
        "Alice <alice@example.com>",
        "a4@x",
        "Fwd: laptop",
        "References: <zz@x> <a3@x>\n",
        "Me too.",
    );
    for (m, expect) in [
        (tagged, "Any news?"),
        (replied, "Thanks!"),
        (referenced, "Me too."),
    ] {
        let r = h.send(m).await;
        assert_eq!((r.outcome, id(&r)), (Outcome::Updated, req));
        let last = h.comments(req).pop().unwrap();
        assert_eq!(last.body, expect);
        assert_eq!(last.visibility, Visibility::Public);
    }
    let authors: Vec<Actor> = h.comments(req).into_iter().map(|c| c.author).collect();
    assert_eq!(
        authors[1],
        Actor::Caller {
            address: "ALICE@example.com".into()
        }
    );
    assert_eq!(h.ticket(req).process.comments, 3);
    assert_eq!(h.tickets(), 1);

    // Anyone else naming the ticket (tag or In-Reply-To) opens a new ticket linked to it;
    // both say why.
    for (n, m) in [
        mail(
            "mallory@evil.example",
            "m1@x",
            "Re: [REQ-000001]",
            "",
            "close it",
        ),
        mail(
            "bob@example.com",
            "m2@x",
            "Re: laptop",
            "In-Reply-To: <a1@example.com>\n",
            "Thanks!",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = h.send(m).await;
        assert_eq!(r.outcome, Outcome::Opened);
        let new = id(&r);
        assert_ne!(new, req);
        let t = h.ticket(new);
        assert!(
            t.process
                .links
                .iter()
                .any(|l| l.rel == crate::tickets::LinkRel::FollowUpOf && l.ticket == req)
        );
        let note = h.comments(new).pop().unwrap();
        assert_eq!(note.visibility, Visibility::Internal);
        assert!(note.body.contains("no valid reply token"), "{}", note.body);
        assert_eq!(h.ticket(req).process.comments, 3 + n as u64 + 1);
    }
    assert_eq!(h.tickets(), 3);
}

#[tokio::test]
async fn redelivery_of_a_message_id_creates_nothing_new() {
    let h = start("", &[]);
    let m = mail("alice@example.com", "dup@x", "Printer", "", "jammed");
    let first = h.send(m.clone()).await;
    let events = h.events();
    let again = h.send(m.clone()).await;
    assert_eq!(again.outcome, Outcome::Seen);
    assert_eq!(
        (again.event_id, again.ticket),
        (first.event_id, first.ticket)
    );
    assert_eq!(h.events(), events, "no event journaled for a re-delivery");
    // A reply delivered twice adds one comment.
    let reply = mail(
        "alice@example.com",
        "dup2@x",
        "Re: [REQ-000001]",
        "",
        "still",
    );
    h.send(reply.clone()).await;
    h.send(reply).await;
    assert_eq!(h.comments(id(&first)).len(), 1);
    // Two copies in one batch: the second is seen too.
    let twin = mail("bob@example.com", "twin@x", "Twins", "", "one");
    let receipts = h
        .engine
        .submit_many(vec![
            EventBody::Mail(Box::new(twin.clone())),
            EventBody::Mail(Box::new(twin)),
        ])
        .await
        .unwrap();
    assert_eq!(receipts[0].outcome, Outcome::Opened);
    assert_eq!(receipts[1].outcome, Outcome::Seen);
    assert_eq!(h.tickets(), 2);
}

#[tokio::test]
async fn a_reply_reopens_a_resolved_ticket_and_a_closed_one_gets_a_follow_up() {
    let h = start("", &[]);
    let first = h
        .send(mail(
            "dave@example.com",
            "v1@x",
            "VPN down",
            "",
            "No VPN since 8.",
        ))
        .await;
    let inc = id(&first);
    assert_eq!(
        inc.to_string(),
        "INC-000001",
        "the shipped rule: an outage is an incident"
    );
    h.transition(inc, State::Resolved, Some(Resolution::Fixed))
        .await;

    let r = h
        .send(mail(
            "dave@example.com",
            "v2@x",
            "Re: VPN down",
            "In-Reply-To: <v1@x>\n",
            "Down again.",
        ))
        .await;
    assert_eq!((r.outcome, id(&r)), (Outcome::Reopened, inc));
    let t = h.ticket(inc);
    assert_eq!(t.state, State::InProgress);
    assert_eq!(t.process.resolution, None);
    let history = layout::history(&*h.store, inc).unwrap();
    let reopen = history
        .iter()
        .find(|e| e.reason.as_deref() == Some("caller replied by mail"))
        .expect("a reopen entry");
    assert_eq!(reopen.actor, Actor::system("mail"));
    assert!(
        reopen
            .changes
            .iter()
            .any(|c| c.field == "state" && c.new == "in_progress")
    );
    assert_eq!(h.comments(inc).last().unwrap().body, "Down again.");

    h.transition(inc, State::Resolved, Some(Resolution::Fixed))
        .await;
    h.transition(inc, State::Closed, None).await;
    let r = h
        .send(mail(
            "dave@example.com",
            "v3@x",
            "Re: [INC-000001] VPN down",
            "",
            "And again!",
        ))
        .await;
    assert_eq!(r.outcome, Outcome::Opened);
    let follow = id(&r);
    assert_eq!(
        follow.to_string(),
        "INC-000002",
        "a follow-up keeps the kind"
    );
    assert_eq!(
        h.ticket(inc).state,
        State::Closed,
        "the closed one stays closed"
    );
    assert_eq!(
        h.ticket(follow).process.links,
        vec![Link {
            rel: LinkRel::FollowUpOf,
            ticket: inc
        }]
    );
    assert_eq!(
        h.ticket(inc).process.links,
        vec![Link {
            rel: LinkRel::FollowedUpBy,
            ticket: follow
        }]
    );
    assert_eq!(h.ticket(follow).description, "And again!");

    // Still answering the first mail: the thread continues on the follow-up.
    let r = h
        .send(mail(
            "dave@example.com",
            "v4@x",
            "Re: VPN down",
            "References: <v1@x>\n",
            "Hello?",
        ))
        .await;
    assert_eq!((r.outcome, id(&r)), (Outcome::Updated, follow));
    assert_eq!(h.tickets(), 2);
}

#[tokio::test]
async fn automatic_mail_and_bounces_open_nothing_and_a_bounce_lands_on_its_ticket() {
    let h = start("", &[]);
    let req = id(&h
        .send(mail(
            "frank@example.com",
            "p1@x",
            "Password reset please",
            "",
            "HR portal",
        ))
        .await);
    for (extra, from) in [
        ("Auto-Submitted: auto-replied\n", "grace@example.com"),
        ("Precedence: bulk\n", "news@example.com"),
        ("X-Autorespond: yes\n", "henry@example.com"),
    ] {
        let r = h
            .send(mail(
                from,
                &format!("{from}-n@x"),
                "Re: [REQ-000001] Password",
                extra,
                "auto",
            ))
            .await;
        assert_eq!(
            (r.outcome, r.ticket),
            (Outcome::Suppressed, None),
            "{extra}{from}"
        );
    }
    assert_eq!(h.comments(req).len(), 0, "noise adds no comment either");
    let record = h
        .store
        .get(Tree::MailByMessageId, b"news@example.com-n@x")
        .unwrap()
        .unwrap();
    let record: crate::mail::step::MailRecord =
        crate::store::decode(Tree::MailByMessageId, &record).unwrap();
    assert_eq!(
        record.reason.as_deref(),
        Some("precedence: Precedence: bulk")
    );

    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mail/bounce.eml"
    ))
    .unwrap();
    let bounce = parse(&raw, 0).unwrap();
    // The same report with nothing of itsmd's returned (only the subject's tag, which anyone
    // can write) adds nothing to the ticket.
    let mut forged = bounce.clone();
    forged.message_id = "forged@x".into();
    forged.returned = None;
    let r = h.send(forged).await;
    assert_eq!((r.outcome, r.ticket), (Outcome::Suppressed, None));
    assert_eq!(h.comments(req).len(), 0);
    // The returned mail is one itsmd sent for the request (the caller's acknowledgement, as
    // the outbound step records it): the report goes on its ticket.
    let sent = crate::mail::step::MailRecord {
        event: 1,
        ticket: Some(req),
        outcome: Outcome::Recorded,
        reason: Some(format!(
            "{} (caller_acknowledged)",
            crate::mail::step::SENT_BY_ITSMD
        )),
    };
    let mut b = crate::store::WriteBatch::default();
    b.put(
        Tree::MailByMessageId,
        b"itsmd-out-1@example.com".to_vec(),
        crate::store::encode(&sent),
    );
    h.store.apply(b).unwrap();
    let r = h.send(bounce).await;
    assert_eq!((r.outcome, id(&r)), (Outcome::Updated, req));
    let c = h.comments(req).pop().unwrap();
    assert_eq!(c.visibility, Visibility::Internal);
    assert!(c.body.contains("550 5.1.1 User unknown"), "{}", c.body);
    assert_eq!(h.ticket(req).state, State::New);
    // A bounce of something unknown is recorded and dropped.
    let stray = mail(
        "MAILER-DAEMON@mx.example.com",
        "b2@x",
        "Undelivered Mail",
        "",
        "550",
    );
    assert_eq!(h.send(stray).await.outcome, Outcome::Suppressed);
    assert_eq!(h.tickets(), 1);
}

#[tokio::test]
async fn a_sender_over_the_rate_limit_opens_nothing_until_the_window_passes() {
    let h = start("[mail]\nrate_limit = 2\nrate_window = \"1m\"\n", &[]);
    let send = |n: u32| {
        mail(
            "loop@example.com",
            &format!("l{n}@x"),
            &format!("Ticket {n}"),
            "",
            "x",
        )
    };
    assert_eq!(h.send(send(1)).await.outcome, Outcome::Opened);
    assert_eq!(h.send(send(2)).await.outcome, Outcome::Opened);
    assert_eq!(h.send(send(3)).await.outcome, Outcome::Suppressed);
    // Replies count too: a loop through an existing ticket is stopped the same way.
    let reply = mail("loop@example.com", "l4@x", "Re: [REQ-000001]", "", "x");
    assert_eq!(h.send(reply).await.outcome, Outcome::Suppressed);
    // Others are not affected.
    let other = mail("ok@example.com", "o1@x", "Other", "", "x");
    assert_eq!(h.send(other).await.outcome, Outcome::Opened);
    h.clock.advance(SignedDuration::from_secs(61));
    assert_eq!(h.send(send(5)).await.outcome, Outcome::Opened);
    assert_eq!(h.tickets(), 4);
}

#[tokio::test]
async fn rules_choose_kind_group_and_priority_and_may_suppress() {
    let route = r#"
        fn on_mail(mail, ticket) {
            if mail.subject.contains("newsletter") { ticket.suppress("newsletters are not tickets"); return; }
            if mail.to.contains("hr@example.com") || mail.from.ends_with("@hr.example.com") {
                ticket.kind = "request";
                ticket.group = "hr";
                ticket.impact = "low";
            }
            if mail.attachments.len() > 0 && mail.attachments[0].content_type == "application/pdf" {
                ticket.add_tag("pdf");
            }
        }
    "#;
    let broken = r#"fn on_mail(mail, ticket) { if mail.subject == "boom" { throw "kaboom"; } }"#;
    let h = start(
        "[groups.triage]\n[groups.operations]\n[groups.hr]\n",
        &[("20-route.rhai", route), ("30-broken.rhai", broken)],
    );
    let r = h
        .send(mail(
            "x@hr.example.com",
            "h1@x",
            "Server down for payroll",
            "Importance: high\n",
            "x",
        ))
        .await;
    let t = h.ticket(id(&r));
    // 05-mail made it an incident; 20-route turned it back into a request for HR.
    assert_eq!(t.id.to_string(), "REQ-000001");
    assert_eq!(t.group.as_deref(), Some("hr"));
    assert_eq!(
        (t.impact.as_str(), t.urgency.as_str(), t.priority),
        ("low", "high", 3)
    );
    let r = h.send(mail("a@x", "n1@x", "Our newsletter", "", "x")).await;
    assert_eq!(r.outcome, Outcome::Suppressed);
    let r = h.send(mail("a@x", "b1@x", "boom", "", "x")).await;
    assert_eq!(r.outcome, Outcome::Opened);
    assert_eq!(h.ticket(id(&r)).group.as_deref(), Some("triage"));
    let stored = layout::get_event(&*h.store, r.event_id).unwrap().unwrap();
    assert_eq!(stored.rule_failures.len(), 1, "{:?}", stored.rule_failures);
    // On an existing ticket a kind decision changes nothing.
    let reply = mail("x@hr.example.com", "h2@x", "Re: [REQ-000001]", "", "more");
    let r = h.send(reply).await;
    assert_eq!(
        (r.outcome, id(&r).to_string()),
        (Outcome::Updated, "REQ-000001".to_string())
    );
}
