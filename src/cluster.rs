//! Several nodes, one writer (cluster mode, PostgreSQL only).
//!
//! Every node takes intake and serves reads; one node, the leader, runs the engine and the
//! tasks that consume shared state (clock tasks, dispatcher, sweeps). Leadership is a lease
//! row in the database (`itsmd_lease`), taken or renewed every `renew_ms` for `lease_ms`;
//! each change of hands raises its fencing token, and the leader's every batch commits only
//! if its token is still the current one (`store::Shared::commit_fenced`), so a paused old
//! leader cannot write. Intake on any node stores each event in the shared inbox
//! (`itsmd_inbox`) and answers once that insert is committed; the leader's engine takes the
//! inbox in id order and answers each row in the same transaction as its effects.
//!
//! This module owns `[cluster]`, the node's view of the lease, the inbox answer format and
//! the lease task; it must not process events itself.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::{Receipt, Refusal, SubmitError};
use crate::event::EventBody;
use crate::metrics::Metrics;
use crate::store::layout::Outcome;
use crate::store::{Shared, StoreError, Tree};

/// `[cluster]`: several itsmd nodes on one PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Runs this node as one of several on `[store] backend = "postgres"`.
    pub enabled: bool,
    /// This node's name in the lease; empty means hostname-pid.
    pub node: String,
    /// How long a taken lease lasts without renewal, in milliseconds.
    pub lease_ms: u64,
    /// How often the lease is renewed (or tried for), in milliseconds.
    pub renew_ms: u64,
    /// How long intake waits for the leader to process an event before it answers
    /// `"outcome": "queued"`, in milliseconds.
    pub answer_wait_ms: u64,
    /// Unprocessed events the shared inbox may hold; past it, intake answers 503 with
    /// Retry-After (the leader is behind, or there is none).
    pub inbox_limit: u64,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            enabled: false,
            node: String::new(),
            lease_ms: 3000,
            renew_ms: 1000,
            answer_wait_ms: 2000,
            inbox_limit: 100_000,
        }
    }
}

impl ClusterConfig {
    /// Problems with the section, for config validation.
    pub fn problems(&self, backend: crate::config::StoreBackend) -> Vec<String> {
        let mut out = Vec::new();
        if !self.enabled {
            return out;
        }
        if backend != crate::config::StoreBackend::Postgres {
            out.push(
                "cluster.enabled needs store.backend = \"postgres\" (the nodes share its database)"
                    .into(),
            );
        }
        if self.inbox_limit == 0 {
            out.push("cluster.inbox_limit must be above 0".into());
        }
        if self.renew_ms == 0 || self.renew_ms * 2 > self.lease_ms {
            out.push(format!(
                "cluster.renew_ms = {} must be above 0 and at most half of cluster.lease_ms = {}",
                self.renew_ms, self.lease_ms
            ));
        }
        out
    }

    /// The node's name: `node`, or hostname-pid.
    pub fn node_name(&self) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "itsmd".into());
        format!("{host}-{}", std::process::id())
    }
}

/// The node's role, for health and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One node on its own store (no cluster mode).
    Single,
    Leader,
    Follower,
}

/// What this node knows of the lease, shared by the lease task, the engine and health.
#[derive(Debug)]
pub struct ClusterState {
    pub node: String,
    /// The token of the term this node leads; 0 while it does not lead.
    token: AtomicI64,
    holder: Mutex<String>,
}

impl ClusterState {
    pub fn new(node: String) -> ClusterState {
        ClusterState {
            node,
            token: AtomicI64::new(0),
            holder: Mutex::new(String::new()),
        }
    }

