//! The engine: the one writer of tickets, history and the event journal.
//!
//! Sources hand events to an [`EngineHandle`]; a bounded queue carries them to one engine
//! thread, which takes them in batches. For each event it records it, runs the rules,
//! validates and applies their decisions; then it commits the whole batch as one store write,
//! and hands it to the flush thread ([`flusher`]), which flushes and only then answers every
//! sender, while the engine works on the next batch. Nothing else mutates the store, so no
//! business logic needs a lock. This module must not parse wire formats or serve HTTP.

pub(crate) mod apply;
pub(crate) mod batch;
pub(crate) mod flusher;
pub(crate) mod pipeline;
pub(crate) mod prefetch;
pub(crate) mod rule_actions;
pub(crate) mod ticket_cache;
pub(crate) mod ticket_hooks;
pub(crate) mod timer_task;
pub(crate) mod txn;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::alerts::AlertsConfig;
use crate::clock::Clock;
use crate::config::Config;
use crate::event::{EventBody, EventId};
use crate::mail::MailConfig;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::Store;
use crate::store::layout::Outcome;
use crate::tickets::{ApprovalConfig, Groups, LifecycleConfig, PriorityMatrix, TicketId};

/// What a sender gets back once its event is durable.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Receipt {
    /// 0 (and left out) while the event is only queued in the shared inbox.
    #[serde(default, skip_serializing_if = "not_yet")]
    pub event_id: EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketId>,
    pub outcome: Outcome,
}

fn not_yet(id: &EventId) -> bool {
    *id == 0
}

/// Why an event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the event queue is full; retry later")]
    Busy,
    #[error("itsmd is shutting down; retry later")]
    Stopped,
    #[error("the event could not be stored: {0}")]
    Store(String),
    /// A command that failed validation; nothing of it was stored.
    #[error(transparent)]
    Rejected(#[from] Refusal),
}

pub use crate::tickets::commands::Refusal;

/// One event waiting for the engine, with the channel its receipt goes back on.
struct Submission {
    body: EventBody,
    received_at: Timestamp,
    reply: oneshot::Sender<Result<Receipt, SubmitError>>,
    /// The next submission belongs in the same batch ([`EngineHandle::submit_batch`]).
    joined: bool,
}

/// What the engine publishes about itself, for health and readiness.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineStatus {
    /// True while the engine thread is taking events.
    pub running: bool,
    pub rules_version: String,
    pub rules_origin: String,
    pub events: u64,
    pub batches: u64,
    /// The error of the last batch commit, if it failed, and when; cleared by a commit that
    /// succeeds.
    #[serde(skip)]
    pub last_commit_error: Option<(String, std::time::Instant)>,
    /// The batches failing in a row, for a log that says so once per interval.
    #[serde(skip)]
    pub(crate) failed_commits: flusher::FailedCommits,
    /// Since when the engine has been working on its current batch (None between batches).
    #[serde(skip)]
    pub committing_since: Option<std::time::Instant>,
    /// Rule files disabled for exhausting their budget, until the next reload.
    pub disabled_rules: Vec<String>,
}

/// The cloneable sending side. Dropping every handle stops the engine after it drains.
#[derive(Clone)]
pub struct EngineHandle {
    /// Bounded: a full queue is backpressure, answered with 503 by intake.
    tx: mpsc::Sender<Submission>,
    /// Shared with the engine thread, which updates it after each batch.
    status: Arc<Mutex<EngineStatus>>,
    /// Read when the engine stamps the arrival time.
    pub(crate) clock: Arc<dyn Clock>,
    /// The engine holds it shared while it applies a batch; holding it exclusively (and
    /// waiting for `unflushed` to drain) keeps the store still (a consistent export).
    commit_gate: Arc<RwLock<()>>,
    /// Batches applied but not flushed yet (the flush thread's).
    unflushed: Arc<flusher::Unflushed>,
    /// Rules and settings in force; replaced by reloads.
    live: Arc<Live>,
    /// Marked changed by every reload, for tasks that read settings (see
    /// [`EngineHandle::settings_changed`]).
    reloaded: Arc<tokio::sync::watch::Sender<()>>,
    /// Notified after a commit that made outbox rows due, so the dispatcher need not poll.
    outbox_ready: Arc<tokio::sync::Notify>,
    /// Signalled after a commit that stored new SLA timers, so the clock task re-reads.
    timers: Arc<tokio::sync::Notify>,
    /// Signalled after a commit that stored new alert expiry rows, so the expiry task re-reads.
    alert_timers: Arc<tokio::sync::Notify>,
    /// The highest outbox row id on disk. A batch is visible in the store from its apply,
    /// before its flush; a row above this may still vanish in a crash, so it is not sent.
    durable_outbox: Arc<AtomicU64>,
    /// The registry this engine counts into (given to `start`).
    metrics: Arc<Metrics>,
    /// Cluster mode: submissions go to the shared inbox, not to this node's queue.
    intake: Option<Arc<crate::cluster::Intake>>,
    /// Cluster mode: this node's view of the lease.
    cluster: Option<Arc<crate::cluster::ClusterState>>,
}

