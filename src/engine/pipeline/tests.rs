//! The pipeline's contract on a store whose apply is the commit: the next batch is worked
//! out while one commits, reading what that one wrote; when the one in flight fails, the
//! next fails with it and the engine then reads the store afresh.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::alerts::Alert;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::engine::{SubmitError, start};
use crate::event::EventBody;
use crate::rules::{Limits, Rules};
use crate::store::layout::Outcome;
use crate::store::{MemoryStore, ScanIter, Store, StoreError, Tree, WriteBatch};

/// A memory store that says its apply is the commit, holds applies while closed, and fails
/// the next one when told to.
#[derive(Default)]
struct CommittingStore {
    inner: MemoryStore,
    /// Applies begun (held or not).
    entered: AtomicUsize,
    /// Reads that reached this store (not answered by the engine's overlay or cache).
    reads: AtomicUsize,
    fail_next: AtomicBool,
    /// The next apply panics (on the flush thread, which then is gone).
    panic_next: AtomicBool,
    /// Holds apply() while closed.
    gate: crate::engine::test_support::Gate,
}

impl CommittingStore {
    fn set_closed(&self, closed: bool) {
        self.gate.set_closed(closed);
    }

    fn tickets(&self) -> Vec<Vec<u8>> {
        self.inner
            .range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded)
            .map(|e| e.unwrap().0)
            .collect()
    }
}

impl Store for CommittingStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(tree, key)
    }
    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.range(tree, start, end)
    }
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.gate.pass();
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("test: the commit panics");
        }
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Io {
                op: "apply",
                source: "the server went away".into(),
            });
        }
        self.inner.apply(batch)
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn size_on_disk(&self) -> u64 {
        0
    }
    fn pipelines_apply(&self) -> bool {
        true
    }
}

fn alert(key: &str) -> EventBody {
    EventBody::Alert(Alert::firing(
        key,
        &format!("alert {key}"),
        Default::default(),
    ))
}

fn start_committing() -> (
    Arc<CommittingStore>,
    crate::engine::EngineHandle,
    crate::engine::EngineThread,
) {
    let config = Config::default();
    let store = Arc::new(CommittingStore::default());
    let rules = Rules::from_sources(Limits::from(&config.rules), vec![]).unwrap();
    let (engine, thread) = start(
        &config,
        store.clone(),
        rules,
        Arc::new(SystemClock),
        Default::default(),
        tracing::Span::none(),
    )
    .unwrap();
    (store, engine, thread)
}

/// Waits (10 s at most) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "never: {what}");
}

