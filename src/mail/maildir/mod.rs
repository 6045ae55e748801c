//! Mail intake from a Maildir: new/ is the queue. File-system events (notify) are only a
//! signal to rescan new/; it is also scanned at start and every `mail.rescan_every`. Each
//! settled message is read, parsed ([`parse`]) and handed to the engine; only once the engine
//! answered that the mail is committed does the file move to cur/ (`:2,S`). A message that
//! cannot be read as a mail, or is too large, goes to quarantine with a `.reason` file. A
//! crash at any point leaves the message in new/ and the engine recognises it by Message-ID
//! when it comes round again. A message that cannot be read, quarantined or moved to cur/
//! (or an entry of new/ that is not a file) is reported once, counted, and retried with
//! backoff per file name while the other mail carries on. Only arrivals wake the reader:
//! its own reads of new/ must not. This module must not write the store nor decide anything
//! about tickets.

mod folder;
mod html;
pub mod parse;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub use folder::{FolderError, Maildir};
use folder::{Listing, Waiting};

use crate::engine::{EngineHandle, Receipt, SubmitError};
use crate::event::EventBody;
use crate::mail::MailConfig;
use crate::metrics::{Metrics, OutcomeLabels, ReasonLabels};

/// Mails handed to the engine at once: they usually share one commit.
const CHUNK: usize = 64;

/// Bytes of mail read and handed to the engine at once, besides at most [`CHUNK`] messages; a
/// larger message (up to `mail.max_message_bytes`) goes alone. Each mail is held several times
/// over while it is parsed, journaled and committed, so this bounds intake memory when large
/// mails arrive together.
const CHUNK_BYTES: u64 = 8 << 20;

/// How soon to look again when messages were still settling or the engine was busy.
const SOON: Duration = Duration::from_millis(250);

/// How long to let a burst of file-system events gather before scanning once.
const COALESCE: Duration = Duration::from_millis(100);

/// The first retry of a message that cannot be taken, doubled on each failure up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The environment variable of the test-only failpoint, and its one value.
///
/// TEST ONLY: with `ITSMD_FAILPOINT=mail-after-commit` the daemon aborts right after the
/// engine committed a mail and before the file moves to cur/. The integration tests use it
/// to prove that a crash at exactly that point creates no duplicate on restart. Nothing
/// else reads it; never set it in production.
const FAILPOINT_VAR: &str = "ITSMD_FAILPOINT";
const FAILPOINT_AFTER_COMMIT: &str = "mail-after-commit";

/// What the reader needs besides the folders.
struct Reader {
    engine: EngineHandle,
    dir: Maildir,
    /// Messages are read once unchanged this long.
    settle: Duration,
    /// Larger messages are quarantined unread.
    max_message_bytes: u64,
    /// Attachments up to this size keep their content.
    max_attachment_bytes: u64,
    /// The test-only failpoint (see [`FAILPOINT_VAR`]).
    abort_after_commit: bool,
    /// Messages in new/ that could not be read, quarantined or moved to cur/, by file name:
    /// each is reported once and retried with backoff, the others carry on past it.
    stuck: HashMap<String, Stuck>,
}

/// A message that could not be taken, and when to try it again.
#[derive(Debug)]
struct Stuck {
    reason: &'static str,
    /// Committed already: only the move to cur/ is left to do.
    committed: bool,
    attempts: u32,
    delay: Duration,
    next: Instant,
}

/// Why a message could not be taken this time.
struct Failure {
    /// For the metric: `unreadable`, `not_a_file`, `not_quarantined` or `not_moved`.
    reason: &'static str,
    detail: String,
    committed: bool,
}

/// What became of one message read from new/.
enum Read {
    Ready(Box<Ready>),
    /// Quarantined, or gone meanwhile: nothing left to do with it.
    Done(String),
    Failed(String, Failure),
}

