//! The engine loop: take a batch, process each event against one [`Txn`], commit and flush
//! once, then answer every sender.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, error, info};

use crate::clock::Clock;
use crate::engine::flusher::Commit;
use crate::engine::txn::Txn;
use crate::engine::{EngineStatus, Live, Receipt, Refusal, Settings, Submission, SubmitError};
use crate::event::{Event, EventBody};
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::layout::StoredEvent;
use crate::store::{Store, StoreError, Tree, encode, u64_key};

pub(crate) struct Engine {
    pub store: Arc<dyn Store>,
    /// The rule set of the batch being processed (refreshed from `live` per batch).
    pub rules: Arc<Rules>,
    /// The time of the event being processed (see [`EventClock`]).
    pub clock: Arc<EventClock>,
    /// The settings of the batch being processed (refreshed from `live` per batch).
    pub settings: Arc<Settings>,
    pub(super) rx: mpsc::Receiver<Submission>,
    pub status: Arc<Mutex<EngineStatus>>,
    /// Held shared while applying and flushing; see `EngineHandle::with_commits_paused`.
    pub commit_gate: Arc<RwLock<()>>,
    /// Where reloads put new rules and settings.
    pub live: Arc<Live>,
    /// Woken after a commit that made outbox rows due.
    pub outbox_ready: Arc<tokio::sync::Notify>,
    /// Signalled after a commit that stored SLA timers (the clock task waits on it).
    pub timers: Arc<tokio::sync::Notify>,
    /// Signalled after a commit that stored alert expiry rows (the expiry task waits on it).
    pub alert_timers: Arc<tokio::sync::Notify>,
    /// Raised to the batch's last outbox row id once the batch is flushed.
    pub durable_outbox: Arc<std::sync::atomic::AtomicU64>,
    /// Batches applied and not yet flushed (the flush thread's), for a consistent export.
    pub unflushed: Arc<crate::engine::flusher::Unflushed>,
    /// Decoded tickets as stored, so hot tickets are not decoded every batch.
    pub cache: crate::engine::ticket_cache::TicketCache,
    /// This engine's registry (never a process-wide one: replay runs a second engine).
    pub metrics: Arc<Metrics>,
    /// The first event journaled in the batch being processed (see `StoredEvent::batch`).
    pub batch_first: std::cell::Cell<Option<crate::event::EventId>>,
    /// On a store whose apply is the commit (PostgreSQL): the batch being committed while
    /// the next is processed (`store` then reads through it).
    pub pipeline: Option<crate::engine::pipeline::Pipeline>,
    /// Cluster mode: the shared store (inbox, fenced commits) and this node's lease view.
    pub shared: Option<(
        Arc<dyn crate::store::Shared>,
        Arc<crate::cluster::ClusterState>,
    )>,
}

/// How often a waiting leader looks up from the inbox's wake-up (at its queue and lease,
/// in memory: no query).
const WAKE_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// The leader reads the inbox at least this often even without a wake-up, in case a
/// notification was lost with a connection.
const FALLBACK_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a batch's events came from, and so how it commits.
enum Source<'a> {
    /// This node's queue: a plain apply.
    Local,
    /// The shared inbox: a commit fenced by the lease token that also answers these rows
    /// (and the unreadable ones, answered without processing).
    Inbox {
        shared: &'a Arc<dyn crate::store::Shared>,
        state: &'a Arc<crate::cluster::ClusterState>,
        token: i64,
        ids: Vec<i64>,
        unreadable: Vec<(i64, Vec<u8>)>,
        /// Both stores' query count before the inbox read that took the batch (which so
        /// counts into the batch's round trips).
        trips_before: u64,
    },
}

