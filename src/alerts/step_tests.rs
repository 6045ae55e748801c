//! Correlation over time, driven through the real engine (queue, batches, rules, commit) on
//! an in-memory store with a manual clock, so reopen windows and quiet periods are crossed
//! without waiting.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

use crate::alerts::{Alert, AlertFormat, AlertStatus};
use crate::clock::ManualClock;
use crate::config;
use crate::engine::{EngineHandle, Receipt};
use crate::event::EventBody;
use crate::store::layout::Outcome;
use crate::store::{MemoryStore, ScanIter, Store, StoreError, Tree, Write, WriteBatch, layout};
use crate::tickets::{HistoryEntry, Link, LinkRel, Resolution, Ticket, TicketId};

/// A memory store that remembers, per committed batch, how many puts went to each tree.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    batches: Mutex<Vec<BTreeMap<Tree, usize>>>,
}

impl Store for CountingStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)
    }
    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        self.inner.range(tree, start, end)
    }
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut puts = BTreeMap::new();
        for w in &batch.writes {
            if let Write::Put { tree, .. } = w {
                *puts.entry(*tree).or_default() += 1;
            }
        }
        self.batches.lock().unwrap().push(puts);
        self.inner.apply(batch)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn size_on_disk(&self) -> u64 {
        0
    }
}

struct Harness {
    engine: EngineHandle,
    store: Arc<CountingStore>,
    clock: Arc<ManualClock>,
}

fn start(config_text: &str, rules: &[(&str, &str)]) -> Harness {
    let config = config::parse(config_text, "test").unwrap();
    let rules = crate::engine::test_support::rules(&config, rules);
    let store = Arc::new(CountingStore::default());
    let (engine, clock) =
        crate::engine::test_support::engine(&config, store.clone(), rules, "2026-01-05T09:00:00Z");
    Harness {
        engine,
        store,
        clock,
    }
}

fn alert(key: &str, status: AlertStatus) -> Alert {
    let labels: BTreeMap<String, String> = [
        ("alertname".to_string(), "Down".to_string()),
        ("instance".to_string(), key.to_string()),
    ]
    .into();
    Alert {
        source: "test".into(),
        key: key.into(),
        fingerprint: crate::alerts::fingerprint(&labels),
        status,
        severity: "critical".into(),
        summary: format!("{key} down"),
        description: None,
        labels,
        annotations: BTreeMap::new(),
        starts_at: None,
        ends_at: None,
        generator_url: None,
        format: AlertFormat::Generic,
        acknowledged: false,
        expired: None,
    }
}

impl Harness {
    async fn send(&self, a: Alert) -> Receipt {
        self.engine.submit(EventBody::Alert(a)).await.unwrap()
    }

    fn ticket(&self, id: &str) -> Ticket {
        let id: TicketId = id.parse().unwrap();
        layout::get_ticket(&*self.store, id).unwrap().unwrap()
    }

    fn history(&self, id: &str) -> Vec<HistoryEntry> {
        layout::history(&*self.store, id.parse().unwrap()).unwrap()
    }

    fn occurrences(&self, id: &str) -> usize {
        layout::ticket_alerts(&*self.store, id.parse().unwrap(), None, 1000)
            .unwrap()
            .0
            .len()
    }

    fn advance(&self, by: &str) {
        self.clock.advance(by.parse::<SignedDuration>().unwrap());
    }
}

fn ticket_of(r: &Receipt) -> String {
    r.ticket.expect("a ticket").to_string()
}

#[tokio::test]
async fn a_refire_within_the_window_reopens_and_after_it_opens_a_linked_incident() {
    let h = start("[alerts]\nreopen_window = \"30m\"\n", &[]);
    let first = h.send(alert("db1", AlertStatus::Firing)).await;
    assert_eq!(first.outcome, Outcome::Opened);
    let id = ticket_of(&first);
    h.send(alert("db1", AlertStatus::Resolved)).await;
    let t = h.ticket(&id);
    assert_eq!(t.state.as_str(), "resolved");
    assert_eq!(t.process.resolution, Some(Resolution::AlertCleared));

    h.advance("29m");
    let again = h.send(alert("db1", AlertStatus::Firing)).await;
    assert_eq!(
        (again.outcome, ticket_of(&again)),
        (Outcome::Reopened, id.clone())
    );
    let t = h.ticket(&id);
    assert_eq!(t.state.as_str(), "in_progress");
    assert_eq!(t.process.resolution, None);
    let reopen = h
        .history(&id)
        .into_iter()
        .find(|e| {
            e.reason
                .as_deref()
                .is_some_and(|r| r.contains("fired again 29m"))
        })
        .expect("a reopen entry");
    assert!(
        reopen
            .changes
            .iter()
            .any(|c| c.field == "state" && c.new == "in_progress")
    );

    h.send(alert("db1", AlertStatus::Resolved)).await;
    h.advance("31m");
    let later = h.send(alert("db1", AlertStatus::Firing)).await;
    assert_eq!(later.outcome, Outcome::Opened);
    let new_id = ticket_of(&later);
    assert_ne!(new_id, id);
    let link = |rel, ticket: &str| Link {
        rel,
        ticket: ticket.parse().unwrap(),
    };
    assert_eq!(
        h.ticket(&new_id).process.links,
        vec![link(LinkRel::RecurrenceOf, &id)]
    );
    assert_eq!(
        h.ticket(&id).process.links,
        vec![link(LinkRel::RecurredAs, &new_id)]
    );
    assert_eq!(
        h.ticket(&id).state.as_str(),
        "resolved",
        "the old one stays resolved"
    );
    // A resolve now goes to the new incident, not the old one.
    let r = h.send(alert("db1", AlertStatus::Resolved)).await;
    assert_eq!(ticket_of(&r), new_id);
}

