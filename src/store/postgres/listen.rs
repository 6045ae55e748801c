//! The leader's wake-up: a connection of its own that LISTENs on the inbox channel, which
//! intake NOTIFYs in the statement that stores events, so an idle leader sends no queries.
//! A lost connection is re-made with backoff, and each (re)connection counts as a wake-up,
//! since notifications sent meanwhile are lost; the caller keeps a long fallback poll too.

use std::sync::mpsc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use crate::store::postgres::connect;
use crate::store::postgres::shared::INBOX_CHANNEL;

pub(super) struct Listener {
    woken: mpsc::Receiver<()>,
}

impl Listener {
    /// Starts the listening thread on its own connection to `url`.
    pub(super) fn start(url: String) -> Listener {
        let (wake, woken) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("itsmd-pg-listen".into())
            .spawn(move || listen(&url, &wake));
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

/// Listens until the waiting side is gone.
fn listen(url: &str, wake: &mpsc::Sender<()>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut client = match connect::connect(url) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, retry_secs = backoff.as_secs(), "Inbox listener cannot connect; retrying.");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {INBOX_CHANNEL}")) {
            tracing::warn!(error = %e, "Inbox listener cannot LISTEN; retrying.");
            std::thread::sleep(backoff);
            continue;
        }
        backoff = Duration::from_secs(1);
        // Whatever was stored while not listening.
        if wake.send(()).is_err() {
            return;
        }
        let mut notes = client.notifications();
        let mut iter = notes.blocking_iter();
        loop {
            match iter.next() {
                Ok(Some(_)) => {
                    if wake.send(()).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::warn!("Inbox listener's connection closed; reconnecting.");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Inbox listener lost its connection; reconnecting.");
                    break;
                }
            }
        }
    }
}