/// Submits `first` with the store closed and waits until its commit began; then submits
/// `second` as one batch and waits until the engine reads for it (it is worked out while the
/// first commits).
async fn second_during_first(
    store: &Arc<CommittingStore>,
    engine: &crate::engine::EngineHandle,
    first: &'static str,
    second: &'static [&'static str],
) -> (
    tokio::task::JoinHandle<Result<crate::engine::Receipt, SubmitError>>,
    tokio::task::JoinHandle<Result<Vec<Result<crate::engine::Receipt, SubmitError>>, SubmitError>>,
) {
    let opened = store.entered.load(Ordering::SeqCst);
    store.set_closed(true);
    let first = tokio::spawn({
        let engine = engine.clone();
        async move { engine.submit(alert(first)).await }
    });
    until("the first batch's commit began", || {
        store.entered.load(Ordering::SeqCst) > opened
    })
    .await;
    let read = store.reads.load(Ordering::SeqCst);
    let second = tokio::spawn({
        let engine = engine.clone();
        let now = jiff::Timestamp::now();
        async move {
            engine
                .submit_batch(second.iter().map(|k| (alert(k), now)).collect())
                .await
        }
    });
    // A new alert's key is looked up in the store: the engine is at work on the second.
    until("the engine worked on the second batch", || {
        store.reads.load(Ordering::SeqCst) > read
    })
    .await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_is_worked_out_while_one_commits_and_reads_what_it_wrote() {
    let (store, engine, thread) = start_committing();
    let opened = store.entered.load(Ordering::SeqCst);
    let (first, second) = second_during_first(&store, &engine, "disk", &["cpu", "disk"]).await;
    // Nothing more is handed over until the first committed: a third waits its turn.
    let third = tokio::spawn({
        let engine = engine.clone();
        async move { engine.submit(alert("net")).await }
    });
    until("the third queued", || engine.queue_depth() == 1).await;
    assert_eq!(store.entered.load(Ordering::SeqCst), opened + 1);
    assert!(!first.is_finished() && !second.is_finished());
    assert!(store.tickets().is_empty(), "the first commit is held");
    store.set_closed(false);

    let first = first.await.unwrap().unwrap();
    assert_eq!(first.outcome, Outcome::Opened);
    assert_eq!(first.ticket.unwrap().to_string(), "INC-000001");
    let second = second.await.unwrap().unwrap();
    let [cpu, disk] = [&second[0], &second[1]].map(|r| r.as_ref().unwrap());
    // It read the first batch's ticket counter and ticket, which the store did not hold yet.
    assert_eq!(cpu.outcome, Outcome::Opened);
    assert_eq!(cpu.ticket.unwrap().to_string(), "INC-000002");
    assert_eq!(disk.outcome, Outcome::Updated);
    assert_eq!(disk.ticket, first.ticket);
    let third = third.await.unwrap().unwrap();
    assert_eq!(third.ticket.unwrap().to_string(), "INC-000003");
    assert_eq!(store.tickets().len(), 3);
    drop(engine);
    thread.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_batch_in_flight_fails_the_one_worked_out_on_it_fails_too() {
    let (store, engine, thread) = start_committing();
    store.fail_next.store(true, Ordering::SeqCst);
    let (first, second) = second_during_first(&store, &engine, "disk", &["cpu"]).await;
    store.set_closed(false);
    assert!(matches!(
        first.await.unwrap(),
        Err(SubmitError::Store(e)) if e.contains("the server went away")
    ));
    match &second.await.unwrap().unwrap()[0] {
        Err(SubmitError::Store(e)) => assert!(e.contains("commit the batch before"), "{e}"),
        other => panic!("the second batch was answered {other:?}"),
    }
    assert!(
        store.tickets().is_empty(),
        "nothing of either batch is stored"
    );
    // The senders retry: the engine reads the store afresh (no ticket, no counter moved).
    let again = engine.submit(alert("disk")).await.unwrap();
    assert_eq!(again.outcome, Outcome::Opened);
    let next = engine.submit(alert("cpu")).await.unwrap();
    assert_eq!(next.outcome, Outcome::Opened);
    let numbers: Vec<String> = [again.ticket, next.ticket]
        .iter()
        .map(|t| t.unwrap().to_string())
        .collect();
    assert_eq!(numbers, ["INC-000001", "INC-000002"]);
    assert_eq!(store.tickets().len(), 2);
    drop(engine);
    thread.join().await;
}

/// `f`'s output, or a failure naming `what` after 10 s.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("the engine hangs: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_flush_thread_dies_the_engine_commits_on_its_own_thread() {
    let (store, engine, thread) = start_committing();
    store.panic_next.store(true, Ordering::SeqCst);
    // Its sender is not answered: the batch went down with the thread.
    assert!(within("first", engine.submit(alert("disk"))).await.is_err());
    // The next batches are not stuck waiting for a report that cannot come: committed here.
    // One worked out while the thread was still going down fails with it (its sender
    // retries, as a sender told 503 does).
    let cpu = match within("second", engine.submit(alert("cpu"))).await {
        Ok(receipt) => receipt,
        Err(SubmitError::Store(e)) if e.contains("flush thread stopped") => {
            within("second, again", engine.submit(alert("cpu")))
                .await
                .unwrap()
        }
        Err(e) => panic!("the second batch failed: {e:?}"),
    };
    assert_eq!(cpu.outcome, Outcome::Opened);
    assert_eq!(cpu.ticket.unwrap().to_string(), "INC-000001");
    let disk = within("third", engine.submit(alert("disk"))).await.unwrap();
    assert_eq!(disk.outcome, Outcome::Opened);
    assert_eq!(disk.ticket.unwrap().to_string(), "INC-000002");
    assert_eq!(store.tickets().len(), 2);
    drop(engine);
    within("stop", thread.join()).await;
}
