//! Mail intake from a Maildir: new/ is the queue. File-system events (notify) are only a
//! signal to rescan new/; it is also scanned at start and every `mail.rescan_every`. Each
//! settled message is read, parsed ([`parse`]) and handed to the engine; only once the engine
//! answered that the mail is committed does the file move to cur/ (`:2,S`). A message that
//! cannot be read as a mail, or is too large, goes to quarantine with a `.reason` file. A
//! crash at any point leaves the message in new/ and the engine recognises it by Message-ID
//! when it comes round again. This module must not write the store nor decide anything
//! about tickets.

mod folder;
pub mod parse;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use folder::Waiting;
pub use folder::{FolderError, Maildir};

use crate::config::MailConfig;
use crate::engine::{EngineHandle, Receipt, SubmitError};
use crate::metrics::{Metrics, OutcomeLabels, ReasonLabels};
use crate::model::EventBody;

/// Mails handed to the engine at once: they usually share one commit.
const CHUNK: usize = 64;

/// How soon to look again when messages were still settling or the engine was busy.
const SOON: Duration = Duration::from_millis(250);

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
    /// The engine's registry.
    metrics: Arc<Metrics>,
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
    let reader = Reader {
        metrics: engine.metrics().clone(),
        engine,
        dir,
        settle: config.settle.to_std(),
        max_message_bytes: config.max_message_bytes,
        max_attachment_bytes: config.max_attachment_bytes,
        abort_after_commit,
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

/// Waits for a file-system signal and swallows the burst behind it. Without a watcher it
/// never fires, and the periodic rescans carry on.
async fn signal(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    if rx.recv().await.is_none() {
        std::future::pending::<()>().await;
    }
    while rx.try_recv().is_ok() {}
}

/// Watches new/; every event (or watch error, or overflow) is a signal to rescan. `None`
/// (logged) when the platform cannot watch: periodic rescans still find everything.
fn watch(
    dir: &Maildir,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = tx.send(());
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
    /// Takes everything settled in new/. Returns how soon to look again when something was
    /// left for later (still settling, engine busy), else `None`.
    async fn scan(&self) -> Option<Duration> {
        let dir = self.dir.clone();
        let listed = tokio::task::spawn_blocking(move || dir.waiting()).await;
        let waiting = match listed {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                error!(dir = %self.dir.new.display(), error = %e, "Cannot list the Maildir.");
                return None;
            }
            Err(e) => {
                error!(error = %e, "Maildir scan failed.");
                return None;
            }
        };
        let now = SystemTime::now();
        let (settled, settling): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|w| w.settled(now, self.settle));
        let mut again = (!settling.is_empty()).then_some(SOON.max(self.settle / 4));
        for chunk in settled.chunks(CHUNK) {
            let ready = self.read(chunk.to_vec()).await;
            if ready.is_empty() {
                continue;
            }
            if let Err(wait) = self.submit(ready).await {
                again = Some(wait);
                break;
            }
        }
        again
    }

    /// Reads and parses messages; those that cannot be taken go to quarantine.
    async fn read(&self, messages: Vec<Waiting>) -> Vec<Ready> {
        let dir = self.dir.clone();
        let (max, keep) = (self.max_message_bytes, self.max_attachment_bytes);
        let at = self.engine.now();
        let metrics = self.metrics.clone();
        let read = tokio::task::spawn_blocking(move || {
            messages
                .into_iter()
                .filter_map(|m| read_one(&metrics, &dir, m, max, keep, at))
                .collect::<Vec<_>>()
        })
        .await;
        read.unwrap_or_else(|e| {
            error!(error = %e, "Reading the Maildir failed.");
            Vec::new()
        })
    }

    /// Hands mails to the engine and moves each committed one to cur/. `Err(wait)`: nothing
    /// was taken (queue full, engine stopping, store trouble); look again after `wait`.
    async fn submit(&self, ready: Vec<Ready>) -> Result<(), Duration> {
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

    async fn committed(&self, message: &Waiting, receipt: &Receipt) {
        let outcome = serde_json::to_value(receipt.outcome)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        self.metrics
            .mails_processed
            .get_or_create(&OutcomeLabels {
                outcome: outcome.clone(),
            })
            .inc();
        if self.abort_after_commit {
            error!(file = %message.name, "Failpoint mail-after-commit: aborting before the move to cur/.");
            std::process::abort();
        }
        let dir = self.dir.clone();
        let m = message.clone();
        let moved = tokio::task::spawn_blocking(move || dir.to_cur(&m)).await;
        match moved {
            Ok(Ok(_)) => info!(
                file = %message.name,
                event = receipt.event_id,
                ticket = ?receipt.ticket.map(|t| t.to_string()),
                outcome = %outcome,
                "Mail taken."
            ),
            // Moved by someone else meanwhile: it is committed, nothing is lost.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                debug!(file = %message.name, "Mail already gone from new/.");
            }
            Ok(Err(e)) => error!(
                file = %message.name,
                error = %e,
                "Mail committed but not moved to cur/; the next scan recognises it."
            ),
            Err(e) => error!(file = %message.name, error = %e, "Moving mail failed."),
        }
    }
}

/// Reads one message; `None` when it went to quarantine or could not be read now.
fn read_one(
    metrics: &Metrics,
    dir: &Maildir,
    m: Waiting,
    max: u64,
    keep: u64,
    at: jiff::Timestamp,
) -> Option<Ready> {
    if m.size > max {
        quarantine(
            metrics,
            dir,
            &m,
            "oversized",
            &format!("{} bytes; the limit is {max}", m.size),
            at,
        );
        return None;
    }
    let raw = match std::fs::read(&m.path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            error!(file = %m.path.display(), error = %e, "Cannot read mail; trying again later.");
            return None;
        }
    };
    if raw.len() as u64 > max {
        let detail = format!("{} bytes; the limit is {max}", raw.len());
        quarantine(metrics, dir, &m, "oversized", &detail, at);
        return None;
    }
    match parse::event(&raw, keep) {
        Ok(body) => Some(Ready { message: m, body }),
        Err(e) => {
            quarantine(metrics, dir, &m, "unparseable", &e.to_string(), at);
            None
        }
    }
}

fn quarantine(
    metrics: &Metrics,
    dir: &Maildir,
    m: &Waiting,
    reason: &str,
    detail: &str,
    at: jiff::Timestamp,
) {
    let text = format!(
        "reason: {reason}\ndetail: {detail}\nfile: new/{}\nsize: {}\nat: {at}\n",
        m.name, m.size
    );
    match dir.quarantine(m, &text) {
        Ok(path) => {
            metrics
                .mails_quarantined
                .get_or_create(&ReasonLabels {
                    reason: reason.into(),
                })
                .inc();
            warn!(file = %m.name, reason, detail, to = %path.display(), "Mail quarantined.");
        }
        Err(e) => error!(
            file = %m.name,
            reason,
            error = %e,
            "Cannot quarantine mail; it stays in new/."
        ),
    }
}
