//! What the engine's test harnesses share: compiling rule files given as (name, text) pairs
//! under a configuration's limits, and starting an engine on a manual clock.

use std::sync::Arc;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::engine::EngineHandle;
use crate::rules::{Limits, Rules};
use crate::store::Store;

/// Compiles `files` under `config`'s rule limits; panics on a compile error (a test bug).
pub(crate) fn rules(config: &Config, files: &[(&str, &str)]) -> Rules {
    let sources = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    Rules::from_sources(Limits::from(&config.rules), sources).unwrap()
}

/// Starts an engine for a test on `store`, with its own metrics and no span, its clock at `at`
/// (RFC 3339); the engine runs until the handle and its clones are dropped.
pub(crate) fn engine(
    config: &Config,
    store: Arc<dyn Store>,
    rules: Rules,
    at: &str,
) -> (EngineHandle, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at.parse().unwrap()));
    let (engine, _thread) = crate::engine::start(
        config,
        store,
        rules,
        clock.clone(),
        Default::default(),
        tracing::Span::none(),
    )
    .unwrap();
    (engine, clock)
}

/// A door a test store's method waits at while it is closed (a held flush or commit).
#[derive(Default)]
pub(crate) struct Gate {
    /// Closed, how many waiters may pass while it is, and how many wait at it now.
    state: std::sync::Mutex<(bool, usize, usize)>,
    opened: std::sync::Condvar,
}

impl Gate {
    pub fn set_closed(&self, closed: bool) {
        self.state.lock().unwrap().0 = closed;
        self.opened.notify_all();
    }

    /// Lets one waiter (the one waiting now, or the next to come) through a closed gate.
    pub fn let_one_through(&self) {
        self.state.lock().unwrap().1 += 1;
        self.opened.notify_all();
    }

    /// How many callers wait at the closed gate now.
    pub fn waiting(&self) -> usize {
        self.state.lock().unwrap().2
    }

    /// Returns once the gate is open (or this waiter may pass).
    pub fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        let mut counted = false;
        loop {
            match *state {
                (false, _, _) => break,
                (true, passes, _) if passes > 0 => {
                    state.1 -= 1;
                    break;
                }
                _ => {
                    if !counted {
                        state.2 += 1;
                        counted = true;
                    }
                    state = self.opened.wait(state).unwrap();
                }
            }
        }
        if counted {
            state.2 -= 1;
        }
    }
}
