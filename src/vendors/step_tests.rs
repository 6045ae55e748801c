//! The outbox and vendor callbacks through the real engine (queue, batches, rules, commit)
//! on an in-memory store with a manual clock: which changes become messages, per-ticket
//! order, attempt results, dead letters, replays, and callbacks' all-or-nothing.

use std::ops::Bound;
use std::sync::Arc;

use jiff::SignedDuration;
use serde_json::Value;

use crate::alerts::Alert;
use crate::clock::ManualClock;
use crate::config;
use crate::engine::{EngineHandle, Receipt, SubmitError};
use crate::event::EventBody;
use crate::store::layout::outbox::parse_due_key;
use crate::store::layout::{Outcome, outbox};
use crate::store::{MemoryStore, Store, Tree, layout};
use crate::tickets::{
    Action, Actor, Command, CommentRequest, Kind, NewTicket, State, TicketId, TicketUpdate,
    TransitionRequest, Visibility,
};
use crate::vendors::{AttemptResult, Delivery, OutboxRow, VendorCallback};

const CONFIG: &str = r#"
[vendors.acme]
url = "http://127.0.0.1:9/hook"
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
[vendors.acme.status_map]
acknowledged = "in_progress"
resolved = { to = "resolved", resolution = "fixed" }
closed = "closed"
[vendors.quiet]
url = "http://127.0.0.1:9/hook"
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
events = ["ticket.assigned"]
"#;

struct Harness {
    engine: EngineHandle,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
}

fn start(config_text: &str, rules: &[(&str, &str)]) -> Harness {
    let config = config::parse(config_text, "test").unwrap();
    let rules = crate::engine::test_support::rules(&config, rules);
    let store = Arc::new(MemoryStore::default());
    let (engine, clock) =
        crate::engine::test_support::engine(&config, store.clone(), rules, "2026-01-05T09:00:00Z");
    Harness {
        engine,
        store,
        clock,
    }
}

impl Harness {
    async fn run(&self, action: Action) -> Result<Receipt, SubmitError> {
        let by = Actor::User {
            name: "alice".into(),
        };
        self.engine
            .submit(EventBody::Command(Command { by, action }))
            .await
    }

    async fn incident(&self) -> TicketId {
        let new: NewTicket =
            serde_json::from_value(serde_json::json!({"kind": "incident", "title": "Array down"}))
                .unwrap();
        self.run(Action::Create(new)).await.unwrap().ticket.unwrap()
    }

    async fn assign(&self, ticket: TicketId, vendor: Option<&str>) -> Result<Receipt, SubmitError> {
        let fields = TicketUpdate {
            vendor: Some(vendor.map(str::to_string)),
            ..TicketUpdate::default()
        };
        self.run(Action::Update {
            ticket,
            fields,
            if_assignee: None,
        })
        .await
    }

    async fn comment(&self, ticket: TicketId, visibility: Visibility) {
        let comment = CommentRequest {
            body: format!("a {visibility} note"),
            visibility,
        };
        self.run(Action::Comment { ticket, comment }).await.unwrap();
    }

    fn rows(&self, tree: Tree) -> Vec<OutboxRow> {
        outbox::rows(&*self.store, tree, None, None, 1000).unwrap()
    }

    /// Row ids in the due index, in due order.
    fn due(&self) -> Vec<u64> {
        self.store
            .range(Tree::OutboxDue, Bound::Unbounded, Bound::Unbounded)
            .map(|i| parse_due_key(&i.unwrap().0).unwrap().1)
            .collect()
    }

    async fn attempted(&self, row: u64, attempt: u32, result: AttemptResult) {
        let at = self.engine.now();
        let d = Delivery::Attempted {
            row,
            attempt,
            at,
            result,
        };
        self.engine.submit(EventBody::Delivery(d)).await.unwrap();
    }

    async fn callback(
        &self,
        id: &str,
        ticket: TicketId,
        status: Option<&str>,
    ) -> Result<Receipt, SubmitError> {
        let cb = VendorCallback {
            vendor: "acme".into(),
            webhook_id: id.into(),
            ticket,
            reference: Some("ACME-77".into()),
            comment: Some("looking into it".into()),
            status: status.map(str::to_string),
        };
        self.engine.submit(EventBody::VendorCallback(cb)).await
    }