impl EngineHandle {
    /// The registry this engine counts into: whatever serves or feeds this engine (intake,
    /// the dispatcher, mail intake) counts into the same one.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// This node's role and the lease holder (`"single"` and none without cluster mode).
    pub fn role(&self) -> (crate::cluster::Role, Option<String>) {
        match &self.cluster {
            None => (crate::cluster::Role::Single, None),
            Some(state) => (state.role(), Some(state.holder())),
        }
    }

    /// The highest outbox row id that is flushed: rows above it are not delivered yet, so a
    /// webhook never describes a change a crash could still undo.
    pub fn durable_outbox_row(&self) -> u64 {
        self.durable_outbox.load(Ordering::Acquire)
    }

    /// What the engine notifies when outbox rows become due.
    pub fn outbox_ready(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_ready.clone()
    }

    /// The rule set in force (reloads replace it).
    pub fn rules(&self) -> Arc<Rules> {
        self.live.current().0
    }

    /// The SLA policies and calendars in force (reloads replace them).
    pub fn sla(&self) -> (crate::sla::SlaConfig, Arc<crate::sla::Calendars>) {
        let (_, settings) = self.live.current();
        (settings.sla.clone(), settings.calendars.clone())
    }

    /// The mail and chat templates in force (reloads replace them).
    pub fn templates(&self) -> Arc<crate::mail::outbound::Templates> {
        let (_, settings) = self.live.current();
        settings.templates.clone()
    }

    /// The `[lifecycle]` settings in force (reloads replace them).
    pub fn lifecycle(&self) -> LifecycleConfig {
        let (_, settings) = self.live.current();
        settings.lifecycle.clone()
    }

    /// The groups and their members in force (reloads replace them).
    pub fn groups(&self) -> crate::tickets::config::Groups {
        let (_, settings) = self.live.current();
        settings.groups.clone()
    }

    /// The `[changes]` settings in force (the standard change catalogue).
    pub fn changes(&self) -> crate::tickets::ChangeConfig {
        let (_, settings) = self.live.current();
        settings.changes.clone()
    }

    /// The `[retention]` settings and the mail senders' rate window in force (reloads
    /// replace them).
    pub fn retention(
        &self,
    ) -> (
        crate::retention::RetentionConfig,
        crate::config::duration::Friendly,
    ) {
        let (_, settings) = self.live.current();
        (settings.retention.clone(), settings.mail.rate_window)
    }

    /// Changes after every reload that put new settings in force, so a task can re-read
    /// them at once rather than at its next wake-up.
    pub fn settings_changed(&self) -> tokio::sync::watch::Receiver<()> {
        self.reloaded.subscribe()
    }

    /// What the engine signals after committing new SLA timers (one stored permit: a signal
    /// sent while nobody waits is not lost).
    pub fn timers_changed(&self) -> Arc<tokio::sync::Notify> {
        self.timers.clone()
    }

    /// What the engine signals after committing new alert expiry rows (one stored permit).
    pub fn alert_timers_changed(&self) -> Arc<tokio::sync::Notify> {
        self.alert_timers.clone()
    }

    /// The `[alerts]` settings in force (reloads replace them).
    pub fn alerts(&self) -> crate::alerts::AlertsConfig {
        let (_, settings) = self.live.current();
        settings.alerts.clone()
    }