    /// The token of the term this node leads, if it leads.
    pub fn token(&self) -> Option<i64> {
        match self.token.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    pub fn role(&self) -> Role {
        if self.token().is_some() {
            Role::Leader
        } else {
            Role::Follower
        }
    }

    /// The lease holder as last read (empty before the first read).
    pub fn holder(&self) -> String {
        self.holder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops leading the term of `token` (the engine calls this when a batch was fenced).
    pub fn step_down(&self, token: i64) -> bool {
        self.token
            .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// An event as the inbox stores it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Queued {
    pub received_at: jiff::Timestamp,
    pub body: EventBody,
}

/// What the leader wrote back into an inbox row, in the transaction that processed it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    Done(Receipt),
    /// A refused command: its kind (`not_found`, `illegal`, `invalid`, `forbidden`,
    /// `conflict`), the ticket it concerned for `not_found`, the message, and what the API
    /// answer lists (allowed targets, every field at fault), so that a follower answers
    /// exactly as the leader would.
    Refused {
        kind: String,
        ticket: Option<crate::tickets::TicketId>,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<Detail>,
    },
    /// The row could not be read (a newer node's format, a damaged row): never processed.
    Failed(String),
}

/// The details of a refusal beyond its message.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Detail {
    Illegal {
        kind: crate::tickets::Kind,
        from: crate::tickets::State,
        to: crate::tickets::State,
        allowed: Vec<crate::tickets::State>,
    },
    /// Every `(field, message)` at fault.
    Invalid(Vec<(String, String)>),
}

impl Answer {
    pub(crate) fn of(result: &Result<Receipt, Refusal>) -> Answer {
        match result {
            Ok(receipt) => Answer::Done(receipt.clone()),
            Err(refusal) => {
                let (kind, ticket) = match refusal {
                    Refusal::NotFound(id) => ("not_found", Some(*id)),
                    Refusal::Illegal(_) => ("illegal", None),
                    Refusal::Invalid(_) => ("invalid", None),
                    Refusal::Forbidden(_) => ("forbidden", None),
                    Refusal::Conflict(_) => ("conflict", None),
                };
                let detail = match refusal {
                    Refusal::Illegal(i) => i.kind.parse().ok().map(|kind| Detail::Illegal {
                        kind,
                        from: i.from,
                        to: i.to,
                        allowed: i.allowed.clone(),
                    }),
                    Refusal::Invalid(problems) => Some(Detail::Invalid(
                        problems
                            .iter()
                            .map(|p| (p.field.to_string(), p.message.clone()))
                            .collect(),
                    )),
                    _ => None,
                };
                Answer::Refused {
                    kind: kind.into(),
                    ticket,
                    message: refusal.to_string(),
                    detail,
                }
            }
        }
    }

    /// The answer as the submitter's result: the refusal the leader made, rebuilt from its
    /// kind, message and details (an answer without details, from an older node, keeps its
    /// kind and message).
    fn into_result(self) -> Result<Receipt, SubmitError> {
        use crate::tickets::lifecycle::{IllegalTransition, Unmet};
        match self {
            Answer::Done(receipt) => Ok(receipt),
            Answer::Refused {
                kind,
                ticket,
                message,
                detail,
            } => Err(SubmitError::Rejected(
                match (kind.as_str(), ticket, detail) {
                    (
                        "illegal",
                        _,
                        Some(Detail::Illegal {
                            kind,
                            from,
                            to,
                            allowed,
                        }),
                    ) => Refusal::Illegal(IllegalTransition {
                        kind: kind.as_str(),
                        from,
                        to,
                        allowed,
                    }),
                    ("invalid", _, Some(Detail::Invalid(problems))) if !problems.is_empty() => {
                        Refusal::Invalid(
                            problems
                                .into_iter()
                                .map(|(field, message)| Unmet {
                                    field: field.into(),
                                    message,
                                })
                                .collect(),
                        )
                    }
                    ("not_found", Some(id), _) => Refusal::NotFound(id),
                    ("forbidden", _, _) => Refusal::Forbidden(message),
                    ("invalid", _, _) => crate::tickets::commands::invalid("request", message),
                    _ => Refusal::Conflict(message),
                },
            )),
            Answer::Failed(message) => Err(SubmitError::Store(message)),
        }
    }
}

/// Intake's side of the inbox. One thread per node (the hub) takes the events of every
/// request waiting at that moment into one INSERT (group commit: one statement and one WAL
/// flush for all of them), and looks for answers only when the leader says it wrote some
/// (its commit NOTIFYs the batch's highest inbox id): then one query for the waiting rows up
/// to that id. So the node's one intake connection runs one statement per flush and one per
/// leader commit, not two per request.
pub(crate) struct Intake {
    hub: Mutex<std::sync::mpsc::Sender<Request>>,
    /// Dropped with the last handle: the answers listener then stops.
    _alive: Arc<()>,
    pub wait: Duration,
}

/// A request to the hub.
enum Request {
    /// Store these events; their inbox ids.
    Push(
        Vec<Vec<u8>>,
        tokio::sync::oneshot::Sender<Result<Vec<i64>, SubmitError>>,
    ),
    /// The answer of this inbox row, once the leader has written it (dropped: not wanted).
    Watch(i64, tokio::sync::oneshot::Sender<Vec<u8>>),
    /// The leader committed answers to inbox rows up to this id; `None`: perhaps to any
    /// (the answers listener (re)connected, so notifications may have been lost).
    Answered(Option<i64>),
}

/// How often the hub looks for the answers of the rows it watches when it is not told.
const ANSWER_POLL: Duration = Duration::from_millis(5);

/// How often it looks anyway while the leader's notifications come (in case one was lost).
const ANSWER_FALLBACK: Duration = Duration::from_millis(500);

impl Intake {
    /// Starts the hub on `shared` (its own connection); events beyond `limit` unanswered
    /// rows are refused (503).
    pub(crate) fn start(
        shared: Arc<dyn Shared>,
        wait: Duration,
        limit: u64,
    ) -> std::io::Result<Intake> {
        let (hub, requests) = std::sync::mpsc::channel();
        let alive = Arc::new(());
        let (told, gone) = (hub.clone(), Arc::downgrade(&alive));
        let listening = shared
            .on_answers(Box::new(move |upto| {
                gone.upgrade().is_some() && told.send(Request::Answered(upto)).is_ok()
            }))
            .inspect_err(|e| {
                warn!(error = %e, "Intake cannot listen for the leader's answers; it polls for them instead.")
            })
            .is_ok();
        std::thread::Builder::new()
            .name("itsmd-intake".into())
            .spawn(move || hub_loop(&*shared, limit, &requests, listening))?;
        Ok(Intake {
            hub: Mutex::new(hub),
            _alive: alive,
            wait,
        })
    }
    fn send(&self, request: Request) -> Result<(), SubmitError> {
        self.hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(request)
            .map_err(|_| SubmitError::Stopped)
    }