/// Creates the Maildir if needed and starts watching new/, now (so nothing delivered after
/// this returns is missed); returns the task that takes mail until `shutdown`. `None` when
/// mail intake is off.
pub fn start(
    config: &MailConfig,
    engine: EngineHandle,
    shutdown: CancellationToken,
) -> Result<Option<impl Future<Output = ()> + Send + 'static>, FolderError> {
    let Some(root) = config.maildir() else {
        return Ok(None);
    };
    let dir = Maildir::create(root, config.quarantine_in(root))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = watch(&dir, tx);
    let abort_after_commit =
        std::env::var(FAILPOINT_VAR).is_ok_and(|v| v == FAILPOINT_AFTER_COMMIT);
    if abort_after_commit {
        warn!(
            failpoint = FAILPOINT_AFTER_COMMIT,
            "Test failpoint set: the daemon aborts after its first committed mail."
        );
    }
    info!(
        maildir = %root.display(),
        quarantine = %dir.quarantine.display(),
        watched = watcher.is_some(),
        "Mail intake started."
    );
    let mut reader = Reader {
        engine,
        dir,
        settle: config.settle.to_std(),
        max_message_bytes: config.max_message_bytes,
        max_attachment_bytes: config.max_attachment_bytes,
        abort_after_commit,
        stuck: HashMap::new(),
    };
    let every = config.rescan_every.to_std();
    Ok(Some(async move {
        // Owned by the task: dropping it ends the watch.
        let _watcher = watcher;
        loop {
            let again = reader.scan().await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = signal(&mut rx) => {}
                () = tokio::time::sleep(again.unwrap_or(every)) => {}
            }
        }
    }))
}

/// Waits for a file-system signal, lets the burst behind it gather and swallows it. Without
/// a watcher it never fires, and the periodic rescans carry on.
async fn signal(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    if rx.recv().await.is_none() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(COALESCE).await;
    while rx.try_recv().is_ok() {}
}

/// Whether an event in new/ may mean a message arrived: a file created or moved in, a write
/// finished, or events lost. Reads, including the reader's own, and moves out are not.
fn is_arrival(e: &notify::Event) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    e.need_rescan()
        || matches!(
            e.kind,
            EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Name(
                    RenameMode::To | RenameMode::Both | RenameMode::Any
                ))
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
        )
}

/// Watches new/; an arrival (or watch error, or overflow) is a signal to rescan. `None`
/// (logged) when the platform cannot watch: periodic rescans still find everything.
fn watch(
    dir: &Maildir,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.as_ref().map_or(true, is_arrival) {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "Cannot watch the Maildir; relying on periodic rescans.");
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir.new, notify::RecursiveMode::NonRecursive) {
        warn!(dir = %dir.new.display(), error = %e, "Cannot watch the Maildir; relying on periodic rescans.");
        return None;
    }
    Some(watcher)
}

/// A message read and parsed, ready for the engine.
struct Ready {
    message: Waiting,
    body: EventBody,
}

