//! Checkpoints of the embedded store while the daemon runs: when they are due
//! ([`CheckpointPolicy`], from `[store]`), and the task that takes them.
//!
//! sled 0.34.7 writes its recovery snapshot only while it opens, so without checkpoints a
//! start replays everything written since the previous start (2.3 s after 1,000,000 alerts,
//! docs/performance.md). The task closes and reopens the store ([`super::SledStore`]) once
//! `checkpoint_mb` were written and it has been quiet for a second per `checkpoint_mb` it
//! would replay (at most 30 s), or under sustained writes once `checkpoint_busy_mb` were;
//! store calls wait while it reopens. Between checks it sleeps, five seconds while nothing
//! is near due. The daemon runs it on the embedded store only.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::store::Store;

/// When the embedded store reopens itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Reopen once this many bytes were written since the last open and no batch was applied
    /// for `quiet` per this many bytes (0: never).
    pub quiet_bytes: u64,
    pub quiet: Duration,
    /// Reopen once this many bytes were written since the last open, busy or not (0: never).
    pub busy_bytes: u64,
}

impl CheckpointPolicy {
    pub fn from_config(config: &StoreConfig) -> CheckpointPolicy {
        CheckpointPolicy {
            quiet_bytes: config.checkpoint_mb.saturating_mul(1 << 20),
            quiet: QUIET,
            busy_bytes: config.checkpoint_busy_mb.saturating_mul(1 << 20),
        }
    }

    /// Whether a checkpoint is due with `since` bytes written since the last open and no
    /// batch applied for `quiet_for`: `Some(busy)` when it is (`busy` when only the busy
    /// threshold says so). The quiet a checkpoint waits for grows with what it would replay,
    /// up to [`MAX_QUIET`]: the reopen stalls calls about that long, so after a storm it waits
    /// until the storm is surely over rather than stall the next burst.
    pub fn due(&self, since: u64, quiet_for: Duration) -> Option<bool> {
        let busy = self.busy_bytes > 0 && since >= self.busy_bytes;
        let quiet = self.quiet_bytes > 0 && since >= self.quiet_bytes && {
            let multiple = u32::try_from(since / self.quiet_bytes).unwrap_or(u32::MAX);
            quiet_for >= self.quiet.saturating_mul(multiple).min(MAX_QUIET)
        };
        (busy || quiet).then_some(busy && !quiet)
    }

    /// The fewest bytes since the last open at which a checkpoint can be due (0: never).
    fn threshold(&self) -> u64 {
        [self.quiet_bytes, self.busy_bytes]
            .into_iter()
            .filter(|b| *b > 0)
            .min()
            .unwrap_or(0)
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpointed {
    /// Bytes written since the previous open, which the reopen replayed.
    pub replayed_bytes: u64,
    /// How long store calls waited: the close and the reopen.
    pub paused: Duration,
    /// Whether the busy threshold took it (writes went on) rather than a quiet moment.
    pub busy: bool,
}

/// How long the store must have taken no batch for a quiet checkpoint, per `checkpoint_mb`
/// it would replay, and at most.
const QUIET: Duration = Duration::from_secs(1);
const MAX_QUIET: Duration = Duration::from_secs(30);
/// How often the task looks once a checkpoint is near due, and otherwise.
const NEAR: Duration = Duration::from_secs(1);
const FAR: Duration = Duration::from_secs(5);

/// The checkpoint task; it ends when `shutdown` is cancelled. Does nothing on a store that
/// does not replay a log on open (PostgreSQL, memory).
pub async fn run(
    store: Arc<dyn Store>,
    policy: CheckpointPolicy,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let threshold = policy.threshold();
    if threshold == 0 {
        return;
    }
    loop {
        let near = store.log_bytes() >= threshold / 2;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(if near { NEAR } else { FAR }) => {}
        }
        if store.log_bytes() < threshold {
            continue;
        }
        let s = store.clone();
        let taken = tokio::task::spawn_blocking(move || s.checkpoint(&policy)).await;
        match taken {
            Ok(Ok(Some(done))) => {
                metrics.store_checkpoints.inc();
                metrics
                    .store_checkpoint_seconds
                    .inc_by(done.paused.as_secs_f64());
                info!(
                    replayed_mib = done.replayed_bytes >> 20,
                    paused_ms = done.paused.as_millis() as u64,
                    busy = done.busy,
                    "Store checkpointed: a start now replays only what comes after."
                );
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => error!(error = %e, "Store checkpoint failed; retrying in a second."),
            Err(e) => error!(error = %e, "Store checkpoint task panicked."),
        }
    }
}

#[cfg(test)]
mod tests;
