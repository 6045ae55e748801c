//! The timer task both durable timer trees share (SLA clocks, alert expiry): sleep until the
//! earliest stored row falls due, then hand every due row to the engine as an event, in due
//! order. Rows that fell due while the daemon was down are due at once when it starts. The
//! engine deletes (or re-arms) each row in the batch that handles it, so a row fires once;
//! this task only reads.
//!
//! Woken early when the engine commits new rows (an earlier one may have appeared). It must
//! not write to the store or judge whether a row still matters: the engine re-checks.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::engine::{EngineHandle, SubmitError};
use crate::event::EventBody;
use crate::store::{Store, StoreError};

/// Longest the task sleeps without looking again (a safety net; wake-ups do the work).
const MAX_SLEEP: Duration = Duration::from_secs(3_600);
/// How long to wait before retrying after the store or the engine said no.
const RETRY: Duration = Duration::from_secs(1);
/// Most rows handed over in one submission.
const MAX_FIRE: usize = 256;

/// One tree of durable timer rows, read-only.
pub(crate) trait TimerRows: Send + 'static {
    /// What the rows are, for logs ("sla_timers", "alert_expiry").
    const NAME: &'static str;
    /// Every row due at or before `now`, earliest first, at most `limit`, as events.
    fn due(store: &dyn Store, now: Timestamp, limit: usize) -> Result<Vec<EventBody>, StoreError>;
    /// When the earliest row falls due, if there is one.
    fn earliest(store: &dyn Store) -> Result<Option<Timestamp>, StoreError>;
}

/// Runs until `shutdown` is cancelled or the engine stops; `wake` is the engine's signal
/// that new rows of this tree were committed.
pub(crate) async fn run<R: TimerRows + 'static>(
    engine: EngineHandle,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let limit = MAX_FIRE.min(engine.capacity()).max(1);
    loop {
        let pause = match next_step::<R>(&engine, &store, limit).await {
            Step::Fired => continue,
            Step::Stopped => break,
            Step::Sleep(d) => d,
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
    debug!(timers = R::NAME, "Timer task stopped.");
}

enum Step {
    /// Some rows were handed over: look again at once.
    Fired,
    /// The engine is gone.
    Stopped,
    /// Nothing due: sleep this long (or until woken).
    Sleep(Duration),
}

async fn next_step<R: TimerRows + 'static>(
    engine: &EngineHandle,
    store: &Arc<dyn Store>,
    limit: usize,
) -> Step {
    // Reads run on a blocking thread, never on the runtime's workers.
    let now = engine.now();
    let due = match crate::store::read(store, move |s| R::due(s, now, limit)).await {
        Ok(due) => due,
        Err(e) => {
            warn!(timers = R::NAME, error = %e, "Timer task cannot read its timers; retrying.");
            return Step::Sleep(RETRY);
        }
    };
    if !due.is_empty() {
        let n = due.len();
        return match engine.submit_many(due).await {
            Ok(_) => {
                debug!(
                    timers = R::NAME,
                    due = n,
                    "Due timers handed to the engine."
                );
                Step::Fired
            }
            Err(SubmitError::Stopped) => Step::Stopped,
            Err(e) => {
                warn!(timers = R::NAME, due = n, error = %e, "Due timers not accepted; retrying.");
                Step::Sleep(RETRY)
            }
        };
    }
    match crate::store::read(store, R::earliest).await {
        Ok(Some(at)) => {
            let wait = at.duration_since(engine.now());
            Step::Sleep(Duration::try_from(wait).unwrap_or_default().min(MAX_SLEEP))
        }
        Ok(None) => Step::Sleep(MAX_SLEEP),
        Err(e) => {
            warn!(timers = R::NAME, error = %e, "Timer task cannot read its timers; retrying.");
            Step::Sleep(RETRY)
        }
    }
}