impl Reader {
    /// Takes everything settled in new/ except stuck messages not yet due for a retry.
    /// Returns how soon to look again when something was left for later (still settling,
    /// engine busy, a retry due), else `None`.
    async fn scan(&mut self) -> Option<Duration> {
        let dir = self.dir.clone();
        let listed = tokio::task::spawn_blocking(move || dir.listing()).await;
        let Listing { waiting, not_files } = match listed {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                error!(dir = %self.dir.new.display(), error = %e, "Cannot list the Maildir.");
                return None;
            }
            Err(e) => {
                error!(error = %e, "Maildir scan failed.");
                return None;
            }
        };
        let started = Instant::now();
        // Forget what is no longer there (taken by someone else, removed by hand).
        self.stuck.retain(|name, _| {
            let there =
                waiting.iter().any(|w| &w.name == name) || not_files.iter().any(|(n, _)| n == name);
            if !there {
                debug!(file = %crate::telemetry::Escaped(name), "Stuck mail gone from new/.");
            }
            there
        });
        for (name, what) in not_files {
            if self.due(&name, started) {
                let detail = format!("{what}, not a regular file");
                self.failed(
                    &name,
                    Failure {
                        reason: "not_a_file",
                        detail,
                        committed: false,
                    },
                );
            }
        }
        let now = SystemTime::now();
        let (settled, settling): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .filter(|w| self.due(&w.name, started))
            .partition(|w| w.settled(now, self.settle));
        let mut again = (!settling.is_empty()).then_some(SOON.max(self.settle / 4));
        // Committed already (the move to cur/ failed before): only move them.
        let (moves, settled): (Vec<_>, Vec<_>) = settled
            .into_iter()
            .partition(|w| self.stuck.get(&w.name).is_some_and(|s| s.committed));
        for message in moves {
            self.move_to_cur(&message, None).await;
        }
        for chunk in chunks(settled) {
            let ready = self.read(chunk).await;
            if ready.is_empty() {
                continue;
            }
            if let Err(wait) = self.submit(ready).await {
                again = Some(wait);
                break;
            }
        }
        let retry = self.stuck.values().map(|s| s.next).min();
        if let Some(next) = retry {
            let wait = next.saturating_duration_since(Instant::now()).max(SOON);
            again = Some(again.map_or(wait, |a| a.min(wait)));
        }
        again
    }

    /// True unless the message is stuck and its retry is not due yet.
    fn due(&self, name: &str, now: Instant) -> bool {
        self.stuck.get(name).is_none_or(|s| s.next <= now)
    }

    /// Records that a message could not be taken: the first time at error level (and in
    /// the metric), after that at debug, each time doubling the wait before the next try.
    fn failed(&mut self, name: &str, f: Failure) {
        let now = Instant::now();
        match self.stuck.get_mut(name) {
            Some(s) => {
                s.attempts += 1;
                s.delay = (s.delay * 2).min(RETRY_MAX);
                s.next = now + s.delay;
                s.committed |= f.committed;
                debug!(
                    file = %crate::telemetry::Escaped(name),
                    reason = f.reason,
                    error = %f.detail,
                    attempts = s.attempts,
                    retry_in = ?s.delay,
                    "Mail still stuck in new/."
                );
            }
            None => {
                self.engine
                    .metrics()
                    .mails_stuck
                    .get_or_create(&ReasonLabels {
                        reason: f.reason.into(),
                    })
                    .inc();
                error!(
                    file = %crate::telemetry::Escaped(name),
                    reason = f.reason,
                    error = %f.detail,
                    retry_in = ?RETRY_FIRST,
                    "Mail stuck in new/; retrying with backoff, other mail carries on."
                );
                self.stuck.insert(
                    name.to_string(),
                    Stuck {
                        reason: f.reason,
                        committed: f.committed,
                        attempts: 1,
                        delay: RETRY_FIRST,
                        next: now + RETRY_FIRST,
                    },
                );
            }
        }
    }

    /// Forgets a message that was stuck, now that it was handled.
    fn unstuck(&mut self, name: &str) {
        if let Some(s) = self.stuck.remove(name) {
            info!(
                file = %crate::telemetry::Escaped(name),
                reason = s.reason,
                attempts = s.attempts,
                "Stuck mail handled after retrying."
            );
        }
    }

    /// Reads and parses messages; those that cannot be taken go to quarantine.
    async fn read(&mut self, messages: Vec<Waiting>) -> Vec<Ready> {
        let dir = self.dir.clone();
        let (max, keep) = (self.max_message_bytes, self.max_attachment_bytes);
        let at = self.engine.now();
        let metrics = self.engine.metrics().clone();
        let read = tokio::task::spawn_blocking(move || {
            messages
                .into_iter()
                .map(|m| read_one(&metrics, &dir, m, max, keep, at))
                .collect::<Vec<_>>()
        })
        .await;
        let read = read.unwrap_or_else(|e| {
            error!(error = %e, "Reading the Maildir failed.");
            Vec::new()
        });
        let mut ready = Vec::with_capacity(read.len());
        for r in read {
            match r {
                Read::Ready(r) => ready.push(*r),
                Read::Done(name) => self.unstuck(&name),
                Read::Failed(name, f) => self.failed(&name, f),
            }
        }
        ready
    }

    /// Hands mails to the engine and moves each committed one to cur/. `Err(wait)`: nothing
    /// was taken (queue full, engine stopping, store trouble); look again after `wait`.
    async fn submit(&mut self, ready: Vec<Ready>) -> Result<(), Duration> {
        let (messages, bodies): (Vec<_>, Vec<_>) =
            ready.into_iter().map(|r| (r.message, r.body)).unzip();
        let receipts = match self.engine.submit_many(bodies).await {
            Ok(r) => r,
            Err(SubmitError::Busy) => {
                debug!("Engine busy; mail stays in new/ for the next scan.");
                return Err(SOON);
            }
            Err(e) => {
                warn!(error = %e, "Mail not committed; it stays in new/ for the next scan.");
                return Err(Duration::from_secs(1));
            }
        };
        for (message, receipt) in messages.iter().zip(receipts) {
            self.committed(message, &receipt).await;
        }
        Ok(())
    }

    async fn committed(&mut self, message: &Waiting, receipt: &Receipt) {
        let outcome = serde_json::to_value(receipt.outcome)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        self.engine
            .metrics()
            .mails_processed
            .get_or_create(&OutcomeLabels {
                outcome: outcome.clone(),
            })
            .inc();
        if self.abort_after_commit {
            error!(file = %crate::telemetry::Escaped(&message.name), "Failpoint mail-after-commit: aborting before the move to cur/.");
            std::process::abort();
        }
        self.move_to_cur(message, Some((receipt, &outcome))).await;
    }

    /// Moves a committed message to cur/; one that cannot be moved is stuck (and its move
    /// retried, or after a restart the engine recognises it).
    async fn move_to_cur(&mut self, message: &Waiting, receipt: Option<(&Receipt, &str)>) {
        let dir = self.dir.clone();
        let m = message.clone();
        let moved = tokio::task::spawn_blocking(move || dir.to_cur(&m)).await;
        match moved {
            Ok(Ok(_)) => {
                if let Some((receipt, outcome)) = receipt {
                    info!(
                        file = %crate::telemetry::Escaped(&message.name),
                        event = receipt.event_id,
                        ticket = %receipt.ticket.map(|t| t.to_string()).unwrap_or_default(),
                        outcome = %outcome,
                        "Mail taken."
                    );
                }
                self.unstuck(&message.name);
            }
            // Moved by someone else meanwhile: it is committed, nothing is lost.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                debug!(file = %crate::telemetry::Escaped(&message.name), "Mail already gone from new/.");
                self.stuck.remove(&message.name);
            }
            Ok(Err(e)) => self.failed(
                &message.name,
                Failure {
                    reason: "not_moved",
                    detail: format!(
                        "committed, but cannot move it to {}: {e}",
                        self.dir.cur.display()
                    ),
                    committed: true,
                },
            ),
            Err(e) => {
                error!(file = %crate::telemetry::Escaped(&message.name), error = %e, "Moving mail failed.")
            }
        }
    }
}