#[tokio::test]
async fn a_grouped_incident_resolves_only_when_all_its_alerts_cleared() {
    // Group by alertname: db1 and db2 share one incident.
    let group = "fn on_alert(alert, ticket) { ticket.key = alert.labels.alertname ?? alert.key; }";
    let h = start("", &[("10-group.rhai", group)]);
    let a = h.send(alert("db1", AlertStatus::Firing)).await;
    let b = h.send(alert("db2", AlertStatus::Firing)).await;
    assert_eq!(ticket_of(&a), ticket_of(&b));
    let id = ticket_of(&a);
    h.send(alert("db1", AlertStatus::Resolved)).await;
    assert_eq!(h.ticket(&id).state.as_str(), "new", "db2 still fires");
    assert_eq!(h.ticket(&id).alert.unwrap().firing(), 1);
    // A resolve without labels (as PagerDuty sends) still finds the ticket its alert went to.
    let mut bare = alert("db2", AlertStatus::Resolved);
    bare.labels.clear();
    h.send(bare).await;
    let t = h.ticket(&id);
    assert_eq!(t.state.as_str(), "resolved");
    let last = h.history(&id).pop().unwrap();
    assert_eq!(
        last.reason.as_deref(),
        Some("all 2 alert(s) cleared; alerts.auto_resolve is on")
    );
    assert_eq!(last.actor, crate::tickets::Actor::system("correlation"));
}

#[tokio::test]
async fn auto_resolve_off_leaves_the_incident_open_with_its_alert_cleared() {
    let h = start("[alerts]\nauto_resolve = false\n", &[]);
    let id = ticket_of(&h.send(alert("db1", AlertStatus::Firing)).await);
    h.send(alert("db1", AlertStatus::Resolved)).await;
    let t = h.ticket(&id);
    assert_eq!(t.state.as_str(), "new");
    assert_eq!(t.alert.unwrap().status, AlertStatus::Resolved);
}

#[tokio::test]
async fn an_acknowledge_starts_work_on_a_new_incident() {
    let h = start("", &[]);
    let id = ticket_of(&h.send(alert("pd-1", AlertStatus::Firing)).await);
    let mut ack = alert("pd-1", AlertStatus::Firing);
    ack.acknowledged = true;
    let r = h.send(ack).await;
    assert_eq!(r.outcome, Outcome::Updated);
    let t = h.ticket(&id);
    assert_eq!(t.state.as_str(), "in_progress");
    assert_eq!(
        t.alert.unwrap().count,
        1,
        "an acknowledge is not another firing"
    );
}

#[tokio::test]
async fn flapping_is_flagged_for_rules_and_lapses_after_the_quiet_period() {
    let tag =
        "fn on_alert(alert, ticket) { if ticket.flapping { ticket.add_tag(\"saw-flapping\"); } }";
    let h = start(
        "[alerts]\nauto_resolve = false\nflap_changes = 3\nflap_window = \"10m\"\nflap_quiet = \"15m\"\n",
        &[("10-tag.rhai", tag)],
    );
    let id = ticket_of(&h.send(alert("q", AlertStatus::Firing)).await);
    for status in [AlertStatus::Resolved, AlertStatus::Firing] {
        h.advance("1m");
        h.send(alert("q", status)).await;
        assert_eq!(h.ticket(&id).alert.unwrap().flapping_until, None);
    }
    h.advance("1m");
    h.send(alert("q", AlertStatus::Resolved)).await; // the third change within 10m
    let until = h
        .ticket(&id)
        .alert
        .unwrap()
        .flapping_until
        .expect("flagged");
    assert_eq!(
        until,
        h.clock_now()
            .checked_add(SignedDuration::from_mins(15))
            .unwrap()
    );
    assert!(h.history(&id).iter().any(|e| {
        e.reason
            .as_deref()
            .is_some_and(|r| r.contains("flapping: 3 state changes within 10m"))
    }));
    h.advance("5m");
    h.send(alert("q", AlertStatus::Resolved)).await;
    assert!(
        h.ticket(&id).tags.contains("saw-flapping"),
        "rules see the flag"
    );

    h.advance("16m");
    h.send(alert("q", AlertStatus::Resolved)).await;
    let t = h.ticket(&id);
    assert_eq!(t.alert.unwrap().flapping_until, None);
    assert!(
        h.history(&id)
            .last()
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("flapping stopped")
    );
}

