//! The clock task: the shared timer task (`engine::timer_task`) over the SLA timers. Every
//! due timer goes to the engine as a `Clock` event; the engine deletes each row in the batch
//! that handles it, so a timer fires once. It must not write to the store or judge whether a
//! timer still matters: the engine re-checks.

use std::sync::Arc;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::engine::{EngineHandle, timer_task};
use crate::event::EventBody;
use crate::store::layout::sla_timers;
use crate::store::{Store, StoreError};

struct SlaTimers;

impl timer_task::TimerRows for SlaTimers {
    const NAME: &'static str = "sla_timers";

    fn due(store: &dyn Store, now: Timestamp, limit: usize) -> Result<Vec<EventBody>, StoreError> {
        Ok(sla_timers::due(store, now, limit)?
            .into_iter()
            .map(EventBody::Clock)
            .collect())
    }

    fn earliest(store: &dyn Store) -> Result<Option<Timestamp>, StoreError> {
        Ok(sla_timers::earliest(store)?.map(|t| t.due))
    }
}

/// Runs until `shutdown` is cancelled or the engine stops.
pub async fn run(engine: EngineHandle, store: Arc<dyn Store>, shutdown: CancellationToken) {
    let wake = engine.timers_changed();
    timer_task::run::<SlaTimers>(engine, store, wake, shutdown).await;
}
