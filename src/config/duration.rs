//! Durations in the configuration: jiff's "friendly" format, e.g. `"5d"`, `"12h"`,
//! `"1h 30m"`, `"250ms"`. Days and weeks count as 24 hours and 7 days; months and years
//! are refused (their length varies).

use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written in the friendly format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Friendly(pub SignedDuration);

impl Friendly {
    pub fn from_secs(secs: i64) -> Friendly {
        Friendly(SignedDuration::from_secs(secs))
    }

    /// For tokio timers; negative durations cannot be parsed, so this never clamps in practice.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::try_from(self.0).unwrap_or_default()
    }
}

impl FromStr for Friendly {
    type Err = String;
    fn from_str(s: &str) -> Result<Friendly, String> {
        let bad = |e: &dyn fmt::Display| {
            format!("{s:?} is not a duration like \"5d\", \"12h\", \"90m\" or \"30s\": {e}")
        };
        let span: Span = s.parse().map_err(|e| bad(&e))?;
        let d = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|e| bad(&e))?;
        if d.is_negative() {
            return Err(format!("{s:?}: a duration must not be negative"));
        }
        Ok(Friendly(d))
    }
}

impl fmt::Display for Friendly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl Serialize for Friendly {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Friendly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Friendly, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_durations_parse_with_24_hour_days() {
        let secs = |s: &str| s.parse::<Friendly>().unwrap().0.as_secs();
        assert_eq!(secs("5d"), 5 * 86_400);
        assert_eq!(secs("1w"), 7 * 86_400);
        assert_eq!(secs("1h 30m"), 5_400);
        assert_eq!("250ms".parse::<Friendly>().unwrap().0.as_millis(), 250);
        for bad in ["1 month", "soon", "-5m", ""] {
            assert!(bad.parse::<Friendly>().is_err(), "{bad}");
        }
        let back: Friendly = Friendly::from_secs(86_400 * 5).to_string().parse().unwrap();
        assert_eq!(back, Friendly::from_secs(86_400 * 5));
    }
}
