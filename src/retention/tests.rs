//! The sweep through a real engine on a manual clock: what is pruned, what is kept.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use jiff::SignedDuration;
use tokio_util::sync::CancellationToken;

use crate::alerts::Alert;
use crate::event::EventBody;
use crate::retention::{journal_start, task};
use crate::store::layout::outbox::callback_key;
use crate::store::{MemoryStore, Store, Tree, WriteBatch, encode};

fn count(store: &dyn Store, tree: Tree) -> usize {
    store
        .range(tree, Bound::Unbounded, Bound::Unbounded)
        .count()
}

fn alert(key: &str) -> EventBody {
    let labels: BTreeMap<String, String> = [("instance".to_string(), key.to_string())].into();
    EventBody::Alert(Alert::firing(key, &format!("{key} down"), labels))
}

#[tokio::test]
async fn prunes_old_journal_occurrences_callbacks_and_ended_windows_and_keeps_tickets() {
    let config = crate::config::parse(
        "[retention]\njournal = \"7d\"\nchunk = 3\n[mail]\nrate_window = \"10m\"\n",
        "test",
    )
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut seed = WriteBatch::default();
    // A callback-id applied by event 1, one by a (future) event 10_000, an ended and a
    // current sender window.
    seed.put(
        Tree::VendorCallbacks,
        callback_key("acme", "cb_old"),
        encode(&1u64),
    );
    seed.put(
        Tree::VendorCallbacks,
        callback_key("acme", "cb_new"),
        encode(&10_000u64),
    );
    let window = |start: &str| encode(&serde_json::json!({ "start": start, "count": 3 }));
    seed.put(
        Tree::MailSenders,
        b"old@example.com".to_vec(),
        window("2026-01-01T00:00:00Z"),
    );
    seed.put(
        Tree::MailSenders,
        b"new@example.com".to_vec(),
        window("2026-01-09T09:55:00Z"),
    );
    store.apply(seed).unwrap();
    let rules = crate::engine::test_support::rules(&config, &[]);
    let (engine, clock) =
        crate::engine::test_support::engine(&config, store.clone(), rules, "2026-01-01T09:00:00Z");
    // Seven alerts on day 0 (five tickets), two on day 8.
    for key in ["a", "b", "c", "d", "e", "a", "b"] {
        engine.submit(alert(key)).await.unwrap();
        clock.advance(SignedDuration::from_secs(1));
    }
    clock.advance(SignedDuration::from_hours(8 * 24));
    for key in ["a", "f"] {
        engine.submit(alert(key)).await.unwrap();
    }
    assert_eq!(count(&*store, Tree::Events), 9);
    assert_eq!(count(&*store, Tree::TicketAlerts), 9);
    let tickets = count(&*store, Tree::Tickets);
    let history = count(&*store, Tree::History);

    task::sweep_once(&engine, &store, &CancellationToken::new())
        .await
        .unwrap_or_else(|_| panic!("the engine stopped"));

    assert_eq!(
        count(&*store, Tree::Events),
        2,
        "only day 8's events are kept"
    );
    assert_eq!(count(&*store, Tree::TicketAlerts), 2);
    assert_eq!(count(&*store, Tree::Tickets), tickets);
    assert_eq!(count(&*store, Tree::History), history);
    let start = journal_start(&*store).unwrap().unwrap();
    assert_eq!(start.pruned_through, 7);
    assert_eq!(start.before.to_string(), "2026-01-02T09:00:07Z");
    assert_eq!(
        store
            .get(Tree::VendorCallbacks, &callback_key("acme", "cb_old"))
            .unwrap(),
        None
    );
    assert!(
        store
            .get(Tree::VendorCallbacks, &callback_key("acme", "cb_new"))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.get(Tree::MailSenders, b"old@example.com").unwrap(),
        None
    );
    assert!(
        store
            .get(Tree::MailSenders, b"new@example.com")
            .unwrap()
            .is_some()
    );
    let metrics = engine.metrics().encode();
    for line in [
        "itsmd_retention_pruned_total{kind=\"journal\"} 7",
        "itsmd_retention_pruned_total{kind=\"ticket_alerts\"} 7",
        "itsmd_retention_pruned_total{kind=\"vendor_callbacks\"} 1",
        "itsmd_retention_pruned_total{kind=\"mail_senders\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    // Nothing more is due: a second sweep deletes nothing and submits nothing.
    let events = engine.status().events;
    task::sweep_once(&engine, &store, &CancellationToken::new())
        .await
        .unwrap_or_else(|_| panic!("the engine stopped"));
    assert_eq!(engine.status().events, events);
    assert_eq!(count(&*store, Tree::Events), 2);
}

#[tokio::test]
async fn a_disabled_retention_prunes_nothing() {
    let config =
        crate::config::parse("[retention]\nenabled = false\njournal = \"1s\"\n", "test").unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rules = crate::engine::test_support::rules(&config, &[]);
    let (engine, clock) =
        crate::engine::test_support::engine(&config, store.clone(), rules, "2026-01-01T09:00:00Z");
    engine.submit(alert("a")).await.unwrap();
    clock.advance(SignedDuration::from_hours(24));
    engine
        .submit(EventBody::Retention(crate::retention::Sweep {
            journal_through: Some(1),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(count(&*store, Tree::Events), 1);
    assert_eq!(journal_start(&*store).unwrap(), None);
}
