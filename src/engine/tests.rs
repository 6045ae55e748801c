//! The engine's contract with the store: one apply per batch, at most one flush per batch
//! (batches waiting together share one), and no receipt before its flush returns.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::alerts::Alert;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::engine::start;
use crate::event::EventBody;
use crate::rules::{Limits, Rules};
use crate::store::layout::Outcome;
use crate::store::{MemoryStore, ScanIter, Store, StoreError, Tree, WriteBatch};

/// A memory store that counts applies and flushes, and can hold flushes until opened.
#[derive(Default)]
struct GatedStore {
    inner: MemoryStore,
    applies: AtomicUsize,
    flushes: AtomicUsize,
    /// Holds flush() while closed.
    gate: crate::engine::test_support::Gate,
}

impl GatedStore {
    fn set_closed(&self, closed: bool) {
        self.gate.set_closed(closed);
    }
}

impl Store for GatedStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)
    }
    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        self.inner.range(tree, start, end)
    }
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(batch)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.gate.pass();
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn size_on_disk(&self) -> u64 {
        0
    }
}

/// True once `store` has applied `n` batches in all (false after 10 s).
async fn applied(store: Arc<GatedStore>, n: usize) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.applies.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok()
}

fn alert(n: usize) -> EventBody {
    let labels = [("n".to_string(), n.to_string())].into();
    EventBody::Alert(Alert::firing(
        &format!("k{n}"),
        &format!("alert {n}"),
        labels,
    ))
}

/// An engine on a fresh [`GatedStore`] with `config` and no rules.
fn start_gated(
    config: &Config,
) -> (
    Arc<GatedStore>,
    crate::engine::EngineHandle,
    crate::engine::EngineThread,
) {
    let store = Arc::new(GatedStore::default());
    let rules = Rules::from_sources(Limits::from(&config.rules), vec![]).unwrap();
    let (engine, thread) = start(
        config,
        store.clone(),
        rules,
        Arc::new(SystemClock),
        Default::default(),
        tracing::Span::none(),
    )
    .unwrap();
    (store, engine, thread)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_wait_for_the_flush_and_the_next_batch_is_applied_meanwhile() {
    let (store, engine, thread) = start_gated(&Config::default());
    // What opening wrote (the search and report indexes' version) is not a batch.
    let opened = (
        store.applies.load(Ordering::SeqCst),
        store.flushes.load(Ordering::SeqCst),
    );
    let applied = |n: usize| applied(store.clone(), opened.0 + n);

    // The first event's flush is held: its sender must not hear back.
    store.set_closed(true);
    let first = tokio::spawn({
        let engine = engine.clone();
        async move { engine.submit(alert(0)).await }
    });
    assert!(applied(1).await, "the engine never applied the first batch");
    assert!(!first.is_finished(), "a receipt was sent before the flush");

    // The engine goes on: the next batch (50 events, taken whole) is processed and applied
    // while the first one's flush is held, and none of them is answered either.
    let second = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .submit_batch(
                    (1..=50)
                        .map(|n| (alert(n), jiff::Timestamp::now()))
                        .collect(),
                )
                .await
        }
    });
    assert!(
        applied(2).await,
        "the next batch was not applied during the flush"
    );
    assert!(!first.is_finished(), "a receipt was sent before the flush");
    assert!(!second.is_finished(), "a receipt was sent before the flush");
    // A third waits in the queue: the second batch is handed over only after the first
    // flush, so at most one batch is applied ahead of the disk.
    let third = tokio::spawn({
        let engine = engine.clone();
        async move { engine.submit(alert(51)).await }
    });
    while engine.queue_depth() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(store.flushes.load(Ordering::SeqCst), opened.1);
    store.set_closed(false);

    assert_eq!(first.await.unwrap().unwrap().outcome, Outcome::Opened);
    for r in second.await.unwrap().unwrap() {
        assert_eq!(r.unwrap().outcome, Outcome::Opened);
    }
    assert_eq!(third.await.unwrap().unwrap().outcome, Outcome::Opened);
    // 52 events, three batches, each applied once; the flushes at most one per batch.
    assert_eq!(store.applies.load(Ordering::SeqCst) - opened.0, 3);
    let flushes = store.flushes.load(Ordering::SeqCst) - opened.1;
    assert!(
        (2..=3).contains(&flushes),
        "{flushes} flushes for 3 batches"
    );
    drop(engine);
    thread.join().await;
}

