//! The engine: the one writer of tickets, history and the event journal.
//!
//! Sources hand events to an [`EngineHandle`]; a bounded queue carries them to one engine
//! thread, which takes them in batches. For each event it records it, runs the rules,
//! validates and applies their decisions; then it commits the whole batch as one store write,
//! flushes once, and only then answers every sender. Nothing else mutates the store, so no
//! business logic needs a lock. This module must not parse wire formats or serve HTTP.

mod alerts;
mod apply;
mod batch;
mod commands;
pub mod housekeeping;
mod links;
mod transitions;
mod txn;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::config::{ApprovalConfig, Config, Groups, LifecycleConfig};
use crate::model::{EventBody, EventId, PriorityMatrix, TicketId};
use crate::records::Outcome;
use crate::rules::Rules;
use crate::store::Store;

/// What a sender gets back once its event is durable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    pub event_id: EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketId>,
    pub outcome: Outcome,
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

pub use commands::Refusal;

/// One event waiting for the engine, with the channel its receipt goes back on.
struct Submission {
    body: EventBody,
    received_at: Timestamp,
    reply: oneshot::Sender<Result<Receipt, SubmitError>>,
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
}

/// The cloneable sending side. Dropping every handle stops the engine after it drains.
#[derive(Clone)]
pub struct EngineHandle {
    /// Bounded: a full queue is backpressure, answered with 503 by intake.
    tx: mpsc::Sender<Submission>,
    /// Shared with the engine thread, which updates it after each batch.
    status: Arc<Mutex<EngineStatus>>,
    /// Read when the engine stamps the arrival time.
    clock: Arc<dyn Clock>,
}

impl EngineHandle {
    /// Queues an event and waits until it is durable. Fails at once with
    /// [`SubmitError::Busy`] when the queue is full.
    pub async fn submit(&self, body: EventBody) -> Result<Receipt, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            body,
            received_at: self.clock.now(),
            reply,
        };
        self.tx.try_send(submission).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
        })?;
        answer.await.map_err(|_| SubmitError::Stopped)?
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
}

/// Settings the engine reads on every event.
#[derive(Debug, Clone)]
struct Settings {
    max_batch: usize,
    matrix: PriorityMatrix,
    triage_group: String,
    /// Who may be assigned what; unknown groups from rules fall back to triage.
    groups: Groups,
    /// Who approves service requests, and how many must.
    approval: ApprovalConfig,
    /// When resolved and fulfilled tickets close themselves.
    lifecycle: LifecycleConfig,
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

/// Starts the engine on its own thread.
pub fn start(
    config: &Config,
    store: Arc<dyn Store>,
    rules: Rules,
    clock: Arc<dyn Clock>,
) -> std::io::Result<(EngineHandle, EngineThread)> {
    let (tx, rx) = mpsc::channel(config.engine.queue_capacity);
    let status = Arc::new(Mutex::new(EngineStatus {
        rules_version: rules.version().to_string(),
        rules_origin: rules.set().origin.clone(),
        ..EngineStatus::default()
    }));
    let engine = batch::Engine {
        store,
        rules,
        clock: clock.clone(),
        settings: Settings {
            max_batch: config.engine.max_batch,
            matrix: config.priority.matrix.clone(),
            triage_group: config.rules.triage_group.clone(),
            groups: config.groups.clone(),
            approval: config.approval.clone(),
            lifecycle: config.lifecycle.clone(),
        },
        rx,
        status: status.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("itsmd-engine".into())
        .spawn(move || engine.run())?;
    Ok((EngineHandle { tx, status, clock }, EngineThread(thread)))
}
