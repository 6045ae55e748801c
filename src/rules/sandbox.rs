//! The Rhai engine every rule runs in: only the standard packages, no imports, no eval,
//! `print` into tracing, and limits on operations, depth, sizes and wall-clock time.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine};

use crate::config::RulesConfig;

/// Sandbox limits, from `[rules]` in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_operations: u64,
    pub time_budget: Duration,
    pub max_call_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    /// Per-event caps: comments, transitions, notifications, opened tickets.
    pub caps: [u32; 4],
    /// Strikes (events with a cap hit or an exhausted budget) before a rule file is disabled.
    pub disable_after: u32,
}

impl From<&RulesConfig> for Limits {
    fn from(c: &RulesConfig) -> Limits {
        Limits {
            max_operations: c.max_operations,
            time_budget: Duration::from_millis(c.time_budget_ms),
            max_call_depth: c.max_call_depth,
            max_string_size: c.max_string_size,
            max_array_size: c.max_array_size,
            max_map_size: c.max_map_size,
            caps: [
                c.max_comments_per_event,
                c.max_transitions_per_event,
                c.max_notifications_per_event,
                c.max_opened_tickets_per_event,
            ],
            disable_after: c.disable_after,
        }
    }
}

/// Message the progress callback stops a script with when its time is up.
pub const TIME_BUDGET_EXCEEDED: &str = "time budget exceeded";

thread_local! {
    /// Deadline of the hook call running on this thread. Hooks run synchronously on the
    /// calling thread, so a thread-local is exact and needs no locking.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with the wall-clock budget armed for this thread.
pub fn with_budget<T>(budget: Duration, f: impl FnOnce() -> T) -> T {
    DEADLINE.with(|d| d.set(Some(Instant::now() + budget)));
    let out = f();
    DEADLINE.with(|d| d.set(None));
    out
}

pub fn engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_expr_depths(64, 64);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.set_max_modules(0);
    engine.disable_symbol("import");
    engine.disable_symbol("export");
    engine.disable_symbol("eval");
    engine.on_print(|s| tracing::info!(output = %s, "Rule printed."));
    engine.on_debug(|s, src, pos| {
        tracing::debug!(output = %s, rule = src.unwrap_or("?"), line = pos.line(), "Rule debug.")
    });
    engine.on_progress(|ops| {
        // Reading the clock costs more than an operation; look every 256 of them.
        if ops % 256 != 0 {
            return None;
        }
        let late = DEADLINE.with(|d| d.get().is_some_and(|deadline| Instant::now() >= deadline));
        late.then(|| Dynamic::from(TIME_BUDGET_EXCEEDED))
    });
    engine
}
