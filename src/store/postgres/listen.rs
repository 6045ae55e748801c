//! Wake-ups without polling: a connection of its own that LISTENs on one channel. The
//! leader listens on the inbox channel, which intake NOTIFYs in the statement that stores
//! events, so an idle leader sends no queries; intake listens on the answers channel, which
//! the leader's commit NOTIFYs with the batch's highest inbox id, so intake looks for answers
//! only when some were written. A lost connection is re-made with backoff, and each
//! (re)connection counts as a wake-up about anything, since notifications sent meanwhile are
//! lost; callers keep a long fallback poll too.

use std::sync::mpsc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use crate::store::postgres::connect;
use crate::store::postgres::shared::INBOX_CHANNEL;

pub(super) struct Listener {
    woken: mpsc::Receiver<()>,
}

impl Listener {
    /// Starts the inbox's listening thread on its own connection to `url`.
    pub(super) fn start(url: String) -> Listener {
        let (wake, woken) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("itsmd-pg-listen".into())
            .spawn(move || listen(&url, INBOX_CHANNEL, |_| wake.send(()).is_ok()));
        if let Err(e) = spawned {
            // The caller's fallback poll still finds the inbox's rows.
            tracing::error!(error = %e, "Inbox listener could not start; the leader polls the inbox instead.");
        }
        Listener { woken }
    }

    /// Waits up to `timeout` for a notification; true if one came (every one that came is
    /// taken, so one query answers them all).
    pub(super) fn wait(&mut self, timeout: Duration) -> bool {
        let woken = self.woken.recv_timeout(timeout).is_ok();
        while self.woken.try_recv().is_ok() {}
        woken
    }
}

/// Starts a thread listening on `channel` that calls `note` with each notification's
/// payload, or `None` on each (re)connection; it stops when `note` returns false.
pub(super) fn spawn(
    url: String,
    channel: &'static str,
    note: impl FnMut(Option<&str>) -> bool + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("itsmd-pg-listen".into())
        .spawn(move || listen(&url, channel, note))
        .map(|_| ())
}

/// Listens on `channel` until `note` says to stop.
fn listen(url: &str, channel: &str, mut note: impl FnMut(Option<&str>) -> bool) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut client = match connect::connect(url) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(channel, error = %e, retry_secs = backoff.as_secs(), "Listener cannot connect; retrying.");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")) {
            tracing::warn!(channel, error = %e, "Listener cannot LISTEN; retrying.");
            std::thread::sleep(backoff);
            continue;
        }
        backoff = Duration::from_secs(1);
        // Whatever was notified while not listening.
        if !note(None) {
            return;
        }
        let mut notes = client.notifications();
        let mut iter = notes.blocking_iter();
        loop {
            match iter.next() {
                Ok(Some(n)) => {
                    if !note(Some(n.payload())) {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::warn!(channel, "Listener's connection closed; reconnecting.");
                    break;
                }
                Err(e) => {
                    tracing::warn!(channel, error = %e, "Listener lost its connection; reconnecting.");
                    break;
                }
            }
        }
    }
}