    fn ticket(&self, id: TicketId) -> crate::tickets::Ticket {
        layout::get_ticket(&*self.store, id).unwrap().unwrap()
    }
}

fn body(row: &OutboxRow) -> Value {
    serde_json::from_str(&row.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendors_ticket_changes_queue_in_order_and_only_the_head_is_due() {
    let h = start(CONFIG, &[]);
    let id = h.incident().await;
    assert!(h.rows(Tree::Outbox).is_empty(), "no vendor yet, no message");

    h.assign(id, Some("acme")).await.unwrap();
    let step = TransitionRequest {
        to: State::InProgress,
        reason: "working".into(),
        resolution: None,
        hold_reason: None,
        outcome: None,
        window_override: None,
    };
    h.run(Action::Transition { ticket: id, step })
        .await
        .unwrap();
    h.comment(id, Visibility::Internal).await;
    h.comment(id, Visibility::Public).await;

    let rows = h.rows(Tree::Outbox);
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["ticket.assigned", "ticket.transitioned", "ticket.commented"],
        "internal comments are not sent"
    );
    assert_eq!(
        h.due(),
        [rows[0].id],
        "only the head of the ticket's queue is due"
    );
    assert_eq!(body(&rows[0])["data"]["ticket"]["vendor"], "acme");
    assert_eq!(
        body(&rows[1])["data"]["change"]["changes"][0]["field"],
        "state"
    );
    assert_eq!(body(&rows[2])["data"]["comment"]["body"], "a public note");
    assert!(rows.iter().all(|r| r.msg_id.starts_with("msg_")));

    // The head is delivered: the next one becomes due.
    h.attempted(rows[0].id, 1, AttemptResult::Delivered { status: 200 })
        .await;
    assert_eq!(h.due(), [rows[1].id]);
    assert_eq!(h.rows(Tree::Outbox).len(), 2);
    assert!(
        h.rows(Tree::OutboxDead).is_empty(),
        "delivered rows are not dead"
    );

    // A vendor that receives only assignments is not told about the rest.
    let other = h.incident().await;
    h.assign(other, Some("quiet")).await.unwrap();
    h.comment(other, Visibility::Public).await;
    let quiet: Vec<_> = h
        .rows(Tree::Outbox)
        .into_iter()
        .filter(|r| r.vendor == "quiet")
        .collect();
    assert_eq!(quiet.len(), 1);
    assert_eq!(quiet[0].kind, "ticket.assigned");

    // Unassigning tells the old vendor; an unknown vendor is refused with the known ones.
    h.assign(id, None).await.unwrap();
    assert_eq!(
        h.rows(Tree::Outbox).last().unwrap().kind,
        "ticket.unassigned"
    );
    let err = h.assign(id, Some("nobody")).await.unwrap_err();
    assert!(
        err.to_string().contains("configured vendors: acme, quiet"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_retry_park_dead_and_replay_with_the_same_webhook_id() {
    let h = start(CONFIG, &[]);
    let id = h.incident().await;
    h.assign(id, Some("acme")).await.unwrap();
    h.comment(id, Visibility::Public).await;
    let rows = h.rows(Tree::Outbox);
    let (first, second) = (rows[0].clone(), rows[1].clone());

    let later = h.engine.now() + SignedDuration::from_secs(30);
    let retry = AttemptResult::Retry {
        error: "HTTP 503".into(),
        next_at: later,
        delay_ms: 30_000,
    };
    h.attempted(first.id, 1, retry.clone()).await;
    let row = outbox::pending(&*h.store, first.id).unwrap().unwrap();
    assert_eq!((row.attempts, row.next_at), (1, Some(later)));
    assert_eq!(row.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(h.due(), [first.id]);

    // A result for an attempt that is not the next one (a late duplicate) changes nothing.
    h.attempted(first.id, 1, AttemptResult::Delivered { status: 200 })
        .await;
    assert_eq!(outbox::pending(&*h.store, first.id).unwrap().unwrap(), row);

    let dead = AttemptResult::Dead {
        error: "HTTP 503; gave up after 2 attempt(s)".into(),
    };
    h.attempted(first.id, 2, dead).await;
    let parked = outbox::dead(&*h.store, first.id).unwrap().unwrap();
    assert_eq!(parked.attempts, 2);
    assert!(parked.dead_at.is_some());
    assert_eq!(
        h.due(),
        [second.id],
        "the next message of the ticket goes on"
    );

    h.clock.advance(SignedDuration::from_mins(5));
    let d = Delivery::ReplayRow { row: first.id };
    h.engine.submit(EventBody::Delivery(d)).await.unwrap();
    assert!(outbox::dead(&*h.store, first.id).unwrap().is_none());
    let again = outbox::pending(&*h.store, first.id).unwrap().unwrap();
    assert_eq!(
        (again.attempts, again.next_at),
        (0, None),
        "queued behind the head"
    );
    assert_eq!(again.msg_id, first.msg_id, "a replay keeps the webhook-id");
    h.attempted(second.id, 1, AttemptResult::Delivered { status: 204 })
        .await;
    assert_eq!(h.due(), [first.id]);

    let d = Delivery::ReplayRow { row: 999 };
    let err = h.engine.submit(EventBody::Delivery(d)).await.unwrap_err();
    assert!(err.to_string().contains("no outbox row 999"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_vendor_until_a_vendor_replay() {
    let h = start(CONFIG, &[]);
    let id = h.incident().await;
    h.assign(id, Some("acme")).await.unwrap();
    let row = h.rows(Tree::Outbox)[0].clone();
    let gone = AttemptResult::Gone {
        error: "410 Gone".into(),
    };
    h.attempted(row.id, 1, gone).await;
    let state = outbox::vendor_state(&*h.store, "acme").unwrap();
    assert!(state.disabled_at.is_some());
    assert_eq!(h.rows(Tree::Outbox).len(), 1, "the row is kept");

    h.clock.advance(SignedDuration::from_mins(1));
    let d = Delivery::ReplayVendor {
        vendor: "acme".into(),
    };
    h.engine.submit(EventBody::Delivery(d)).await.unwrap();
    assert!(
        outbox::vendor_state(&*h.store, "acme")
            .unwrap()
            .disabled_at
            .is_none()
    );
    let row = outbox::pending(&*h.store, row.id).unwrap().unwrap();
    assert_eq!((row.attempts, row.next_at), (0, Some(h.engine.now())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_map_status_comment_and_reference_once_and_all_or_nothing() {
    let h = start(CONFIG, &[]);
    let id = h.incident().await;
    let err = h.callback("cb_0", id, None).await.unwrap_err();
    assert!(
        err.to_string().contains("not assigned to vendor `acme`"),
        "{err}"
    );

    h.assign(id, Some("acme")).await.unwrap();
    let queued = h.rows(Tree::Outbox).len();
    let first = h.callback("cb_1", id, Some("acknowledged")).await.unwrap();
    assert_eq!(first.outcome, Outcome::Updated);
    let t = h.ticket(id);
    assert_eq!(t.state, State::InProgress);
    assert_eq!(t.process.vendor_ref.as_deref(), Some("ACME-77"));
    assert_eq!(t.process.comments, 1);
    let history = layout::history(&*h.store, id).unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        last.actor,
        Actor::Vendor {
            name: "acme".into()
        }
    );
    assert_eq!(
        h.rows(Tree::Outbox).len(),
        queued,
        "a vendor's own changes are not echoed"
    );

    // The same webhook-id again: nothing happens twice.
    let again = h.callback("cb_1", id, Some("acknowledged")).await.unwrap();
    assert_eq!(
        (again.outcome, again.event_id),
        (Outcome::Seen, first.event_id)
    );
    assert_eq!(h.ticket(id).process.comments, 1);

    // An illegal transition refuses the whole callback: no comment either.
    let before = h.ticket(id);
    let err = h.callback("cb_2", id, Some("closed")).await.unwrap_err();
    assert!(matches!(err, SubmitError::Rejected(_)), "{err}");
    assert_eq!(h.ticket(id), before);
    let err = h.callback("cb_3", id, Some("exploded")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("mapped: acknowledged, closed, resolved"),
        "{err}"
    );

    h.callback("cb_4", id, Some("resolved")).await.unwrap();
    let t = h.ticket(id);
    assert_eq!(t.state, State::Resolved);
    assert_eq!(
        t.process.resolution,
        Some(crate::tickets::Resolution::Fixed)
    );
    // The refused cb_2 left no trace: its webhook-id is not remembered as applied.
    let seen = h
        .store
        .get(Tree::VendorCallbacks, &outbox::callback_key("acme", "cb_2"));
    assert_eq!(seen.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_notify_and_assign_vendors_and_an_unknown_vendor_fails_the_rule() {
    let rules = [(
        "10-vendors.rhai",
        r#"
        fn on_alert(alert, ticket) {
            if alert.labels.vendor == "acme" { ticket.vendor = "acme"; }
            if alert.labels.vendor == "ping" { ticket.notify("acme"); }
            if alert.labels.vendor == "typo" { ticket.notify("acmee"); ticket.add_tag("kept?"); }
        }
        "#,
    )];
    let h = start(CONFIG, &rules);
    let send = |key: &str, vendor: &str| {
        let labels = [
            ("alertname".to_string(), key.to_string()),
            ("vendor".to_string(), vendor.to_string()),
        ]
        .into();
        EventBody::Alert(Alert::firing(key, key, labels))
    };
    let assigned = h.engine.submit(send("a", "acme")).await.unwrap();
    let pinged = h.engine.submit(send("b", "ping")).await.unwrap();
    let typo = h.engine.submit(send("c", "typo")).await.unwrap();

    let rows = h.rows(Tree::Outbox);
    let of = |r: &Receipt| -> Vec<String> {
        rows.iter()
            .filter(|row| Some(row.ticket) == r.ticket)
            .map(|row| row.kind.clone())
            .collect()
    };
    assert_eq!(of(&assigned), ["ticket.assigned"]);
    assert_eq!(
        h.ticket(assigned.ticket.unwrap()).process.vendor.as_deref(),
        Some("acme")
    );
    assert_eq!(of(&pinged), ["ticket.notified"]);
    let notified = body(rows.iter().find(|r| r.kind == "ticket.notified").unwrap());
    assert_eq!(notified["data"]["notified_by"]["file"], "10-vendors.rhai");
    assert!(of(&typo).is_empty());
    let before = h.rows(Tree::Outbox).len();
    let quiet = [(
        "20-quiet.rhai",
        r#"fn on_alert(alert, ticket) { ticket.notify("quiet"); }"#,
    )];
    drop(rows);
    let h2 = start(CONFIG, &quiet);
    h2.engine.submit(send("d", "none")).await.unwrap();
    assert!(
        h2.rows(Tree::Outbox).is_empty(),
        "quiet receives only ticket.assigned"
    );
    assert_eq!(h.rows(Tree::Outbox).len(), before);

    let t = h.ticket(typo.ticket.unwrap());
    assert_eq!(
        t.group.as_deref(),
        Some("triage"),
        "a failed rule sends the ticket to triage"
    );
    assert!(
        !t.tags.contains("kept?"),
        "the failed rule's other decisions are dropped"
    );
    let journal = layout::get_event(&*h.store, typo.event_id)
        .unwrap()
        .unwrap();
    assert!(
        journal.rule_failures[0]
            .contains("vendor `acmee` is not configured; configured vendors: acme, quiet"),
        "{:?}",
        journal.rule_failures
    );
    assert_eq!(t.kind(), Kind::Incident);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refiring_alerts_count_alone_is_not_sent_to_the_vendor() {
    let rules = [(
        "10-vendors.rhai",
        r#"fn on_alert(alert, ticket) { if ticket.is_new { ticket.vendor = "acme"; } }"#,
    )];
    let h = start(CONFIG, &rules);
    let labels: std::collections::BTreeMap<String, String> =
        [("alertname".to_string(), "disk".to_string())].into();
    let firing = EventBody::Alert(Alert::firing("disk", "disk full", labels));
    let first = h.engine.submit(firing.clone()).await.unwrap();
    let again = h.engine.submit(firing).await.unwrap();
    assert_eq!(again.outcome, Outcome::Updated);
    let id = first.ticket.unwrap();
    assert_eq!(h.ticket(id).alert.unwrap().count, 2);
    let kinds: Vec<String> = h.rows(Tree::Outbox).into_iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        ["ticket.assigned"],
        "the count bump is nobody's news"
    );
}
