//! The flush stage of the engine's pipeline: while the engine thread processes and applies
//! batch N+1, this thread waits for the disk to make batch N durable (sled `flush`), then
//! answers N's senders and signals the tasks that wait on what N wrote. Only then: a receipt
//! still means the event and its changes are on disk. One batch is flushed while the next is
//! worked on; the engine hands a batch over only when the previous flush returned, and every
//! batch waiting then shares one flush.
//!
//! On a store whose apply is the commit (PostgreSQL) this thread applies the batch too,
//! while the engine works on the next one through it (`engine::pipeline`).
//!
//! Owns the hand-over ([`Applied`]), what a finished commit signals ([`Signals::complete`])
//! and the count of applied batches not yet flushed ([`Unflushed`]), which a consistent
//! export waits to reach zero.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{debug, error, info};

use crate::engine::{EngineStatus, Receipt, Refusal, SubmitError, pipeline};
use crate::metrics::Metrics;
use crate::store::Store;

/// An event's outcome as the engine's processing left it (a read error as text).
pub(crate) type Outcome = Result<Result<Receipt, Refusal>, String>;

/// A batch the engine applied (or failed to apply), waiting for its flush.
pub(crate) struct Applied {
    /// Each sender with what its event came to.
    pub replies: Vec<(oneshot::Sender<Result<Receipt, SubmitError>>, Outcome)>,
    /// The apply's result: a batch that failed to apply is answered without a flush.
    pub committed: Result<(), String>,
    pub after: AfterCommit,
    /// The commit to run here first, on a store whose apply is the commit (see
    /// `engine::pipeline`); `committed` then says only that the batch was worked out.
    pub commit: Option<Commit>,
}

/// A batch's commit, run on the flush thread while the engine works on the next batch.
pub(crate) enum Commit {
    /// This node's batch: a plain apply.
    Apply(crate::store::WriteBatch),
    /// The leader's batch in cluster mode: applied and its inbox rows answered only while
    /// `token` is the lease's; a fenced batch makes this node step down.
    Fenced {
        shared: Arc<dyn crate::store::Shared>,
        state: Arc<crate::cluster::ClusterState>,
        batch: crate::store::WriteBatch,
        token: i64,
        answers: Vec<(i64, Vec<u8>)>,
    },
}

impl Commit {
    /// The writes it commits.
    pub(crate) fn batch(&self) -> &crate::store::WriteBatch {
        match self {
            Commit::Apply(batch) | Commit::Fenced { batch, .. } => batch,
        }
    }

    /// Runs the commit; a fenced one also steps this node down.
    pub(crate) fn run(
        self,
        store: &dyn Store,
        signals: &Signals,
    ) -> Result<(), crate::store::StoreError> {
        match self {
            Commit::Apply(batch) => store.apply(batch),
            Commit::Fenced {
                shared,
                state,
                batch,
                token,
                answers,
            } => {
                let committed = shared.commit_fenced(batch, token, answers);
                if let Err(crate::store::StoreError::Fenced { .. }) = committed {
                    signals.metrics.fenced_batches.inc();
                    if state.step_down(token) {
                        info!(token, node = %state.node, "Engine stepped down: another node took the lead.");
                    }
                }
                committed
            }
        }
    }
}

/// What a batch's commit signals once it is durable.
pub(crate) struct AfterCommit {
    /// The batch's last outbox row: the dispatcher may send up to it once flushed.
    pub last_outbox_row: Option<u64>,
    /// The batch made outbox rows due, stored SLA timers, stored alert expiry rows.
    pub outbox_due: bool,
    pub new_timers: bool,
    pub new_expiries: bool,
    pub started: Instant,
    pub events: usize,
    /// Counted in [`Unflushed`] (applied to a store whose flush makes it durable).
    pub counted: bool,
}

/// Applied batches not flushed yet: a consistent export waits for none (the store then
/// holds only what is on disk).
#[derive(Default)]
pub(crate) struct Unflushed {
    count: Mutex<usize>,
    flushed: Condvar,
}