    /// Queues an event and waits until it is durable. Fails at once with
    /// [`SubmitError::Busy`] when the queue is full.
    pub async fn submit(&self, body: EventBody) -> Result<Receipt, SubmitError> {
        if let Some(intake) = &self.intake {
            let queued = crate::cluster::Queued {
                received_at: self.clock.now(),
                body,
            };
            let mut answers = intake.submit(vec![queued]).await?;
            return answers.pop().unwrap_or(Err(SubmitError::Stopped));
        }
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            body,
            received_at: self.clock.now(),
            reply,
            joined: false,
        };
        self.tx.try_send(submission).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
        })?;
        answer.await.map_err(|_| SubmitError::Stopped)?
    }

    /// Queues several events at once (all or none: [`SubmitError::Busy`] when the queue has
    /// no room for all of them) and waits until every one is durable. Queued together, they
    /// usually share one batch, one commit and one flush.
    pub async fn submit_many(&self, bodies: Vec<EventBody>) -> Result<Vec<Receipt>, SubmitError> {
        let received_at = self.clock.now();
        let items = bodies.into_iter().map(|b| (b, received_at)).collect();
        self.queue_many(items, false).await?.into_iter().collect()
    }

    /// Replay: processes these events, each received at its own time, in one batch of their
    /// own (whatever `engine.max_batch` says now), as the batch they were first committed in;
    /// each event's answer.
    #[allow(clippy::type_complexity)]
    pub async fn submit_batch(
        &self,
        items: Vec<(EventBody, Timestamp)>,
    ) -> Result<Vec<Result<Receipt, SubmitError>>, SubmitError> {
        self.queue_many(items, true).await
    }

    #[allow(clippy::type_complexity)]
    async fn queue_many(
        &self,
        items: Vec<(EventBody, Timestamp)>,
        joined: bool,
    ) -> Result<Vec<Result<Receipt, SubmitError>>, SubmitError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(intake) = &self.intake {
            let bodies: Vec<EventBody> = items.into_iter().map(|(b, _)| b).collect();
            let received_at = self.clock.now();
            let queued = bodies
                .into_iter()
                .map(|body| crate::cluster::Queued { received_at, body })
                .collect();
            return intake.submit(queued).await;
        }
        let permits = self.tx.try_reserve_many(items.len()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => SubmitError::Busy,
            mpsc::error::TrySendError::Closed(()) => SubmitError::Stopped,
        })?;
        let last = items.len() - 1;
        let mut answers = Vec::with_capacity(items.len());
        for (i, (permit, (body, received_at))) in permits.zip(items).enumerate() {
            let (reply, answer) = oneshot::channel();
            permit.send(Submission {
                body,
                received_at,
                reply,
                joined: joined && i < last,
            });
            answers.push(answer);
        }
        let mut receipts = Vec::with_capacity(answers.len());
        for answer in answers {
            receipts.push(answer.await.map_err(|_| SubmitError::Stopped)?);
        }
        Ok(receipts)
    }

    /// The engine's clock, for senders whose input is read relative to now (an alert whose
    /// end time has passed is resolved).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The most events the queue holds: one request cannot submit more at once.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    pub fn status(&self) -> EngineStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Events waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Puts a new rule set and the engine's reloadable settings in force from the next batch.
    pub fn replace(&self, rules: Rules, config: &Config) {
        let version = rules.version().to_string();
        let origin = rules.set().origin.clone();
        *self.live.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        *self
            .live
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(Settings::of(config));
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.rules_version = version;
        status.rules_origin = origin;
        // A new rule set starts with every file enabled.
        status.disabled_rules.clear();
        self.metrics.rules_disabled.set(0);
        drop(status);
        self.reloaded.send_replace(());
    }

    /// Runs `f` while no batch is being committed, so the store does not change under it.
    /// Blocking: call from a blocking thread. Events keep queueing meanwhile.
    pub fn with_commits_paused<T>(&self, f: impl FnOnce() -> T) -> T {
        let _still = self.commit_gate.write().unwrap_or_else(|p| p.into_inner());
        // No batch is applied now; those applied before are flushed first, so `f` sees
        // only what is on disk.
        self.unflushed.wait_none();
        f()
    }
}

/// What a reload may replace, shared with the engine thread, which picks it up at the start
/// of each batch: a batch runs wholly on the old or wholly on the new.
pub(crate) struct Live {
    rules: RwLock<Arc<Rules>>,
    settings: RwLock<Arc<Settings>>,
}

impl Live {
    fn current(&self) -> (Arc<Rules>, Arc<Settings>) {
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner()).clone();
        let settings = self
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (rules, settings)
    }
}