    /// Stores the events in the inbox (durable once this returns past the insert), then
    /// waits until each is answered or `wait` has passed; an unanswered one gets a receipt
    /// with outcome `queued`.
    pub(crate) async fn submit(
        &self,
        items: Vec<Queued>,
    ) -> Result<Vec<Result<Receipt, SubmitError>>, SubmitError> {
        let bodies: Vec<Vec<u8>> = items.iter().map(crate::store::encode).collect();
        let (reply, stored) = tokio::sync::oneshot::channel();
        self.send(Request::Push(bodies, reply))?;
        let ids = stored.await.map_err(|_| SubmitError::Stopped)??;
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut answers = Vec::with_capacity(ids.len());
        for id in ids {
            let (reply, answered) = tokio::sync::oneshot::channel();
            self.send(Request::Watch(id, reply))?;
            answers.push(answered);
        }
        let mut out = Vec::with_capacity(answers.len());
        for answered in answers {
            out.push(match tokio::time::timeout_at(deadline, answered).await {
                Ok(Ok(bytes)) => crate::store::decode::<Answer>(Tree::Meta, &bytes)
                    .unwrap_or_else(|e| Answer::Failed(e.to_string()))
                    .into_result(),
                _ => Ok(Receipt {
                    event_id: 0,
                    ticket: None,
                    outcome: Outcome::Queued,
                }),
            });
        }
        Ok(out)
    }
}

/// The hub: runs until every [`Intake`] handle is gone. `listening`: the leader's
/// notifications of answers come (else it polls every [`ANSWER_POLL`]).
fn hub_loop(
    shared: &dyn Shared,
    limit: u64,
    requests: &std::sync::mpsc::Receiver<Request>,
    listening: bool,
) {
    let every = if listening {
        ANSWER_FALLBACK
    } else {
        ANSWER_POLL
    };
    let mut watching: std::collections::BTreeMap<i64, tokio::sync::oneshot::Sender<Vec<u8>>> =
        std::collections::BTreeMap::new();
    // The highest inbox id the leader said it answered; whether watched rows up to it may
    // have answers not looked for yet; whether any watched row may (a lost notification).
    let (mut answered, mut due, mut any) = (0i64, false, false);
    let mut looked = Instant::now();
    loop {
        let first = if watching.is_empty() {
            match requests.recv() {
                Ok(r) => Some(r),
                Err(_) => return,
            }
        } else {
            match requests.recv_timeout(every.saturating_sub(looked.elapsed())) {
                Ok(r) => Some(r),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        };
        let mut pushes = Vec::new();
        for request in first
            .into_iter()
            .chain(std::iter::from_fn(|| requests.try_recv().ok()))
        {
            match request {
                Request::Push(bodies, reply) => pushes.push((bodies, reply)),
                Request::Watch(id, reply) => {
                    // Answered before its submitter asked: look for it too.
                    due |= id <= answered;
                    watching.insert(id, reply);
                }
                Request::Answered(Some(upto)) => {
                    answered = answered.max(upto);
                    due = true;
                }
                Request::Answered(None) => any = true,
            }
        }
        if !pushes.is_empty() {
            push(shared, limit, pushes);
        }
        // Submitters that stopped waiting (answered `queued`) are forgotten.
        watching.retain(|_, reply| !reply.is_closed());
        let fallback = looked.elapsed() >= every;
        if watching.is_empty() || !(due || any || fallback) {
            continue;
        }
        let ids: Vec<i64> = if any || fallback {
            watching.keys().copied().collect()
        } else {
            watching.range(..=answered).map(|(id, _)| *id).collect()
        };
        (due, any, looked) = (false, false, Instant::now());
        if ids.is_empty() {
            continue;
        }
        match shared.answers(ids) {
            Ok(found) => {
                for (id, bytes) in found {
                    if let Some(reply) = watching.remove(&id) {
                        let _ = reply.send(bytes);
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "Inbox answers could not be read; retrying.");
                any = true;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Stores the events of every waiting push in one insert and tells each its ids.
#[allow(clippy::type_complexity)]
fn push(
    shared: &dyn Shared,
    limit: u64,
    pushes: Vec<(
        Vec<Vec<u8>>,
        tokio::sync::oneshot::Sender<Result<Vec<i64>, SubmitError>>,
    )>,
) {
    let counts: Vec<usize> = pushes.iter().map(|(b, _)| b.len()).collect();
    let (all, replies): (Vec<Vec<Vec<u8>>>, Vec<_>) = pushes.into_iter().unzip();
    match shared.push(all.into_iter().flatten().collect(), limit) {
        Ok(ids) => {
            let mut ids = ids.into_iter();
            for (n, reply) in counts.into_iter().zip(replies) {
                let _ = reply.send(Ok(ids.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            if let StoreError::InboxFull { limit } = e {
                warn!(
                    limit,
                    "Shared inbox full; intake answers 503 until the leader catches up."
                );
            }
            for reply in replies {
                let _ = reply.send(Err(match &e {
                    StoreError::InboxFull { .. } => SubmitError::Busy,
                    other => SubmitError::Store(other.to_string()),
                }));
            }
        }
    }
}

/// The tasks a term of leadership runs, started with the term's cancellation token.
pub type LeaderTasks = Box<dyn FnMut(CancellationToken) -> Vec<tokio::task::JoinHandle<()>> + Send>;

/// How long answered inbox rows are kept (for submitters still polling, and for reading).
const KEEP_ANSWERED_SECS: u64 = 600;

/// Lease rounds between two prunes of answered inbox rows.
const PRUNE_EVERY: u64 = 60;

/// The lease task: takes or renews the lease every `renew_ms`, starts the leader's tasks on
/// taking the lead and cancels them on losing it; gives the lease up at shutdown.
pub async fn run(
    config: ClusterConfig,
    shared: Arc<dyn Shared>,
    state: Arc<ClusterState>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    mut leader_tasks: LeaderTasks,
) {
    let lease = Duration::from_millis(config.lease_ms);
    let mut ticks = tokio::time::interval(Duration::from_millis(config.renew_ms));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term: Option<(i64, CancellationToken, Vec<tokio::task::JoinHandle<()>>)> = None;
    // Since when this node's lease is known to be held (the start of the last renewal).
    let mut renewed_at = Instant::now();
    let mut rounds: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        rounds += 1;
        let asked = Instant::now();
        let (node, ms, s) = (state.node.clone(), config.lease_ms, shared.clone());
        let taken = tokio::time::timeout(
            lease,
            tokio::task::spawn_blocking(move || s.take_lease(&node, ms)),
        )
        .await;
        let seen = match taken {
            Ok(Ok(Ok(seen))) => Some(seen),
            Ok(Ok(Err(e))) => {
                warn!(node = %state.node, error = %e, "Lease renewal failed.");
                None
            }
            Ok(Err(e)) => {
                warn!(node = %state.node, error = %e, "Lease renewal task failed.");
                None
            }
            Err(_) => {
                warn!(node = %state.node, waited_ms = config.lease_ms, "Lease renewal timed out.");
                None
            }
        };
        let leads = match &seen {
            Some(seen) => {
                *state.holder.lock().unwrap_or_else(|p| p.into_inner()) = seen.holder.clone();
                seen.mine.then_some(seen.token)
            }
            // Not renewed: still leading only while the last renewal's lease can run.
            None => term
                .as_ref()
                .filter(|_| renewed_at.elapsed() < lease)
                .map(|t| t.0),
        };
        if seen.as_ref().is_some_and(|s| s.mine) {
            renewed_at = asked;
        }
        let current = term.as_ref().map(|t| t.0);
        // The engine may have stepped down by itself (a fenced batch).
        let engine_leads = state.token();
        if current != leads || (current.is_some() && engine_leads != current) {
            if let Some((token, cancel, tasks)) = term.take() {
                state.step_down(token);
                cancel.cancel();
                metrics.lease_changes.inc();
                info!(node = %state.node, token, holder = %state.holder(), "Stepped down: another node holds the lease.");
                tokio::spawn(async move {
                    for t in tasks {
                        let _ = t.await;
                    }
                });
            }
            if let Some(token) = leads
                && Some(token) != current
            {
                let cancel = shutdown.child_token();
                state.token.store(token, Ordering::Release);
                metrics.lease_changes.inc();
                info!(node = %state.node, token, "Took the lead: the engine now takes the shared inbox.");
                let tasks = leader_tasks(cancel.clone());
                term = Some((token, cancel, tasks));
            }
        }
        if let Some(seen) = &seen {
            metrics.inbox_depth.set(seen.pending as i64);
        }
        if term.is_some() && rounds.is_multiple_of(PRUNE_EVERY) {
            let s = shared.clone();
            if let Ok(Err(e)) =
                tokio::task::spawn_blocking(move || s.prune(KEEP_ANSWERED_SECS)).await
            {
                warn!(node = %state.node, error = %e, "Inbox prune failed; retrying next time.");
            }
        }
    }
    if let Some((token, cancel, tasks)) = term.take() {
        cancel.cancel();
        for t in tasks {
            let _ = t.await;
        }
        state.step_down(token);
        let (node, s) = (state.node.clone(), shared.clone());
        match tokio::task::spawn_blocking(move || s.release_lease(&node, token)).await {
            Ok(Ok(())) => {
                info!(node = %state.node, token, "Lease given up: another node can take the lead at once.")
            }
            Ok(Err(e)) => {
                warn!(node = %state.node, error = %e, "Lease could not be given up; it runs out by itself.")
            }
            Err(e) => {
                warn!(node = %state.node, error = %e, "Lease could not be given up; it runs out by itself.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::State;
    use crate::tickets::lifecycle::{IllegalTransition, Unmet};

    /// What the leader writes into the inbox row, read back by the follower.
    fn across(refusal: Refusal) -> Refusal {
        let bytes = crate::store::encode(&Answer::of(&Err(refusal)));
        let answer: Answer = crate::store::decode(Tree::Meta, &bytes).unwrap();
        match answer.into_result() {
            Err(SubmitError::Rejected(r)) => r,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_refusal_crosses_nodes_with_its_details() {
        let illegal = Refusal::Illegal(IllegalTransition {
            kind: "incident",
            from: State::New,
            to: State::Closed,
            allowed: vec![State::InProgress, State::OnHold],
        });
        assert_eq!(across(illegal.clone()), illegal);
        let invalid = Refusal::Invalid(vec![
            Unmet {
                field: "hold_reason".into(),
                message: "required to go on hold".into(),
            },
            Unmet {
                field: "window".into(),
                message: "ends before it starts".into(),
            },
        ]);
        assert_eq!(across(invalid.clone()), invalid);
        let missing = Refusal::NotFound("INC-000042".parse().unwrap());
        assert_eq!(across(missing.clone()), missing);
        let conflict = Refusal::Conflict("the link exists already".into());
        assert_eq!(across(conflict.clone()), conflict);
        // An answer from an older node (no details) keeps its kind and message.
        let old = br#"{"refused":{"kind":"invalid","ticket":null,"message":"`title`: empty"}}"#;
        let mut bytes = crate::store::encode(&0u8);
        bytes.truncate(1);
        bytes.extend_from_slice(old);
        let answer: Answer = crate::store::decode(Tree::Meta, &bytes).unwrap();
        assert!(matches!(
            answer.into_result(),
            Err(SubmitError::Rejected(Refusal::Invalid(p))) if p[0].message == "`title`: empty"
        ));
    }
}
