//! Housekeeping: resolved incidents and fulfilled requests close themselves after the
//! configured time (`[lifecycle]`). A small task looks, read-only, for due tickets every
//! `sweep_every`; only when it finds some does it submit an auto-close command, so closing
//! happens in the engine, in order with everything else, and the journal does not fill up
//! with empty sweeps. The engine checks again on its own view before closing anything.

use std::sync::Arc;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::alerts::step::Handled;
use crate::config::duration::Friendly;
use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::engine::{EngineHandle, SubmitError};
use crate::event::EventBody;
use crate::store::layout::Outcome;
use crate::store::{Store, StoreError, layout};
use crate::tickets::commands::{Done, flow_of};
use crate::tickets::transitions::{Entry, enter};
use crate::tickets::{
    Action, Actor, Command, Kind, LifecycleConfig, State, Ticket, TicketId, lifecycle,
};

/// The state a kind closes itself from, and after how long.
fn closes_from(kind: Kind, lc: &LifecycleConfig) -> Option<(State, Friendly)> {
    match kind {
        Kind::Incident => Some((State::Resolved, lc.incident_close_after)),
        Kind::Request => Some((State::Fulfilled, lc.request_close_after)),
        Kind::Problem | Kind::Change => None,
    }
}

/// Whether `t` has waited long enough in its resolved/fulfilled state to close.
pub(crate) fn due(t: &Ticket, lc: &LifecycleConfig, now: Timestamp) -> bool {
    let Some((state, after)) = closes_from(t.kind(), lc) else {
        return false;
    };
    let since = t.process.state_since.unwrap_or(t.updated_at);
    t.state == state && now.duration_since(since) >= after.0
}

/// Tickets due to close, as the store has them.
fn due_ids(
    store: &dyn Store,
    lc: &LifecycleConfig,
    now: Timestamp,
) -> Result<Vec<TicketId>, StoreError> {
    let mut out = Vec::new();
    for state in [State::Resolved, State::Fulfilled] {
        for id in layout::ticket_ids_in_state(store, state)? {
            if let Some(t) = layout::get_ticket(store, id)?
                && due(&t, lc, now)
            {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The sweep task; it ends when `shutdown` is cancelled (dropping its engine handle, so the
/// engine can drain and stop). It reads `[lifecycle]` from the engine on every sweep, and
/// sweeps at once after a reload (a shorter `sweep_every` starts counting from there).
pub async fn run(engine: EngineHandle, store: Arc<dyn Store>, shutdown: CancellationToken) {
    let mut reloaded = engine.settings_changed();
    let mut every = engine.lifecycle().sweep_every;
    let mut tick = tokio::time::interval(every.to_std());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            Ok(()) = reloaded.changed() => {}
        }
        let lc = engine.lifecycle();
        if lc.sweep_every != every {
            every = lc.sweep_every;
            let period = every.to_std();
            tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            info!(sweep_every = %every, "Auto-close sweep interval changed.");
        }
        let (swept, now) = (lc.clone(), engine.clock.now());
        let due = match crate::store::read(&store, move |s| due_ids(s, &swept, now)).await {
            Ok(ids) => ids.len(),
            Err(e) => {
                warn!(error = %e, "Auto-close sweep could not read the store; trying next time.");
                continue;
            }
        };
        if due == 0 {
            continue;
        }
        let sweep = Command {
            by: Actor::system("housekeeping"),
            action: Action::AutoClose,
        };
        match engine.submit(EventBody::Command(sweep)).await {
            Ok(_) => {}
            Err(SubmitError::Stopped) => break,
            Err(e) => {
                warn!(due, error = %e, "Auto-close sweep not accepted; trying next time.")
            }
        }
    }
}

impl Engine {
    /// Closes every ticket that is due, each with its own history entry.
    pub(crate) fn auto_close(&self, txn: &mut Txn<'_>, ctx: &Changes<'_>) -> Done {
        let lc = &self.settings.lifecycle;
        let by = Actor::system("housekeeping");
        let mut closed = 0;
        for id in due_ids(&*self.store, lc, ctx.at)? {
            // This batch may have moved it already; judge the batch's own view.
            let Some(t) = txn.ticket(id)? else { continue };
            if !due(&t, lc, ctx.at)
                || lifecycle::check_in(flow_of(&t), t.state, State::Closed).is_err()
            {
                continue;
            }
            let waited = closes_from(t.kind(), lc).map(|(_, d)| d.to_string());
            let reason = format!(
                "closed automatically after {} {}",
                waited.unwrap_or_default(),
                t.state
            );
            let mut after = t.clone();
            enter(&mut after, State::Closed, ctx.at, Entry::default());
            self.commit(txn, ctx, &by, Some(&t), after, reason);
            info!(ticket = %id, "Ticket closed automatically.");
            closed += 1;
        }
        Ok(Handled {
            ticket: None,
            outcome: if closed > 0 {
                Outcome::Updated
            } else {
                Outcome::Recorded
            },
            rule_failures: Vec::new(),
        })
    }
}
