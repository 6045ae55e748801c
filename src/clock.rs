//! Time as a dependency: the daemon reads the wall clock through [`Steady`], tests drive a
//! [`ManualClock`].

use std::sync::Mutex;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// An instant a person typed (a flag, a query parameter, a form field, a rule's argument),
/// or why it is not one, naming it as `name` and showing what one looks like:
/// "`from`: \"yesterday\" is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z): …".
pub fn parse_instant(name: &str, value: &str) -> Result<Timestamp, String> {
    value.parse().map_err(|e| {
        format!("{name}: {value:?} is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z): {e}")
    })
}

/// An instant as people read it, to the second in UTC ("2026-12-06 21:41:53 UTC"): the
/// console, history reasons and values. Records and the API keep RFC 3339.
pub fn readable(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// A clock that never moves backwards: monotonic time since the process started, expressed
/// as the wall-clock instant it started at plus the time elapsed.
pub struct MonotonicClock {
    start: Timestamp,
    at: Instant,
}

impl MonotonicClock {
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            start: Timestamp::now(),
            at: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> MonotonicClock {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.at.elapsed()).unwrap_or(SignedDuration::MAX);
        self.start.saturating_add(elapsed).unwrap_or(self.start)
    }
}

/// The wall clock, made safe against steps backwards: the engine's time (SLA timelines,
/// due times, history) never goes back. After the wall clock steps back, time goes on from
/// where it was at the pace of `steady` (a monotonic clock) until the wall clock catches up;
/// a step forwards is followed at once (timers due in between fire then, none is lost).
pub struct Steady<W, M> {
    wall: W,
    steady: M,
    /// The last instant handed out, and `steady`'s reading then.
    last: Mutex<Option<(Timestamp, Timestamp)>>,
}

impl<W: Clock, M: Clock> Steady<W, M> {
    pub fn new(wall: W, steady: M) -> Steady<W, M> {
        Steady {
            wall,
            steady,
            last: Mutex::new(None),
        }
    }
}

impl<W: Clock, M: Clock> Clock for Steady<W, M> {
    fn now(&self) -> Timestamp {
        let (wall, steady) = (self.wall.now(), self.steady.now());
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = match *last {
            Some((was, steady_then)) => {
                let gone_on = was
                    .saturating_add(steady.duration_since(steady_then))
                    .unwrap_or(was)
                    .max(was);
                wall.max(gone_on)
            }
            None => wall,
        };
        *last = Some((now, steady));
        now
    }
}

/// A clock that only moves when told to.
pub struct ManualClock {
    /// The current instant; a mutex because tests advance it from other threads.
    now: Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock to `at` (backwards too).
    pub fn set(&self, at: Timestamp) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now.saturating_add(by).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn steady_follows_the_wall_clock_forwards_and_never_goes_back() {
        let wall = std::sync::Arc::new(ManualClock::new(ts("2026-01-09T10:00:00Z")));
        let mono = std::sync::Arc::new(ManualClock::new(ts("2000-01-01T00:00:00Z")));
        let clock = Steady::new(wall.clone(), mono.clone());
        assert_eq!(clock.now(), ts("2026-01-09T10:00:00Z"));
        // A step back of an hour while 10 minutes pass: time goes on from where it was.
        wall.advance(SignedDuration::from_hours(-1));
        mono.advance(SignedDuration::from_mins(10));
        assert_eq!(clock.now(), ts("2026-01-09T10:10:00Z"));
        wall.advance(SignedDuration::from_mins(10));
        mono.advance(SignedDuration::from_mins(10));
        assert_eq!(clock.now(), ts("2026-01-09T10:20:00Z"));
        // A step forwards is followed at once.
        wall.set(ts("2026-01-09T12:00:00Z"));
        mono.advance(SignedDuration::from_secs(1));
        assert_eq!(clock.now(), ts("2026-01-09T12:00:00Z"));
        wall.advance(SignedDuration::from_secs(5));
        mono.advance(SignedDuration::from_secs(5));
        assert_eq!(clock.now(), ts("2026-01-09T12:00:05Z"));
    }
}