/// Settings the engine reads on every event.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_batch: usize,
    pub(crate) matrix: PriorityMatrix,
    pub(crate) triage_group: String,
    pub(crate) alerts: AlertsConfig,
    /// Who may be assigned what; unknown groups from rules fall back to triage.
    pub(crate) groups: Groups,
    /// Who approves service requests, and how many must.
    pub(crate) approval: ApprovalConfig,
    /// When resolved and fulfilled tickets close themselves.
    pub(crate) lifecycle: LifecycleConfig,
    /// The standard change catalogue.
    pub(crate) changes: crate::tickets::ChangeConfig,
    /// Partner vendors: who may be notified and assigned, what each receives, and how their
    /// callbacks' statuses map to states.
    pub(crate) vendors: std::collections::BTreeMap<String, crate::vendors::VendorConfig>,
    /// Rounds of on_ticket per event before the loop guard cuts in.
    pub(crate) max_ticket_hook_depth: u32,
    /// SLA policies and underpinning targets.
    pub(crate) sla: crate::sla::SlaConfig,
    /// Calendars the SLA clocks count in (built from validated config).
    pub(crate) calendars: Arc<crate::sla::Calendars>,
    /// Mail intake: the per-sender rate limit.
    pub(crate) mail: MailConfig,
    /// Mail out (`[smtp]`): off when absent.
    pub(crate) smtp: Option<crate::mail::outbound::SmtpConfig>,
    /// How long the journal is kept (`[retention]`).
    pub(crate) retention: crate::retention::RetentionConfig,
    /// The mail and chat templates: the shipped set under `[smtp] templates`.
    pub(crate) templates: Arc<crate::mail::outbound::Templates>,
    /// Chat channels and whose notifications each carries (`[chat.NAME]`).
    pub(crate) chat: std::collections::BTreeMap<String, crate::mail::chat::ChatChannel>,
}

impl Settings {
    fn of(config: &Config) -> Settings {
        Settings {
            max_batch: config.engine.max_batch,
            matrix: config.priority.matrix.clone(),
            triage_group: config.rules.triage_group.clone(),
            alerts: config.alerts.clone(),
            groups: config.groups.clone(),
            approval: config.approval.clone(),
            lifecycle: config.lifecycle.clone(),
            changes: config.changes.clone(),
            vendors: config.vendors.clone(),
            max_ticket_hook_depth: config.rules.max_ticket_hook_depth,
            sla: with_vendor_targets(config),
            // Validated configuration builds; a failure leaves only 24x7 (clocks on other
            // calendars then say so in the log when they are computed).
            calendars: Arc::new(
                crate::sla::Calendars::from_config(&config.calendars).unwrap_or_default(),
            ),
            mail: config.mail.clone(),
            smtp: config.smtp.clone(),
            retention: config.retention.clone(),
            templates: crate::mail::outbound::templates::of(config),
            chat: config.chat.clone(),
        }
    }
}

/// The SLA configuration with each vendor's own `underpinning_target` (from `[vendors]`)
/// taking precedence over `[sla.underpinning] vendors`.
fn with_vendor_targets(config: &Config) -> crate::sla::SlaConfig {
    let mut sla = config.sla.clone();
    for (name, vendor) in &config.vendors {
        if let Some(target) = &vendor.underpinning_target {
            sla.underpinning.vendors.insert(name.clone(), *target);
        }
    }
    sla
}

/// The engine thread, to be joined at shutdown.
pub struct EngineThread(JoinHandle<()>);

impl EngineThread {
    /// Waits for the engine to drain its queue and stop (after every handle is dropped).
    pub async fn join(self) {
        let joined = tokio::task::spawn_blocking(move || self.0.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("Engine thread panicked.");
        }
    }
}

/// Starts the engine on its own thread. The engine counts into `metrics` (one registry per
/// engine instance: the daemon's is served on `/metrics`, a replay's is thrown away) and
/// logs everything inside `span`, entered on the engine thread (`Span::none()` for none).
pub fn start(
    config: &Config,
    store: Arc<dyn Store>,
    rules: Rules,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    span: tracing::Span,
) -> std::io::Result<(EngineHandle, EngineThread)> {
    start_on(config, store, None, rules, clock, metrics, span)
}

