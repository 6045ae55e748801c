//! What the probe prints: one line of `name=value` pairs per measurement, for
//! `bench/run.sh` to pick apart, and the latency percentiles that go into it.

use std::fmt::Write;
use std::time::Duration;

/// A line of `name=value` pairs, in the order they were added.
#[derive(Default)]
pub struct Line(String);

impl Line {
    pub fn add(mut self, name: &str, value: impl std::fmt::Display) -> Line {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        // Writing into a String cannot fail.
        let _ = write!(self.0, "{name}={value}");
        self
    }

    /// Adds p50, p99 and max of `latencies` in milliseconds, as `{prefix}p50` and so on.
    pub fn latencies(self, prefix: &str, latencies: &mut [Duration]) -> Line {
        latencies.sort_unstable();
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
        self.add(&format!("{prefix}p50"), ms(percentile(latencies, 50.0)))
            .add(&format!("{prefix}p99"), ms(percentile(latencies, 99.0)))
            .add(
                &format!("{prefix}max"),
                ms(latencies.last().copied().unwrap_or_default()),
            )
    }

    pub fn print(self) {
        println!("{}", self.0);
    }
}

/// The `p`th percentile of sorted `latencies` (nearest rank); zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
