//! The retention sweep task: wakes every `[retention] sweep_every` (and after a reload),
//! finds read-only what is due, and hands it to the engine chunk by chunk as
//! [`EventBody::Retention`] events, waiting for each commit before the next; between wake-ups
//! it sleeps, so an idle daemon stays quiet.

use std::ops::Bound;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::{EngineHandle, SubmitError};
use crate::event::EventBody;
use crate::mail::step::SenderWindow;
use crate::retention::{RetentionConfig, Sweep, journal_start};
use crate::store::layout::StoredEvent;
use crate::store::{Store, StoreError, Tree, decode};

/// Which records a pass looks at, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Journal,
    Callbacks,
    Senders,
}

/// The sweep task; it ends when `shutdown` is cancelled.
pub async fn run(engine: EngineHandle, store: Arc<dyn Store>, shutdown: CancellationToken) {
    let mut reloaded = engine.settings_changed();
    let mut every = engine.retention().0.sweep_every;
    let mut tick = tokio::time::interval(every.to_std());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            Ok(()) = reloaded.changed() => {}
        }
        let (r, _) = engine.retention();
        if r.sweep_every != every {
            every = r.sweep_every;
            let period = every.to_std();
            tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            info!(sweep_every = %every, "Retention sweep interval changed.");
        }
        if !r.enabled {
            continue;
        }
        if let Err(Stop) = sweep_once(&engine, &store, &shutdown).await {
            break;
        }
    }
}

/// The engine is gone or shutting down.
pub struct Stop;

/// Sweeps until nothing is due: the journal chunk by chunk, then the callback-ids and mail
/// windows in key order. A read or submit failure ends this pass (the next wake-up retries).
pub async fn sweep_once(
    engine: &EngineHandle,
    store: &Arc<dyn Store>,
    shutdown: &CancellationToken,
) -> Result<(), Stop> {
    for phase in [Phase::Journal, Phase::Callbacks, Phase::Senders] {
        let mut after: Option<Vec<u8>> = None;
        loop {
            if shutdown.is_cancelled() {
                return Err(Stop);
            }
            let (r, window) = engine.retention();
            let now = engine.clock.now();
            let from = after.clone();
            let found =
                crate::store::read(store, move |s| due(s, phase, &r, window.0, now, from)).await;
            let (sweep, next) = match found {
                Ok(found) => found,
                Err(e) => {
                    warn!(error = %e, "Retention sweep could not read the store; trying next time.");
                    return Ok(());
                }
            };
            if !sweep.is_empty() {
                match engine.submit(EventBody::Retention(sweep)).await {
                    Ok(_) => {}
                    Err(SubmitError::Stopped) => return Err(Stop),
                    Err(e) => {
                        warn!(error = %e, "Retention sweep not accepted; trying next time.");
                        return Ok(());
                    }
                }
            }
            match next {
                Some(key) => after = Some(key),
                None => break,
            }
            // Let intake's requests be taken between chunks.
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// What is due in `phase` after the key `after`: the chunk to submit and, when the chunk was
/// full, the key to continue after.
fn due(
    store: &dyn Store,
    phase: Phase,
    r: &RetentionConfig,
    window: SignedDuration,
    now: Timestamp,
    after: Option<Vec<u8>>,
) -> Result<(Sweep, Option<Vec<u8>>), StoreError> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut sweep = Sweep::default();
    let mut last = None;
    let mut seen = 0;
    match phase {
        Phase::Journal => {
            let before = now.saturating_sub(r.journal.0).unwrap_or(Timestamp::MIN);
            for item in store
                .range(Tree::Events, start, Bound::Unbounded)
                .take(r.chunk)
            {
                let (key, bytes) = item?;
                let stored: StoredEvent = decode(Tree::Events, &bytes)?;
                if stored.event.received_at >= before {
                    return Ok((sweep, None));
                }
                sweep.journal_through = Some(stored.event.id);
                last = Some(key);
                seen += 1;
            }
        }
        Phase::Callbacks => {
            let Some(pruned) = journal_start(store)? else {
                return Ok((sweep, None));
            };
            for item in store
                .range(Tree::VendorCallbacks, start, Bound::Unbounded)
                .take(r.chunk)
            {
                let (key, bytes) = item?;
                let event: u64 = decode(Tree::VendorCallbacks, &bytes)?;
                if event <= pruned.pruned_through {
                    sweep.callbacks.push(key.clone());
                }
                last = Some(key);
                seen += 1;
            }
        }
        Phase::Senders => {
            for item in store
                .range(Tree::MailSenders, start, Bound::Unbounded)
                .take(r.chunk)
            {
                let (key, bytes) = item?;
                let w: SenderWindow = decode(Tree::MailSenders, &bytes)?;
                if w.ended(now, window)
                    && let Ok(sender) = String::from_utf8(key.clone())
                {
                    sweep.senders.push(sender);
                }
                last = Some(key);
                seen += 1;
            }
        }
    }
    Ok((sweep, if seen == r.chunk { last } else { None }))
}
