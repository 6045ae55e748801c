//! The batch in flight on a store whose apply is the durable commit (PostgreSQL): the flush
//! thread applies batch N on the server while the engine processes batch N+1, reading
//! through N's writes ([`Overlay`]). Before N+1 is handed over, the engine hears how N
//! went: N+1 was worked out on top of N, so when N failed, N+1 fails too (its senders are
//! told to retry) and the engine forgets what it remembered of both.
//!
//! Owns that hand-over's bookkeeping: the overlay, the channel the flush thread reports each
//! apply on, and whether a batch is in flight.

use std::sync::Arc;
use std::sync::mpsc;

use crate::store::{Overlay, Store, StoreError, WriteBatch};

/// How an apply went, as the flush thread reports it.
pub(crate) type Committed = Result<(), String>;

pub(crate) struct Pipeline {
    /// What the engine reads through: the store, and the batch being committed over it.
    pub overlay: Arc<Overlay>,
    /// For the flush thread: where it reports each apply it ran for the engine. Taken by
    /// it ([`Pipeline::reporter`]): the engine holds no sender, so a flush thread that dies
    /// ends the channel instead of leaving the engine waiting on it.
    report: Option<mpsc::Sender<Committed>>,
    reports: mpsc::Receiver<Committed>,
    /// A batch was handed over whose report is not read yet.
    in_flight: bool,
}

impl Pipeline {
    pub fn new(store: Arc<dyn Store>) -> Pipeline {
        let (report, reports) = mpsc::channel();
        Pipeline {
            overlay: Arc::new(Overlay::new(store)),
            report: Some(report),
            reports,
            in_flight: false,
        }
    }

    /// The sending side of the reports, for the flush thread (once).
    pub fn reporter(&mut self) -> Option<mpsc::Sender<Committed>> {
        self.report.take()
    }

    /// The batch handed over was committed here, on the engine's thread (there is no flush
    /// thread): nothing is in flight any more.
    pub fn landed(&mut self, committed: bool) {
        self.in_flight = false;
        if !committed {
            self.overlay.clear();
        }
    }

    /// Waits for the batch in flight (if any) to be applied; an error if it was not, so
    /// that the batch worked out on top of it fails too.
    pub fn settle(&mut self) -> Result<(), StoreError> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        let outcome = self.reports.recv().unwrap_or_else(|_| {
            Err("the flush thread stopped before it applied the batch".to_string())
        });
        outcome.map_err(|e| {
            self.overlay.clear();
            StoreError::Io {
                op: "commit the batch before this one, which this one was worked out on",
                source: e.into(),
            }
        })
    }

    /// True when the batch in flight has failed by now: what the engine remembers of it is
    /// then wrong (the overlay is cleared here; the caller forgets its tickets). Does not
    /// wait: a batch still committing stays in flight.
    pub fn failed_meanwhile(&mut self) -> bool {
        if !self.in_flight {
            return false;
        }
        match self.reports.try_recv() {
            Ok(Ok(())) => {
                self.in_flight = false;
                false
            }
            Err(mpsc::TryRecvError::Empty) => false,
            Ok(Err(_)) | Err(mpsc::TryRecvError::Disconnected) => {
                self.in_flight = false;
                self.overlay.clear();
                true
            }
        }
    }

    /// `writes` are on their way to the store: the engine reads through them until the
    /// next batch is handed over.
    pub fn hand_over(&mut self, writes: &WriteBatch) {
        self.overlay.set(writes);
        self.in_flight = true;
    }

    /// Once the batch in flight (if any) is applied or failed, reads see the store alone:
    /// after a batch that failed before it was handed over, and before a leader idles or
    /// starts a term (another node may write in between).
    pub fn forget(&mut self) {
        // Its outcome was told to its own senders (or seen by the caller).
        let _ = self.settle();
        self.overlay.clear();
    }
}

#[cfg(test)]
mod tests;