impl Unflushed {
    pub fn add(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    fn done(&self, n: usize) {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *count = count.saturating_sub(n);
        if *count == 0 {
            self.flushed.notify_all();
        }
    }

    /// Blocks until every applied batch is flushed.
    pub fn wait_none(&self) {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *count > 0 {
            count = self.flushed.wait(count).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Whom a durable commit concerns: the engine's status, metrics and the tasks waiting on
/// what it wrote.
#[derive(Clone)]
pub(crate) struct Signals {
    pub durable_outbox: Arc<AtomicU64>,
    pub outbox_ready: Arc<tokio::sync::Notify>,
    pub timers: Arc<tokio::sync::Notify>,
    pub alert_timers: Arc<tokio::sync::Notify>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Mutex<EngineStatus>>,
    pub unflushed: Arc<Unflushed>,
}

impl Signals {
    /// A batch's commit is over: durable (`Ok`) or failed. Raises the durable outbox row,
    /// wakes the dispatcher and the timer tasks, and records the batch.
    pub fn complete(&self, result: &Result<(), String>, after: &AfterCommit) {
        if result.is_ok() {
            if let Some(row) = after.last_outbox_row {
                self.durable_outbox.fetch_max(row, Ordering::Release);
            }
            if after.outbox_due {
                self.outbox_ready.notify_one();
            }
            if after.new_timers {
                self.timers.notify_one();
            }
            if after.new_expiries {
                self.alert_timers.notify_one();
            }
        }
        self.metrics
            .commit_seconds
            .observe(after.started.elapsed().as_secs_f64());
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                debug!(
                    events = after.events,
                    micros = after.started.elapsed().as_micros() as u64,
                    "Batch committed."
                );
                let failed = status.failed_commits.succeeded();
                if failed > 0 {
                    info!(failed, "Batch commits succeed again.");
                }
            }
            // Every batch fails while the store is away: one line per interval, with the
            // count of those not logged since.
            Err(e) => {
                if let Some(not_logged) = status.failed_commits.failed(Instant::now()) {
                    error!(
                        events = after.events,
                        not_logged,
                        error = %e,
                        "Batch commit failed; senders told to retry."
                    );
                }
            }
        }
        status.events += after.events as u64;
        status.batches += 1;
        // Only this batch's mark: the next one, worked on meanwhile, set its own.
        if status.committing_since == Some(after.started) {
            status.committing_since = None;
        }
        status.last_commit_error = result.as_ref().err().map(|e| (e.clone(), Instant::now()));
    }
}

/// While batches keep failing, at most one is logged per this interval.
const FAILURE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Batches failing in a row, and how many of them were logged.
#[derive(Debug, Clone, Default)]
pub(crate) struct FailedCommits {
    /// Since the last batch that committed.
    failed: u64,
    /// When the last failure was logged, and the failures since that were not.
    logged: Option<Instant>,
    not_logged: u64,
}

impl FailedCommits {
    /// A batch failed at `now`: `Some(failures not logged since the last logged one)` when
    /// this one is to be logged.
    fn failed(&mut self, now: Instant) -> Option<u64> {
        self.failed += 1;
        match self.logged {
            Some(at) if now.duration_since(at) < FAILURE_LOG_INTERVAL => {
                self.not_logged += 1;
                None
            }
            _ => {
                self.logged = Some(now);
                Some(std::mem::take(&mut self.not_logged))
            }
        }
    }

    /// A batch committed: how many had failed in a row before it.
    fn succeeded(&mut self) -> u64 {
        std::mem::take(self).failed
    }
}

#[cfg(test)]
#[test]
fn failing_batches_are_logged_once_per_interval_with_the_count_held_back() {
    let mut streak = FailedCommits::default();
    let t0 = Instant::now();
    assert_eq!(streak.failed(t0), Some(0), "the first failure is logged");
    for _ in 0..5 {
        assert_eq!(streak.failed(t0 + std::time::Duration::from_secs(1)), None);
    }
    assert_eq!(streak.failed(t0 + FAILURE_LOG_INTERVAL), Some(5));
    assert_eq!(streak.succeeded(), 7);
    assert_eq!(streak.succeeded(), 0, "the streak ended");
    assert_eq!(
        streak.failed(t0 + FAILURE_LOG_INTERVAL),
        Some(0),
        "a new streak"
    );
}

/// Answers every sender of a batch whose commit came to `result`.
fn answer(applied: Applied, result: &Result<(), String>, signals: &Signals) {
    // Signalled first: a sender that hears back finds the batch's rows marked durable.
    signals.complete(result, &applied.after);
    for (reply, outcome) in applied.replies {
        let answer = match (result, outcome) {
            (Ok(()), Ok(Ok(receipt))) => Ok(receipt),
            (Ok(()), Ok(Err(refused))) => Err(SubmitError::Rejected(refused)),
            (Ok(()), Err(e)) => Err(SubmitError::Store(e)),
            (Err(e), _) => Err(SubmitError::Store(e.clone())),
        };
        // A sender that went away will retry; its event is committed either way.
        let _ = reply.send(answer);
    }
}

/// The flush thread: takes what the engine hands over, applies what is to be applied here,
/// flushes once for everything waiting, answers; ends when the engine drops its side.
pub(crate) fn run(
    store: Arc<dyn Store>,
    signals: Signals,
    rx: std::sync::mpsc::Receiver<Applied>,
    report: Option<std::sync::mpsc::Sender<pipeline::Committed>>,
) {
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        while let Ok(more) = rx.try_recv() {
            batches.push(more);
        }
        flush_and_answer(&*store, &signals, batches, report.as_ref());
    }
}

/// Commits the batches that carry their commit (telling `report` how each went), flushes
/// once for `batches` (unless none applied), then answers each and counts them flushed.
/// How the last commit run here went, if one was.
pub(crate) fn flush_and_answer(
    store: &dyn Store,
    signals: &Signals,
    mut batches: Vec<Applied>,
    report: Option<&std::sync::mpsc::Sender<pipeline::Committed>>,
) -> Option<pipeline::Committed> {
    let mut last = None;
    for b in &mut batches {
        let Some(commit) = b.commit.take() else {
            continue;
        };
        let applying = Instant::now();
        if b.committed.is_ok() {
            b.committed = commit.run(store, signals).map_err(|e| e.to_string());
        }
        super::batch::stage(&signals.metrics, "apply", applying, Instant::now());
        if let Some(report) = report {
            // The engine waits for this before it hands over the next batch.
            let _ = report.send(b.committed.clone());
        }
        last = Some(b.committed.clone());
    }
    let flushing = Instant::now();
    let flushed = if batches.iter().any(|b| b.committed.is_ok()) {
        store.flush().map_err(|e| e.to_string())
    } else {
        Ok(())
    };
    super::batch::stage(&signals.metrics, "flush", flushing, Instant::now());
    let counted = batches.iter().filter(|b| b.after.counted).count();
    for b in batches {
        let result = b.committed.clone().and(flushed.clone());
        answer(b, &result, signals);
    }
    signals.unflushed.done(counted);
    last
}
