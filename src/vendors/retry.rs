//! The retry schedule of webhook deliveries: after attempt n failed, how long to wait (or
//! whether the message is dead), with exponential backoff, jitter and Retry-After.
//!
//! Owns the schedule's arithmetic and the Retry-After parser. It must not sleep, read the
//! wall clock or draw randomness on its own: the caller passes `now` and a [`Random`], so the
//! dispatcher and tests get the same answers from the same inputs.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How randomness spreads the delays so that many failed deliveries do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Uniform in `0..=min(cap, base · 2^(n-1))` ("full jitter").
    Full,
    /// Uniform in `base..=min(cap, 3 · previous delay)` ("decorrelated jitter").
    Decorrelated,
}

/// A source of uniform random numbers; `fastrand::Rng` in the daemon, seeded or scripted in
/// tests.
pub trait Random {
    /// A number in `low..=high` (`low <= high`).
    fn between(&mut self, low: u64, high: u64) -> u64;
}

impl Random for fastrand::Rng {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.u64(low..=high)
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this delay.
    Retry(Duration),
    /// That was the last attempt: park the message as a dead letter.
    Dead,
}

/// When failed deliveries are tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySchedule {
    /// Attempts in all, the first included; after the last one fails the message is dead.
    pub max_attempts: u32,
    /// Delay scale in milliseconds: the first retry waits up to this long.
    pub base_ms: u64,
    /// Longest computed delay, in milliseconds, however many attempts failed.
    pub cap_ms: u64,
    /// Longest Retry-After honoured, in milliseconds, so one vendor's header cannot park a
    /// message for days.
    pub max_retry_after_ms: u64,
    /// How delays are spread.
    pub jitter: Jitter,
}

impl Default for RetrySchedule {
    /// 15 attempts over roughly half a day: 10 s doubling up to 2 h, full jitter, Retry-After
    /// honoured up to 6 h.
    fn default() -> RetrySchedule {
        RetrySchedule {
            max_attempts: 15,
            base_ms: 10_000,
            cap_ms: 2 * 3_600_000,
            max_retry_after_ms: 6 * 3_600_000,
            jitter: Jitter::Full,
        }
    }
}