#[tokio::test]
async fn an_unchanged_resend_only_counts_as_seen() {
    let h = start("", &[]);
    let mut a = alert("p1", AlertStatus::Firing);
    a.starts_at = Some("2026-01-05T08:59:00Z".parse().unwrap());
    let first = h.send(a.clone()).await;
    let id = ticket_of(&first);
    let history = h.history(&id).len();
    let events_before = h.store.inner.scan_prefix(Tree::Events, &[]).count();
    h.advance("1m");
    let again = h.send(a.clone()).await;
    assert_eq!(again.outcome, Outcome::Seen);
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(h.history(&id).len(), history);
    assert_eq!(h.occurrences(&id), 1);
    assert_eq!(
        h.store.inner.scan_prefix(Tree::Events, &[]).count(),
        events_before
    );
    let link = h.ticket(&id).alert.unwrap();
    assert_eq!(link.count, 1);
    assert_eq!(link.last_seen, h.clock_now());

    // Re-sent again within 30 s: nothing is written at all, not even the ticket.
    let batches = h.store.batches.lock().unwrap().len();
    h.advance("10s");
    let seen = h.send(a.clone()).await;
    assert_eq!(seen.outcome, Outcome::Seen);
    let last = h.store.batches.lock().unwrap()[batches..].to_vec();
    assert!(
        last.iter().all(|b| b.get(&Tree::Tickets).is_none()),
        "{last:?}"
    );
    assert_eq!(h.ticket(&id).alert.unwrap().last_seen, link.last_seen);

    // A new start is a new firing: recorded in full.
    a.starts_at = Some("2026-01-05T09:00:30Z".parse().unwrap());
    let refire = h.send(a).await;
    assert_eq!(refire.outcome, Outcome::Updated);
    assert_eq!(h.occurrences(&id), 2);
}

#[tokio::test]
async fn a_storm_in_one_batch_writes_its_ticket_once() {
    // The first event keeps the engine busy, so the storm queues up behind it as one batch.
    let slow = "fn on_alert(alert, ticket) { if alert.key == \"slow\" { let t = timestamp(); while t.elapsed < 0.3 {} } }";
    // Room for the whole storm in one batch.
    let h = start(
        "[rules]\ntime_budget_ms = 2000\n[engine]\nmax_batch = 1024\n",
        &[("10-slow.rhai", slow)],
    );
    let blocker = h
        .engine
        .submit(EventBody::Alert(alert("slow", AlertStatus::Firing)));
    tokio::pin!(blocker);
    // Poll it once: that queues it.
    tokio::select! {
        biased;
        _ = &mut blocker => panic!("answered before the engine could have run it"),
        () = std::future::ready(()) => {}
    }
    while h.engine.queue_depth() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let storm: Vec<EventBody> = (0..300)
        .map(|_| EventBody::Alert(alert("storm", AlertStatus::Firing)))
        .collect();
    let receipts = h.engine.submit_many(storm).await.unwrap();
    blocker.await.unwrap();
    let id = ticket_of(&receipts[0]);
    assert!(receipts.iter().all(|r| ticket_of(r) == id));
    let batches = h.store.batches.lock().unwrap().clone();
    let last = batches.last().unwrap();
    assert_eq!(last.get(&Tree::Tickets), Some(&1), "{batches:?}");
    assert_eq!(
        last.get(&Tree::History),
        Some(&2),
        "opened + one folded entry: {batches:?}"
    );
    assert_eq!(last.get(&Tree::TicketAlerts), Some(&300));
    assert_eq!(h.ticket(&id).alert.unwrap().count, 300);
    let folded = h.history(&id).pop().unwrap();
    assert_eq!(folded.changes[0].old, 1);
    assert_eq!(folded.changes[0].new, 300);
    assert_eq!(h.occurrences(&id), 300);
}

impl Harness {
    fn clock_now(&self) -> Timestamp {
        crate::clock::Clock::now(&*self.clock)
    }
}