/// A batch is readable from its apply, before its flush: an outbox row it wrote must not be
/// handed to the dispatcher until the flush, or a crash could undo a change already sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_row_is_durable_for_the_dispatcher_only_after_its_flush() {
    use crate::tickets::Action;
    use crate::tickets::Actor;
    use crate::tickets::Command;
    let config = crate::config::parse(
        r#"
[vendors.acme]
url = "http://127.0.0.1:9/hook"
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
"#,
        "test",
    )
    .unwrap();
    let (store, engine, thread) = start_gated(&config);
    let by = Actor::User {
        name: "alice".into(),
    };
    let create = serde_json::json!({"kind": "incident", "title": "Array down"});
    let created = engine
        .submit(EventBody::Command(Command {
            by: by.clone(),
            action: Action::Create(serde_json::from_value(create).unwrap()),
        }))
        .await
        .unwrap();
    let ticket = created.ticket.unwrap();
    assert_eq!(engine.durable_outbox_row(), 0, "no vendor yet, no row");

    store.set_closed(true);
    let assign = tokio::spawn({
        let engine = engine.clone();
        let action = Action::Update {
            ticket,
            fields: serde_json::from_value(serde_json::json!({"vendor": "acme"})).unwrap(),
            if_assignee: None,
        };
        async move {
            engine
                .submit(EventBody::Command(Command { by, action }))
                .await
        }
    });
    let rows = || {
        store
            .range(Tree::OutboxDue, Bound::Unbounded, Bound::Unbounded)
            .filter_map(|item| crate::store::layout::outbox::parse_due_key(&item.unwrap().0))
            .map(|(_, id)| id)
            .max()
    };
    let applied = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(id) = rows() {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the assignment's outbox row was never applied");
    assert!(
        engine.durable_outbox_row() < applied,
        "row {applied} is readable but not flushed, yet marked durable"
    );

    store.set_closed(false);
    assign.await.unwrap().unwrap();
    assert_eq!(engine.durable_outbox_row(), applied);
    drop(engine);
    thread.join().await;
}

/// A replayed batch is one batch whatever `engine.max_batch` says now: its journal recorded
/// it as one, and batch boundaries change what is written (history entries fold per batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_is_taken_whole_past_max_batch() {
    let config = crate::config::parse("[engine]\nmax_batch = 4\n", "test").unwrap();
    let (store, engine, thread) = start_gated(&config);
    let before = store.applies.load(Ordering::SeqCst);
    let answers = engine
        .submit_batch(
            (0..20)
                .map(|n| (alert(n), jiff::Timestamp::now()))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(answers.len(), 20);
    assert!(answers.iter().all(|a| a.is_ok()));
    assert_eq!(store.applies.load(Ordering::SeqCst) - before, 1);
    // Ordinary submissions are cut at max_batch.
    let many: Vec<_> = (20..40)
        .map(|n| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.submit(alert(n)).await })
        })
        .collect();
    for m in many {
        m.await.unwrap().unwrap();
    }
    assert!(store.applies.load(Ordering::SeqCst) - before > 20 / 4);
    drop(engine);
    thread.join().await;
}

/// /readyz judges a stall by the batch being committed: the flush of one batch must not wipe
/// the mark of the next, which was applied meanwhile and waits for its own flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_clears_only_its_own_batch_s_commit_mark() {
    let (store, engine, thread) = start_gated(&Config::default());
    let opened = store.applies.load(Ordering::SeqCst);
    let applied = |n: usize| applied(store.clone(), opened + n);
    store.set_closed(true);
    let first = tokio::spawn({
        let engine = engine.clone();
        async move { engine.submit(alert(0)).await }
    });
    assert!(applied(1).await);
    // The first batch's flush waits at the gate: the flush thread took what was waiting
    // (batches handed over together share a flush), so the second is a batch of its own.
    let held = tokio::time::timeout(Duration::from_secs(10), async {
        while store.gate.waiting() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(held.is_ok(), "the first batch's flush reaches the gate");
    let second = tokio::spawn({
        let engine = engine.clone();
        async move { engine.submit(alert(1)).await }
    });
    assert!(
        applied(2).await,
        "the second batch is applied while the first flushes"
    );
    // Let the first batch's flush through, not the second's.
    store.gate.let_one_through();
    assert_eq!(first.await.unwrap().unwrap().outcome, Outcome::Opened);
    assert!(!second.is_finished());
    assert!(
        engine.status().committing_since.is_some(),
        "the second batch still waits for its flush"
    );
    store.set_closed(false);
    assert_eq!(second.await.unwrap().unwrap().outcome, Outcome::Opened);
    let settled = tokio::time::timeout(Duration::from_secs(10), async {
        while engine.status().committing_since.is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "the mark is cleared once every batch is flushed"
    );
    drop(engine);
    thread.join().await;
}