/// Splits messages into the groups read and submitted together: at most [`CHUNK`] messages
/// and [`CHUNK_BYTES`] bytes each, a larger message alone.
fn chunks(messages: Vec<Waiting>) -> Vec<Vec<Waiting>> {
    let mut out = Vec::new();
    let mut chunk: Vec<Waiting> = Vec::new();
    let mut bytes = 0u64;
    for m in messages {
        if !chunk.is_empty() && (chunk.len() == CHUNK || bytes.saturating_add(m.size) > CHUNK_BYTES)
        {
            out.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes = bytes.saturating_add(m.size);
        chunk.push(m);
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

/// Reads one message; quarantines it when it cannot be taken as a mail.
fn read_one(
    metrics: &Metrics,
    dir: &Maildir,
    m: Waiting,
    max: u64,
    keep: u64,
    at: jiff::Timestamp,
) -> Read {
    if m.size > max {
        let detail = format!("{} bytes; the limit is {max}", m.size);
        return quarantine(metrics, dir, m, "oversized", &detail, at);
    }
    let raw = match std::fs::read(&m.path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Done(m.name),
        Err(e) => {
            let failure = Failure {
                reason: "unreadable",
                detail: format!("cannot read {}: {e}", m.path.display()),
                committed: false,
            };
            return Read::Failed(m.name, failure);
        }
    };
    if raw.len() as u64 > max {
        let detail = format!("{} bytes; the limit is {max}", raw.len());
        return quarantine(metrics, dir, m, "oversized", &detail, at);
    }
    match parse::event(&raw, keep) {
        Ok(body) => Read::Ready(Box::new(Ready { message: m, body })),
        Err(e) => quarantine(metrics, dir, m, "unparseable", &e.to_string(), at),
    }
}

fn quarantine(
    metrics: &Metrics,
    dir: &Maildir,
    m: Waiting,
    reason: &str,
    detail: &str,
    at: jiff::Timestamp,
) -> Read {
    let text = format!(
        "reason: {reason}\ndetail: {detail}\nfile: new/{}\nsize: {}\nat: {at}\n",
        m.name, m.size
    );
    match dir.quarantine(&m, &text) {
        Ok(path) => {
            metrics
                .mails_quarantined
                .get_or_create(&ReasonLabels {
                    reason: reason.into(),
                })
                .inc();
            warn!(file = %crate::telemetry::Escaped(&m.name), reason, detail, to = %path.display(), "Mail quarantined.");
            Read::Done(m.name)
        }
        Err(e) => {
            let failure = Failure {
                reason: "not_quarantined",
                detail: format!("{reason} ({detail}), but cannot quarantine it: {e}"),
                committed: false,
            };
            Read::Failed(m.name, failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, Flag, ModifyKind, RenameMode};
    use notify::{Event, EventKind};

    use super::{CHUNK, CHUNK_BYTES, Waiting, chunks, is_arrival};

    fn waiting(sizes: &[u64]) -> Vec<Waiting> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Waiting {
                name: i.to_string(),
                path: i.to_string().into(),
                size,
                modified: std::time::SystemTime::UNIX_EPOCH,
            })
            .collect()
    }

    #[test]
    fn mail_is_read_in_chunks_bounded_by_count_and_bytes() {
        let sizes = |c: Vec<Vec<Waiting>>| -> Vec<usize> { c.iter().map(Vec::len).collect() };
        assert_eq!(sizes(chunks(waiting(&[100; 130]))), vec![CHUNK, CHUNK, 2]);
        let big = CHUNK_BYTES / 2 + 1;
        // Large ones go one or two at a time; one past the budget goes alone.
        assert_eq!(
            sizes(chunks(waiting(&[big, big, 10, CHUNK_BYTES * 3, 10]))),
            vec![1, 2, 1, 1]
        );
        assert!(chunks(Vec::new()).is_empty());
    }

    #[test]
    fn only_arrivals_wake_the_reader() {
        let yes = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ];
        for kind in yes {
            assert!(is_arrival(&Event::new(kind)), "{kind:?}");
        }
        let no = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Remove(notify::event::RemoveKind::File),
        ];
        for kind in no {
            assert!(!is_arrival(&Event::new(kind)), "{kind:?}");
        }
        assert!(is_arrival(
            &Event::new(EventKind::Other).set_flag(Flag::Rescan)
        ));
    }
}
