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

#[cfg(test)]
mod tests {
    //! The wall clock steps back an hour in the middle of a P1's clocks: through the
    //! daemon's clock (`clock::Steady`), every stage still fires, each exactly once, and
    //! the ticket keeps a timer row until its last stage.

    use std::sync::Arc;

    use jiff::{SignedDuration, Timestamp};
    use serde_json::json;

    use crate::clock::{Clock, ManualClock, Steady};
    use crate::event::EventBody;
    use crate::store::layout::sla_timers;
    use crate::store::{MemoryStore, Store, layout};
    use crate::tickets::Command;

    const CONFIG: &str = r#"
[[sla.policies]]
name = "p1"
kinds = ["incident"]
priorities = [1]
response = "15m"
resolution = "1h"
warnings = [50]

[groups.triage]
[groups.operations]
members = ["olga"]
"#;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_backwards_clock_step_neither_loses_nor_repeats_an_sla_timer() {
        let config = crate::config::parse(CONFIG, "test").unwrap();
        let rules = crate::engine::test_support::rules(&config, &[]);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let wall = Arc::new(ManualClock::new(ts("2026-01-09T10:00:00Z")));
        let mono = Arc::new(ManualClock::new(ts("2000-01-01T00:00:00Z")));
        let clock = Arc::new(Steady::new(wall.clone(), mono.clone()));
        let (engine, _thread) = crate::engine::start(
            &config,
            store.clone(),
            rules,
            clock.clone(),
            Default::default(),
            tracing::Span::none(),
        )
        .unwrap();
        let create: Command = serde_json::from_value(json!({
            "by": {"type": "user", "name": "olga"},
            "action": {"type": "create", "kind": "incident", "title": "db down",
                       "group": "operations", "priority": 1},
        }))
        .unwrap();
        let id = engine
            .submit(EventBody::Command(create))
            .await
            .unwrap()
            .ticket
            .unwrap();
        // What the clock task does at each tick: hand over what is due by the engine's clock.
        let tick = |minutes: i64, wall_step: i64| {
            wall.advance(SignedDuration::from_mins(minutes + wall_step));
            mono.advance(SignedDuration::from_mins(minutes));
            sla_timers::due(&*store, engine.now(), 1000).unwrap()
        };
        let mut rows_seen = Vec::new();
        for (minutes, wall_step) in [(5, 0), (5, -60), (5, 0), (10, 0), (20, 0), (20, 0), (30, 0)] {
            let due = tick(minutes, wall_step);
            rows_seen.push(sla_timers::count(&*store).unwrap());
            // Each handed over twice (as after a restart before the batch was seen): the
            // second finds its row gone and does nothing.
            for timer in due {
                engine
                    .submit(EventBody::Clock(timer.clone()))
                    .await
                    .unwrap();
                engine.submit(EventBody::Clock(timer)).await.unwrap();
            }
        }
        let stages: Vec<(String, String)> = layout::history(&*store, id)
            .unwrap()
            .iter()
            .flat_map(|e| e.changes.iter())
            .filter(|c| c.field == "sla_stage")
            .map(|c| {
                (
                    c.new["clock"].as_str().unwrap().to_string(),
                    c.new["stage"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want = [
            ("response", "warning"),
            ("response", "breach"),
            ("resolution", "warning"),
            ("resolution", "breach"),
        ];
        assert_eq!(
            stages,
            want.iter()
                .map(|(c, s)| (c.to_string(), s.to_string()))
                .collect::<Vec<_>>(),
            "rows seen per tick: {rows_seen:?}"
        );
        // The step back did not leave the ticket without a timer while stages remained.
        assert!(rows_seen[..5].iter().all(|n| *n == 1), "{rows_seen:?}");
        assert_eq!(sla_timers::count(&*store).unwrap(), 0);
        // The engine's time never went back: 95 minutes of steady time have passed.
        assert_eq!(clock.now(), ts("2026-01-09T11:35:00Z"));
    }
}