/// Builds the search and report indexes, moves links on the many side out of the ticket
/// records, and builds the tickets by service of rule queries, when the store lacks them at
/// the current version (`store::layout::search::ensure`, `links::ensure`,
/// `by_service::ensure`), saying so in the log.
pub(crate) fn ensure_indexes(
    store: &dyn Store,
    settings: &Settings,
) -> Result<(), crate::store::StoreError> {
    let sla = crate::reports::aggregate::SlaSetup {
        config: &settings.sla,
        calendars: &settings.calendars,
    };
    let started = std::time::Instant::now();
    let tickets = crate::store::layout::search::ensure(store, sla)?;
    if tickets > 0 {
        tracing::info!(
            tickets,
            ms = started.elapsed().as_millis() as u64,
            "Search and report indexes built."
        );
    }
    let tickets = crate::store::layout::links::ensure(store)?;
    if tickets > 0 {
        tracing::info!(
            tickets,
            "Links on the many side moved out of the ticket records."
        );
    }
    let started = std::time::Instant::now();
    let tickets = crate::store::layout::by_service::ensure(store)?;
    if tickets > 0 {
        tracing::info!(
            tickets,
            ms = started.elapsed().as_millis() as u64,
            "Tickets by service indexed for rule queries."
        );
    }
    Ok(())
}

/// The shared store and the lease view of a node in cluster mode.
pub struct Clustered {
    pub shared: Arc<dyn crate::store::Shared>,
    /// A second connection for intake's inbox inserts and polls.
    pub intake: Arc<dyn crate::store::Shared>,
    pub state: Arc<crate::cluster::ClusterState>,
}

/// [`start`], in cluster mode when `clustered` is given: every submission goes to the shared
/// inbox, and the engine thread processes the inbox only while this node holds the lease.
pub fn start_on(
    config: &Config,
    store: Arc<dyn Store>,
    clustered: Option<Clustered>,
    rules: Rules,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    span: tracing::Span,
) -> std::io::Result<(EngineHandle, EngineThread)> {
    let (tx, rx) = mpsc::channel(config.engine.queue_capacity);
    let commit_gate = Arc::new(RwLock::new(()));
    let unflushed = Arc::new(flusher::Unflushed::default());
    let outbox_ready = Arc::new(tokio::sync::Notify::new());
    let status = Arc::new(Mutex::new(EngineStatus {
        // From here: the thread is started below and events queue for it meanwhile, so
        // readiness does not depend on when the thread is first scheduled.
        running: true,
        rules_version: rules.version().to_string(),
        rules_origin: rules.set().origin.clone(),
        ..EngineStatus::default()
    }));
    let rules = Arc::new(rules);
    let settings = Arc::new(Settings::of(config));
    if clustered.is_none() {
        // In cluster mode the leader does this on taking the lead (`batch::run_shared`).
        ensure_indexes(&*store, &settings).map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    let live = Arc::new(Live {
        rules: RwLock::new(rules.clone()),
        settings: RwLock::new(settings.clone()),
    });
    let timers = Arc::new(tokio::sync::Notify::new());
    let alert_timers = Arc::new(tokio::sync::Notify::new());
    // Everything in the store at start was read back from disk: it is all durable.
    let stored_outbox =
        crate::store::layout::counter(&*store, crate::store::layout::outbox::OUTBOX_SEQ)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    let durable_outbox = Arc::new(AtomicU64::new(stored_outbox));
    let engine = batch::Engine {
        cache: Default::default(),
        durable_outbox: durable_outbox.clone(),
        unflushed: unflushed.clone(),
        timers: timers.clone(),
        alert_timers: alert_timers.clone(),
        store,
        rules,
        clock: Arc::new(batch::EventClock::new(clock.clone())),
        settings,
        rx,
        status: status.clone(),
        commit_gate: commit_gate.clone(),
        live: live.clone(),
        outbox_ready: outbox_ready.clone(),
        metrics: metrics.clone(),
        batch_first: Default::default(),
        pipeline: None,
        shared: clustered
            .as_ref()
            .map(|c| (c.shared.clone(), c.state.clone())),
    };
    let thread = std::thread::Builder::new()
        .name("itsmd-engine".into())
        .spawn(move || span.in_scope(|| engine.run()))?;
    let intake = clustered
        .as_ref()
        .map(|c| {
            crate::cluster::Intake::start(
                c.intake.clone(),
                std::time::Duration::from_millis(config.cluster.answer_wait_ms),
                config.cluster.inbox_limit,
            )
            .map(Arc::new)
        })
        .transpose()?;
    let handle = EngineHandle {
        tx,
        status,
        clock,
        commit_gate,
        unflushed,
        live,
        reloaded: Arc::new(tokio::sync::watch::channel(()).0),
        outbox_ready,
        timers,
        alert_timers,
        durable_outbox,
        metrics,
        intake,
        cluster: clustered.map(|c| c.state),
    };
    Ok((handle, EngineThread(thread)))
}