impl Engine {
    /// Runs until every sender is gone and the queue is drained.
    pub fn run(mut self) {
        if let Some((shared, state)) = self.shared.clone() {
            return self.run_shared(shared, &state);
        }
        info!(rules = %self.rules.version(), "Engine started.");
        if self.store.pipelines_apply() {
            self.start_pipeline();
        }
        crate::rules::queries::bind(self.store.clone(), self.clock.clone());
        let (flush_tx, flush_thread) = self.start_flusher();
        self.set_running(true);
        let mut batch = Vec::with_capacity(self.settings.max_batch);
        while let Some(first) = self.rx.blocking_recv() {
            (self.rules, self.settings) = self.live.current();
            crate::rules::time::bind(self.settings.calendars.clone());
            crate::rules::bind_matrix(self.settings.matrix.clone());
            batch.push(first);
            loop {
                // A replayed batch is taken whole, even when its rest is still on the way
                // and whatever max_batch says now: its journal recorded it as one.
                let joined = batch.last().is_some_and(|s: &Submission| s.joined);
                if !joined && batch.len() >= self.settings.max_batch {
                    break;
                }
                let next = if joined {
                    self.rx.blocking_recv()
                } else {
                    self.rx.try_recv().ok()
                };
                match next {
                    Some(s) => batch.push(s),
                    None => break,
                }
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(self.settings.max_batch));
            self.commit_batch(full, flush_tx.as_ref());
        }
        Self::stop_flusher(flush_tx, flush_thread);
        self.set_running(false);
        info!("Engine stopped: queue drained.");
    }

    /// From now on the engine reads through the batch being committed (on a store whose
    /// apply is the commit, `engine::pipeline`).
    fn start_pipeline(&mut self) {
        let pipeline = crate::engine::pipeline::Pipeline::new(self.store.clone());
        // Every read of the engine, the rules' queries too, sees the batch in flight.
        self.store = pipeline.overlay.clone();
        self.pipeline = Some(pipeline);
    }

    /// The flush of batch N runs on its own thread while this one works on batch N+1; a
    /// rendezvous: N+1 is handed over only once N's flush returned. None if the thread
    /// cannot start (the engine then flushes on its own thread).
    #[allow(clippy::type_complexity)]
    fn start_flusher(
        &mut self,
    ) -> (
        Option<std::sync::mpsc::SyncSender<crate::engine::flusher::Applied>>,
        Option<std::thread::JoinHandle<()>>,
    ) {
        let (flush_tx, flush_rx) = std::sync::mpsc::sync_channel(0);
        let (store, signals, span) = (self.store.clone(), self.signals(), tracing::Span::current());
        let report = self.pipeline.as_mut().and_then(|p| p.reporter());
        let flusher = std::thread::Builder::new()
            .name("itsmd-flush".into())
            .spawn(move || {
                span.in_scope(|| crate::engine::flusher::run(store, signals, flush_rx, report))
            });
        match flusher {
            Ok(thread) => (Some(flush_tx), Some(thread)),
            Err(e) => {
                error!(error = %e, "Cannot start the flush thread; flushing on the engine thread.");
                (None, None)
            }
        }
    }

    /// Every batch handed over is committed, flushed and answered before this returns.
    fn stop_flusher(
        flush_tx: Option<std::sync::mpsc::SyncSender<crate::engine::flusher::Applied>>,
        flush_thread: Option<std::thread::JoinHandle<()>>,
    ) {
        drop(flush_tx);
        if let Some(thread) = flush_thread
            && thread.join().is_err()
        {
            error!("Flush thread panicked.");
        }
    }

    /// Hands `applied` to the flush thread, or commits, flushes and answers it here when
    /// there is none.
    fn hand_over(
        &mut self,
        applied: crate::engine::flusher::Applied,
        flusher: Option<&std::sync::mpsc::SyncSender<crate::engine::flusher::Applied>>,
    ) {
        let applied = match flusher {
            Some(tx) => match tx.send(applied) {
                Ok(()) => return,
                // The flush thread is gone (it panicked): flush here.
                Err(std::sync::mpsc::SendError(applied)) => applied,
            },
            None => applied,
        };
        let signals = self.signals();
        let committed =
            crate::engine::flusher::flush_and_answer(&*self.store, &signals, vec![applied], None);
        // A commit run here is over: nothing is in flight.
        if let Some(committed) = committed {
            if let Some(pipeline) = self.pipeline.as_mut() {
                pipeline.landed(committed.is_ok());
            }
            if committed.is_err() {
                self.cache.clear();
            }
        }
    }

