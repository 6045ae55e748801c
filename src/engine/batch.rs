//! The engine loop: take a batch, process each event against one [`Txn`], commit and flush
//! once, then answer every sender.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, error, info};

use crate::clock::Clock;
use crate::engine::EngineStatus;
use crate::engine::Live;
use crate::engine::Receipt;
use crate::engine::Refusal;
use crate::engine::Settings;
use crate::engine::Submission;
use crate::engine::SubmitError;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::event::EventBody;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::Tree;
use crate::store::encode;
use crate::store::layout::StoredEvent;
use crate::store::u64_key;

pub(crate) struct Engine {
    pub store: Arc<dyn Store>,
    /// The rule set of the batch being processed (refreshed from `live` per batch).
    pub rules: Arc<Rules>,
    pub clock: Arc<dyn Clock>,
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
    /// Decoded tickets as stored, so hot tickets are not decoded every batch.
    pub cache: crate::engine::ticket_cache::TicketCache,
    /// This engine's registry (never a process-wide one: replay runs a second engine).
    pub metrics: Arc<Metrics>,
}

impl Engine {
    /// Runs until every sender is gone and the queue is drained.
    pub fn run(mut self) {
        info!(rules = %self.rules.version(), "Engine started.");
        crate::rules::queries::bind(self.store.clone(), self.clock.clone());
        self.set_running(true);
        let mut batch = Vec::with_capacity(self.settings.max_batch);
        while let Some(first) = self.rx.blocking_recv() {
            (self.rules, self.settings) = self.live.current();
            batch.push(first);
            while batch.len() < self.settings.max_batch {
                match self.rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(self.settings.max_batch));
            self.commit_batch(full);
        }
        self.set_running(false);
        info!("Engine stopped: queue drained.");
    }

    fn set_running(&self, running: bool) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running = running;
    }

    fn commit_batch(&mut self, batch: Vec<Submission>) {
        let started = Instant::now();
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .committing_since = Some(started);
        let mut cache = std::mem::take(&mut self.cache);
        let store = self.store.clone();
        let mut txn = Txn::new(&*store, &mut cache);
        let mut results = Vec::with_capacity(batch.len());
        for s in &batch {
            results.push(self.process(&mut txn, &s.body, s.received_at));
        }
        let mut outbox_due = false;
        let mut new_timers = false;
        let mut new_expiries = false;
        let last_outbox_row = txn.counter(crate::store::layout::outbox::OUTBOX_SEQ);
        let m = &*self.metrics;
        let mut applied = false;
        let committed = txn.finish().and_then(|(writes, changed)| {
            outbox_due = crate::vendors::step::makes_due(&writes);
            new_timers = crate::sla::step::stores_timers(&writes);
            new_expiries = crate::alerts::expiry::stores_rows(&writes);
            let _gate = self.commit_gate.read().unwrap_or_else(|p| p.into_inner());
            let applying = Instant::now();
            stage(m, "process", started, applying);
            self.store.apply(writes)?;
            applied = true;
            for t in changed {
                cache.put(Arc::new(t));
            }
            let flushing = Instant::now();
            stage(m, "apply", applying, flushing);
            let flushed = self.store.flush();
            stage(m, "flush", flushing, Instant::now());
            flushed
        });
        if !applied {
            // The store may or may not hold the batch's tickets: forget them all.
            cache.clear();
        }
        self.cache = cache;
        if let (Some(row), Ok(())) = (last_outbox_row, &committed) {
            self.durable_outbox
                .fetch_max(row, std::sync::atomic::Ordering::Release);
        }
        if outbox_due && committed.is_ok() {
            self.outbox_ready.notify_one();
        }
        if new_timers && committed.is_ok() {
            self.timers.notify_one();
        }
        if new_expiries && committed.is_ok() {
            self.alert_timers.notify_one();
        }
        m.batch_size.observe(batch.len() as f64);
        m.commit_seconds.observe(started.elapsed().as_secs_f64());
        match &committed {
            Ok(()) => debug!(
                events = batch.len(),
                micros = started.elapsed().as_micros() as u64,
                "Batch committed."
            ),
            Err(e) => {
                error!(events = batch.len(), error = %e, "Batch commit failed; senders told to retry.")
            }
        }
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.events += batch.len() as u64;
            status.batches += 1;
            status.committing_since = None;
            status.last_commit_error = committed
                .as_ref()
                .err()
                .map(|e| (e.to_string(), Instant::now()));
        }
        for (s, result) in batch.into_iter().zip(results) {
            let answer = match (&committed, result) {
                (Ok(()), Ok(Ok(receipt))) => Ok(receipt),
                (Ok(()), Ok(Err(refused))) => Err(SubmitError::Rejected(refused)),
                (Ok(()), Err(e)) => Err(SubmitError::Store(e.to_string())),
                (Err(e), _) => Err(SubmitError::Store(e.to_string())),
            };
            // A sender that went away will retry; its event is committed either way.
            let _ = s.reply.send(answer);
        }
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
            EventBody::AlertExpiry(_) => crate::alerts::step::Handled {
                ticket: None,
                outcome: crate::store::layout::Outcome::Recorded,
                rule_failures: Vec::new(),
            },
        };
        self.on_ticket_rounds(txn, &event, &mut handled)?;
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
        };
        txn.put(Tree::Events, u64_key(id).to_vec(), encode(&record));
        Ok(Ok(receipt))
    }

    pub(crate) fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }
}

fn stage(m: &crate::metrics::Metrics, stage: &'static str, from: Instant, to: Instant) {
    m.commit_stage_seconds
        .get_or_create(&crate::metrics::StageLabels { stage })
        .inc_by(to.duration_since(from).as_secs_f64());
}
