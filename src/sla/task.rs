//! The clock task: sleeps until the earliest stored SLA timer falls due, then hands every
//! due timer to the engine as a `Clock` event, in due order. Timers that fell due while the
//! daemon was down are due at once when it starts. The engine deletes each row in the batch
//! that handles it, so a timer fires once; this task only reads.
//!
//! Woken early when the engine commits new timers (an earlier one may have appeared). It must
//! not write to the store or judge whether a timer still matters: the engine re-checks.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::engine::EngineHandle;
use crate::engine::SubmitError;
use crate::event::EventBody;
use crate::store::layout::sla_timers;
use crate::store::{self, Store};

/// Longest the task sleeps without looking again (a safety net; wake-ups do the work).
const MAX_SLEEP: Duration = Duration::from_secs(3_600);
/// How long to wait before retrying after the store or the engine said no.
const RETRY: Duration = Duration::from_secs(1);
/// Most timers handed over in one submission.
const MAX_FIRE: usize = 256;

/// Runs until `shutdown` is cancelled or the engine stops.
pub async fn run(engine: EngineHandle, store: Arc<dyn Store>, shutdown: CancellationToken) {
    let wake = engine.timers_changed();
    let limit = MAX_FIRE.min(engine.capacity()).max(1);
    loop {
        let pause = match next_step(&engine, &store, limit).await {
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
    debug!("Clock task stopped.");
}

enum Step {
    /// Some timers were handed over: look again at once.
    Fired,
    /// The engine is gone.
    Stopped,
    /// Nothing due: sleep this long (or until woken).
    Sleep(Duration),
}

async fn next_step(engine: &EngineHandle, store: &Arc<dyn Store>, limit: usize) -> Step {
    let now = engine.now();
    let due = match store::read(store, move |s| sla_timers::due(s, now, limit)).await {
        Ok(due) => due,
        Err(e) => {
            warn!(error = %e, "Clock task cannot read the SLA timers; retrying.");
            return Step::Sleep(RETRY);
        }
    };
    if !due.is_empty() {
        let n = due.len();
        let events = due.into_iter().map(EventBody::Clock).collect();
        return match engine.submit_many(events).await {
            Ok(_) => {
                debug!(timers = n, "Due SLA timers handed to the engine.");
                Step::Fired
            }
            Err(SubmitError::Stopped) => Step::Stopped,
            Err(e) => {
                warn!(timers = n, error = %e, "Due SLA timers not accepted; retrying.");
                Step::Sleep(RETRY)
            }
        };
    }
    match store::read(store, sla_timers::earliest).await {
        Ok(Some(t)) => {
            let wait = t.due.duration_since(engine.now());
            Step::Sleep(Duration::try_from(wait).unwrap_or_default().min(MAX_SLEEP))
        }
        Ok(None) => Step::Sleep(MAX_SLEEP),
        Err(e) => {
            warn!(error = %e, "Clock task cannot read the SLA timers; retrying.");
            Step::Sleep(RETRY)
        }
    }
}