    /// Waits for the batch in flight (if any) to commit, then reads the store alone: in
    /// cluster mode another leader may write before this node's next batch, so what this one
    /// wrote last must not be read from memory. When the batch did not commit, the engine
    /// also forgets the tickets it remembered of it. The next inbox read then starts from
    /// the lowest unanswered row again.
    fn settle_in_flight(&mut self, taken: &mut i64) {
        if let Some(pipeline) = self.pipeline.as_mut() {
            if pipeline.settle().is_err() {
                self.cache.clear();
            }
            pipeline.forget();
        }
        *taken = 0;
    }

    /// What a finished commit signals, for the flush thread.
    fn signals(&self) -> crate::engine::flusher::Signals {
        crate::engine::flusher::Signals {
            durable_outbox: self.durable_outbox.clone(),
            outbox_ready: self.outbox_ready.clone(),
            timers: self.timers.clone(),
            alert_timers: self.alert_timers.clone(),
            metrics: self.metrics.clone(),
            status: self.status.clone(),
            unflushed: self.unflushed.clone(),
        }
    }

    /// Cluster mode: while this node leads, takes the shared inbox in id order, batch by
    /// batch, committing batch N on the flush thread while it works on N+1; stops when
    /// every handle is gone.
    fn run_shared(
        mut self,
        shared: Arc<dyn crate::store::Shared>,
        state: &Arc<crate::cluster::ClusterState>,
    ) {
        info!(rules = %self.rules.version(), node = %state.node, "Engine started in cluster mode.");
        // Cluster mode is on PostgreSQL, whose commit is a round trip of its own.
        self.start_pipeline();
        crate::rules::queries::bind(self.store.clone(), self.clock.clone());
        let (flush_tx, flush_thread) = self.start_flusher();
        self.set_running(true);
        let mut term = 0;
        // Whether the inbox may hold rows: intake's NOTIFY (or the long fallback poll) says
        // so; while it does not, the leader sends no query.
        let mut due = true;
        let mut polled = Instant::now();
        // The highest inbox id of the batch being committed: the next read takes the rows
        // after it (those of the batch in flight are not answered yet). 0: none in flight.
        let mut taken = 0;
        loop {
            match self.rx.try_recv() {
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                // Nothing queues locally in cluster mode; an event that did is answered.
                Ok(s) => {
                    let _ = s.reply.send(Err(SubmitError::Stopped));
                    continue;
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let Some(token) = state.token() else {
                self.settle_in_flight(&mut taken);
                term = 0;
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            };
            if token != term {
                // A new term: what this node remembers may be stale (another leader wrote).
                self.settle_in_flight(&mut taken);
                self.cache.clear();
                match crate::store::layout::counter(
                    &*self.store,
                    crate::store::layout::outbox::OUTBOX_SEQ,
                ) {
                    Ok(row) => self
                        .durable_outbox
                        .store(row, std::sync::atomic::Ordering::Release),
                    Err(e) => {
                        error!(token, error = %e, "Engine cannot read the store on taking the lead; retrying.");
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        continue;
                    }
                }
                if let Err(e) = crate::engine::ensure_indexes(&*self.store, &self.settings) {
                    error!(token, error = %e, "Engine cannot build the search and report indexes on taking the lead; retrying.");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
                info!(token, node = %state.node, "Engine leads: ticket cache empty, counters read from the store.");
                term = token;
                due = true;
            }
            if !due {
                self.settle_in_flight(&mut taken);
                due = shared.wait_for_inbox(WAKE_CHECK) || polled.elapsed() >= FALLBACK_POLL;
                continue;
            }
            (self.rules, self.settings) = self.live.current();
            polled = Instant::now();
            let trips_before = self.store.round_trips() + shared.round_trips();
            let rows = match shared.pending(taken, self.settings.max_batch) {
                Ok(rows) => rows,
                Err(e) => {
                    error!(error = %e, "Inbox read failed; retrying.");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            let Some(last) = rows.last().map(|(id, _)| *id) else {
                due = false;
                continue;
            };
            let mut ids = Vec::with_capacity(rows.len());
            let mut items = Vec::with_capacity(rows.len());
            let mut unreadable = Vec::new();
            for (id, bytes) in rows {
                match crate::store::decode::<crate::cluster::Queued>(Tree::Meta, &bytes) {
                    Ok(q) => {
                        ids.push(id);
                        items.push((q.body, q.received_at));
                    }
                    Err(e) => {
                        error!(inbox_id = id, error = %e, "Inbox row unreadable; answered as failed, not processed.");
                        let answer = crate::cluster::Answer::Failed(format!(
                            "inbox row {id} is unreadable: {e}"
                        ));
                        unreadable.push((id, encode(&answer)));
                    }
                }
            }
            let (committed, _, after, commit) = self.execute(
                &items,
                Source::Inbox {
                    shared: &shared,
                    state,
                    token,
                    ids,
                    unreadable,
                    trips_before,
                },
            );
            // Handed over: its rows are answered when it commits. Else nothing is in
            // flight (a failure settled it) and the rows are read again.
            taken = if commit.is_some() { last } else { 0 };
            let applied = crate::engine::flusher::Applied {
                // The answers go into the inbox rows, in the commit.
                replies: Vec::new(),
                committed: committed.map_err(|e| e.to_string()),
                after,
                commit,
            };
            self.hand_over(applied, flush_tx.as_ref());
        }
        self.settle_in_flight(&mut taken);
        Self::stop_flusher(flush_tx, flush_thread);
        self.set_running(false);
        info!("Engine stopped.");
    }

    /// Queries this engine sent so far: its store's, and in cluster mode the shared store's.
    fn round_trips(&self, source: &Source<'_>) -> u64 {
        match source {
            Source::Local => self.store.round_trips(),
            Source::Inbox { shared, .. } => self.store.round_trips() + shared.round_trips(),
        }
    }

    fn set_running(&self, running: bool) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running = running;
    }

    /// Processes and applies `batch`, then hands it to the flush thread (or flushes it here
    /// without one); its senders are answered after its flush.
    fn commit_batch(
        &mut self,
        batch: Vec<Submission>,
        flusher: Option<&std::sync::mpsc::SyncSender<crate::engine::flusher::Applied>>,
    ) {
        let items: Vec<(EventBody, jiff::Timestamp)> = batch
            .iter()
            .map(|s| (s.body.clone(), s.received_at))
            .collect();
        let (committed, results, after, commit) = self.execute(&items, Source::Local);
        let applied = crate::engine::flusher::Applied {
            replies: batch
                .into_iter()
                .zip(results)
                .map(|(s, r)| (s.reply, r.map_err(|e| e.to_string())))
                .collect(),
            committed: committed.map_err(|e| e.to_string()),
            after,
            commit,
        };
        self.hand_over(applied, flusher);
    }

    /// Processes a batch against one transaction and commits it as `source` says; the
    /// commit's result and each event's, and on a pipelined store the commit the flush
    /// thread is to run (the commit's result then says only that the batch was worked out).
    #[allow(clippy::type_complexity)]
    fn execute(
        &mut self,
        batch: &[(EventBody, jiff::Timestamp)],
        source: Source<'_>,
    ) -> (
        Result<(), StoreError>,
        Vec<Result<Result<Receipt, Refusal>, StoreError>>,
        crate::engine::flusher::AfterCommit,
        Option<Commit>,
    ) {
        let started = Instant::now();
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .committing_since = Some(started);
        if let Some(pipeline) = self.pipeline.as_mut()
            && pipeline.failed_meanwhile()
        {
            // Not worked out on top of a batch that failed: read from the store again.
            self.cache.clear();
        }
        let mut cache = std::mem::take(&mut self.cache);
        let store = self.store.clone();
        let trips = match &source {
            Source::Local => self.round_trips(&source),
            Source::Inbox { trips_before, .. } => *trips_before,
        };
        let mut txn = Txn::new(&*store, &mut cache);
        self.batch_first.set(None);
        if let Err(e) = crate::engine::prefetch::batch(&mut txn, batch) {
            // Each read is tried again on its own, and fails the batch there if it must.
            debug!(error = %e, "Batch read-ahead failed; reading key by key.");
        }
        let mut results = Vec::with_capacity(batch.len());
        for (body, received_at) in batch {
            self.clock.pin(Some(*received_at));
            self.rules.begin_event();
            results.push(self.process(&mut txn, body, *received_at));
        }
        self.clock.pin(None);
        let mut outbox_due = false;
        let mut new_timers = false;
        let mut new_expiries = false;
        let last_outbox_row = txn.counter(crate::store::layout::outbox::OUTBOX_SEQ);
        let m = &*self.metrics;
        let signals = self.signals();
        let mut applied = false;
        let mut to_commit = None;
        let settings = self.settings.clone();
        let sla = crate::reports::aggregate::SlaSetup {
            config: &settings.sla,
            calendars: &settings.calendars,
        };
        let committed = txn.finish(sla).and_then(|(writes, changed)| {
            outbox_due = crate::vendors::step::makes_due(&writes);
            new_timers = crate::sla::step::stores_timers(&writes);
            new_expiries = crate::alerts::expiry::stores_rows(&writes);
            count_writes(m, &writes);
            let _gate = self.commit_gate.read().unwrap_or_else(|p| p.into_inner());
            let applying = Instant::now();
            stage(m, "process", started, applying);
            let commit = match &source {
                Source::Local => Commit::Apply(writes),
                Source::Inbox {
                    shared,
                    state,
                    token,
                    ids,
                    unreadable,
                    ..
                } => {
                    // A read error leaves the rows unanswered: the next batch retries them.
                    let mut answers = unreadable.clone();
                    for (id, result) in ids.iter().zip(&results) {
                        match result {
                            Ok(r) => {
                                if let Err(refused) = r {
                                    // The submitter may have stopped waiting: say it here too.
                                    info!(inbox_id = id, reason = %refused, "Inbox event rejected; the refusal is in its inbox row's answer.");
                                }
                                answers.push((*id, encode(&crate::cluster::Answer::of(r))))
                            }
                            Err(e) => {
                                return Err(StoreError::Io {
                                    op: "process an inbox event",
                                    source: format!("inbox row {id}: {e}").into(),
                                });
                            }
                        }
                    }
                    Commit::Fenced {
                        shared: Arc::clone(shared),
                        state: Arc::clone(state),
                        batch: writes,
                        token: *token,
                        answers,
                    }
                }
            };
            match self.pipeline.as_mut() {
                Some(pipeline) => {
                    // Worked out on top of the batch in flight: only if that one committed.
                    pipeline.settle()?;
                    stage(m, "wait", applying, Instant::now());
                    pipeline.hand_over(commit.batch());
                    to_commit = Some(commit);
                }
                None => commit.run(&*self.store, &signals)?,
            }
            if matches!(source, Source::Local) {
                // Under the gate: an export waiting for the gate then waits for its flush.
                self.unflushed.add();
            }
            applied = true;
            for t in changed {
                cache.put(Arc::new(t));
            }
            if to_commit.is_none() {
                // Else the flush thread times the commit.
                stage(m, "apply", applying, Instant::now());
            }
            Ok(())
        });
        if !applied {
            // The store may or may not hold the batch's tickets: forget them all.
            cache.clear();
            if let Some(pipeline) = self.pipeline.as_mut() {
                pipeline.forget();
            }
        }
        self.cache = cache;
        m.batch_size.observe(batch.len() as f64);
        m.batch_round_trips
            .observe(self.round_trips(&source).saturating_sub(trips) as f64);
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.disabled_rules = self.rules.disabled();
            m.rules_disabled.set(status.disabled_rules.len() as i64);
        }
        let after = crate::engine::flusher::AfterCommit {
            last_outbox_row,
            outbox_due,
            new_timers,
            new_expiries,
            started,
            events: batch.len(),
            counted: applied && matches!(source, Source::Local),
        };
        (committed, results, after, to_commit)
    }

    /// Records one event and acts on it. A store read error fails the whole batch (the txn
    /// is dropped uncommitted), so it is returned rather than half-applied. A refused command
    /// is rolled back out of the batch: not journaled, no id, no change.
    fn process(
        &self,
        txn: &mut Txn<'_>,
        body: &EventBody,
        received_at: jiff::Timestamp,
    ) -> Result<Result<Receipt, Refusal>, StoreError> {
        // A due expiry row either comes to nothing to record (stale, re-armed) or to the
        // resolve its sender would have sent, journaled and handled as that.
        let expired;
        let body = match body {
            EventBody::AlertExpiry(row) => match self.expiry_due(txn, row)? {
                crate::alerts::expiry::Due::Done(receipt) => return Ok(Ok(receipt)),
                crate::alerts::expiry::Due::Expired(alert) => {
                    expired = EventBody::Alert(*alert);
                    &expired
                }
            },
            other => other,
        };
        if let EventBody::Retention(sweep) = body {
            return self.prune(txn, sweep, received_at).map(Ok);
        }
        if let EventBody::Alert(alert) = body
            && let Some(receipt) = self.resent(txn, alert)?
        {
            return Ok(Ok(receipt));
        }
        if let EventBody::VendorCallback(callback) = body
            && let Some(receipt) = self.callback_seen(txn, callback)?
        {
            return Ok(Ok(receipt));
        }
        if let EventBody::Mail(mail) = body
            && let Some(receipt) = self.mail_seen(txn, mail)?
        {
            return Ok(Ok(receipt));
        }
        txn.savepoint();
        let id = txn.next_event_id()?;
        let event = Event {
            id,
            received_at,
            body: body.clone(),
        };
        let row = row_ref(txn, &event.body)?;
        let mut handled = match &event.body {
            EventBody::Alert(alert) => self.alert(txn, &event, alert)?,
            EventBody::Mail(mail) => self.mail(txn, &event, mail)?,
            EventBody::Command(command) => match self.command(txn, &event, command)? {
                Ok(handled) => handled,
                Err(refused) => {
                    txn.rollback();
                    return Ok(Err(refused));
                }
            },
            EventBody::Delivery(delivery) => match self.delivery(txn, &event, delivery)? {
                Ok(handled) => handled,
                Err(refused) => {
                    txn.rollback();
                    return Ok(Err(refused));
                }
            },
            EventBody::VendorCallback(callback) => match self.callback(txn, &event, callback)? {
                Ok(handled) => handled,
                Err(refused) => {
                    txn.rollback();
                    return Ok(Err(refused));
                }
            },
            EventBody::Account(command) => match self.account(txn, command)? {
                Ok(handled) => handled,
                Err(refused) => {
                    txn.rollback();
                    return Ok(Err(refused));
                }
            },
            EventBody::Clock(timer) => self.clock_fired(txn, &event, timer)?,
            EventBody::Change(change) => self.change_event(txn, &event, change)?,
            // Turned into the alert it resolves above; nothing is left to do with the row.
            EventBody::AlertExpiry(_) | EventBody::Retention(_) => crate::alerts::step::Handled {
                ticket: None,
                outcome: crate::store::layout::Outcome::Recorded,
                rule_failures: Vec::new(),
            },
        };
        self.link_suspect_changes(txn, &event)?;
        self.on_ticket_rounds(txn, &event, &mut handled)?;
        self.link_suspect_changes(txn, &event)?;
        // After the rules: their changes (priority, holds) move the clocks too.
        self.sla_after_event(txn, &event)?;
        self.enqueue_messages(txn, &event)?;
        let receipt = Receipt {
            event_id: id,
            ticket: handled.ticket,
            outcome: handled.outcome,
        };
        let record = StoredEvent {
            event,
            ticket: handled.ticket,
            outcome: handled.outcome,
            rule_failures: handled.rule_failures,
            batch: self.batch_of(id),
            row,
        };
        txn.put(Tree::Events, u64_key(id).to_vec(), encode(&record));
        Ok(Ok(receipt))
    }

    pub(crate) fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// The batch of journaled event `id`: the batch's first event when that is another.
    fn batch_of(&self, id: crate::event::EventId) -> Option<crate::event::EventId> {
        let first = self.batch_first.get().unwrap_or(id);
        self.batch_first.set(Some(first));
        (first != id).then_some(first)
    }
}

/// The engine's clock: while an event is processed it reads the event's receive time, so
/// everything the event causes (history times, SLA due times, reopen and flap windows, the
/// rules' `now()` and queries) is a function of the journal alone. That is what lets replay
/// reproduce it exactly: the processing time (a few milliseconds later, or after a restart)
/// is not recorded anywhere. Between events it reads the wrapped clock.
pub(crate) struct EventClock {
    inner: Arc<dyn Clock>,
    pinned: Mutex<Option<jiff::Timestamp>>,
}

impl EventClock {
    pub(crate) fn new(inner: Arc<dyn Clock>) -> EventClock {
        EventClock {
            inner,
            pinned: Mutex::new(None),
        }
    }

    fn pin(&self, at: Option<jiff::Timestamp>) {
        *self.pinned.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for EventClock {
    fn now(&self) -> jiff::Timestamp {
        let pinned = *self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        pinned.unwrap_or_else(|| self.inner.now())
    }
}

/// Adds a batch's writes to `itsmd_store_writes_total` and `…_write_bytes_total` per tree.
fn count_writes(m: &crate::metrics::Metrics, writes: &crate::store::WriteBatch) {
    let mut per_tree: std::collections::BTreeMap<&'static str, (u64, u64)> = Default::default();
    for w in &writes.writes {
        let (tree, bytes) = match w {
            crate::store::Write::Put { tree, value, .. } => (tree, value.len() as u64),
            crate::store::Write::Delete { tree, .. } => (tree, 0),
        };
        let entry = per_tree.entry(tree.name()).or_default();
        entry.0 += 1;
        entry.1 += bytes;
    }
    for (tree, (keys, bytes)) in per_tree {
        let labels = crate::metrics::TreeLabels { tree };
        m.store_writes.get_or_create(&labels).inc_by(keys);
        m.store_write_bytes.get_or_create(&labels).inc_by(bytes);
    }
}

pub(super) fn stage(m: &crate::metrics::Metrics, stage: &'static str, from: Instant, to: Instant) {
    m.commit_stage_seconds
        .get_or_create(&crate::metrics::StageLabels { stage })
        .inc_by(to.duration_since(from).as_secs_f64());
}

/// The outbox row a delivery event is about, as it is before the event changes it.
fn row_ref(
    txn: &Txn<'_>,
    body: &EventBody,
) -> Result<Option<crate::store::layout::RowRef>, StoreError> {
    use crate::vendors::Delivery;
    let (EventBody::Delivery(Delivery::Attempted { row, .. })
    | EventBody::Delivery(Delivery::ReplayRow { row })) = body
    else {
        return Ok(None);
    };
    let key = crate::store::layout::outbox::row_key(*row);
    for tree in [Tree::Outbox, Tree::OutboxDead] {
        if let Some(bytes) = txn.get(tree, &key)? {
            let r: crate::vendors::OutboxRow = crate::store::decode(tree, &bytes)?;
            return Ok(Some(crate::store::layout::RowRef {
                event: r.event,
                ticket: r.ticket,
                vendor: r.vendor,
                kind: r.kind,
            }));
        }
    }
    Ok(None)
}