impl RetrySchedule {
    /// Every problem with the values, each prefixed by `at` (the config key of the table).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_attempts == 0 {
            out.push(format!("{at}.max_attempts must be at least 1"));
        }
        if self.base_ms == 0 {
            out.push(format!("{at}.base_ms must be greater than 0"));
        }
        if self.cap_ms < self.base_ms {
            out.push(format!(
                "{at}.cap_ms ({}) must not be less than base_ms ({})",
                self.cap_ms, self.base_ms
            ));
        }
        out
    }

    /// What to do after attempt number `attempt` (1 for the first) failed. `previous` is the
    /// delay chosen before that attempt (decorrelated jitter grows from it; `None` at first),
    /// `retry_after` the receiver's Retry-After, if it sent one: it wins when it is longer.
    pub fn next(
        &self,
        attempt: u32,
        previous: Option<Duration>,
        retry_after: Option<Duration>,
        random: &mut impl Random,
    ) -> Next {
        if attempt >= self.max_attempts {
            return Next::Dead;
        }
        let base = self.base_ms;
        let cap = self.cap_ms.max(base);
        let ms = match self.jitter {
            Jitter::Full => {
                let doublings = attempt.saturating_sub(1).min(63);
                let ceiling = base.saturating_mul(1u64 << doublings).min(cap);
                random.between(0, ceiling)
            }
            Jitter::Decorrelated => {
                let prev = previous.map_or(base, |d| millis(d).max(base));
                let ceiling = prev.saturating_mul(3).min(cap);
                random.between(base.min(ceiling), ceiling)
            }
        };
        let asked = retry_after.map_or(0, |d| millis(d).min(self.max_retry_after_ms));
        Next::Retry(Duration::from_millis(ms.max(asked)))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why a Retry-After value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Retry-After {0:?} is neither seconds nor an HTTP date")]
pub struct RetryAfterError(String);

/// The wait a `Retry-After` header asks for: delay-seconds, or an HTTP date (any of the
/// three RFC 9110 formats) relative to `now`; a date in the past means no wait.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Result<Duration, RetryAfterError> {
    let value = value.trim();
    let bad = || RetryAfterError(value.chars().take(64).collect());
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly many seconds still mean "much later"; the schedule caps it anyway.
        return Ok(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(value).map_err(|_| bad())?;
    let when = Timestamp::try_from(when).map_err(|_| bad())?;
    let wait = when.duration_since(now);
    Ok(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Always the lowest or always the highest allowed value, to see the bounds exactly.
    struct Extreme {
        high: bool,
    }

    impl Random for Extreme {
        fn between(&mut self, low: u64, high: u64) -> u64 {
            assert!(low <= high, "{low} > {high}");
            if self.high { high } else { low }
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn schedule(jitter: Jitter) -> RetrySchedule {
        RetrySchedule {
            max_attempts: 10,
            base_ms: 1_000,
            cap_ms: 60_000,
            max_retry_after_ms: 600_000,
            jitter,
        }
    }

    /// The delays after attempts 1.. until dead, feeding each back as `previous`.
    fn delays(s: &RetrySchedule, random: &mut impl Random) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut previous = None;
        for attempt in 1.. {
            match s.next(attempt, previous, None, random) {
                Next::Retry(d) => {
                    out.push(d);
                    previous = Some(d);
                }
                Next::Dead => break,
            }
        }
        out
    }

    #[test]
    fn full_jitter_stays_under_a_doubling_capped_ceiling() {
        let s = schedule(Jitter::Full);
        let ceilings: Vec<Duration> = [1, 2, 4, 8, 16, 32, 60, 60, 60].map(secs).to_vec();
        assert_eq!(delays(&s, &mut Extreme { high: true }), ceilings);
        assert_eq!(
            delays(&s, &mut Extreme { high: false }),
            vec![Duration::ZERO; 9]
        );
        let mut rng = fastrand::Rng::with_seed(42);
        for _ in 0..50 {
            let got = delays(&s, &mut rng);
            assert_eq!(got.len(), 9);
            for (d, ceiling) in got.iter().zip(&ceilings) {
                assert!(d <= ceiling, "{d:?} > {ceiling:?}");
            }
        }
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_delay() {
        let s = schedule(Jitter::Decorrelated);
        assert_eq!(
            delays(&s, &mut Extreme { high: true }),
            [3, 9, 27, 60, 60, 60, 60, 60, 60].map(secs).to_vec()
        );
        assert_eq!(delays(&s, &mut Extreme { high: false }), vec![secs(1); 9]);
        let mut rng = fastrand::Rng::with_seed(42);
        for _ in 0..50 {
            let mut previous = secs(1);
            for d in delays(&s, &mut rng) {
                assert!(
                    d >= secs(1) && d <= (previous * 3).min(secs(60)),
                    "{d:?} after {previous:?}"
                );
                previous = d;
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let s = schedule(Jitter::Full);
        let a = delays(&s, &mut fastrand::Rng::with_seed(9));
        let b = delays(&s, &mut fastrand::Rng::with_seed(9));
        assert_eq!(a, b);
    }

    #[test]
    fn retry_after_wins_when_longer_up_to_its_limit() {
        let s = schedule(Jitter::Full);
        let high = &mut Extreme { high: true };
        // Attempt 3: computed ceiling 4 s.
        assert_eq!(s.next(3, None, Some(secs(30)), high), Next::Retry(secs(30)));
        assert_eq!(s.next(3, None, Some(secs(2)), high), Next::Retry(secs(4)));
        assert_eq!(
            s.next(3, None, Some(secs(86_400)), high),
            Next::Retry(secs(600))
        );
        // The last attempt is dead whatever the receiver asks.
        assert_eq!(s.next(10, None, Some(secs(30)), high), Next::Dead);
    }

    #[test]
    fn a_single_attempt_schedule_never_retries() {
        let s = RetrySchedule {
            max_attempts: 1,
            ..schedule(Jitter::Full)
        };
        assert_eq!(
            s.next(1, None, None, &mut Extreme { high: true }),
            Next::Dead
        );
    }

    #[test]
    fn the_default_schedule_is_valid_and_bad_ones_are_reported() {
        assert!(
            RetrySchedule::default()
                .problems("vendors.x.retry")
                .is_empty()
        );
        let bad = RetrySchedule {
            max_attempts: 0,
            base_ms: 0,
            cap_ms: 0,
            ..RetrySchedule::default()
        };
        assert_eq!(
            bad.problems("r"),
            vec![
                "r.max_attempts must be at least 1".to_string(),
                "r.base_ms must be greater than 0".to_string(),
            ]
        );
        let inverted = RetrySchedule {
            base_ms: 10,
            cap_ms: 5,
            ..RetrySchedule::default()
        };
        assert_eq!(
            inverted.problems("r"),
            vec!["r.cap_ms (5) must not be less than base_ms (10)".to_string()]
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_all_http_date_formats() {
        let now: Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("120", now), Ok(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Ok(secs(0)));
        for date in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(parse_retry_after(date, now), Ok(secs(60)), "{date}");
        }
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Ok(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-5", "1.5", "soon", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            let err = parse_retry_after(bad, now).unwrap_err();
            assert!(
                err.to_string().contains("neither seconds nor an HTTP date"),
                "{bad}"
            );
        }
    }
}
