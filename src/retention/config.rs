//! `[retention]`: how long the raw event journal is kept, and how the sweep that prunes it
//! paces itself. Tickets, their history and comments are never pruned.

use serde::{Deserialize, Serialize};

use crate::config::duration::Friendly;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Whether the sweep runs at all; off, the journal grows without bound.
    pub enabled: bool,
    /// Journal records received longer ago than this are deleted (with the alert
    /// occurrences and vendor callback-ids that point at them).
    pub journal: Friendly,
    /// How often the sweep wakes up.
    pub sweep_every: Friendly,
    /// Records deleted per engine event; the sweep submits chunk after chunk until nothing
    /// is due, so other events are committed in between.
    pub chunk: usize,
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        RetentionConfig {
            enabled: true,
            journal: Friendly::from_secs(30 * 86_400),
            sweep_every: Friendly::from_secs(3_600),
            chunk: 2_000,
        }
    }
}

/// The largest `chunk`: a bigger one would make one commit long enough to stall intake.
pub const MAX_CHUNK: usize = 50_000;

/// Every problem with `[retention]`.
pub fn problems(r: &RetentionConfig) -> Vec<String> {
    let mut out = Vec::new();
    if r.journal.0.as_secs() < 1 {
        out.push("retention.journal must be at least 1s".to_string());
    }
    if r.sweep_every.0.as_secs() < 1 {
        out.push("retention.sweep_every must be at least 1s".to_string());
    }
    if r.chunk == 0 || r.chunk > MAX_CHUNK {
        out.push(format!(
            "retention.chunk must be between 1 and {MAX_CHUNK}, not {}",
            r.chunk
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_values_and_unknown_keys_are_all_named() {
        let text = r#"
            [retention]
            journal = "0s"
            sweep_every = "0s"
            chunk = 0
            keep = "1d"
        "#;
        let err = crate::config::parse(text, "t.toml").unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "retention.journal must be at least 1s",
            "retention.sweep_every must be at least 1s",
            "retention.chunk must be between 1 and 50000, not 0",
            "keep",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn the_default_keeps_thirty_days() {
        let c = crate::config::parse("[retention]\njournal = \"7d\"\n", "t.toml").unwrap();
        assert_eq!(c.retention.journal.0.as_secs(), 7 * 86_400);
        assert!(c.retention.enabled);
        let d = crate::config::parse("", "t.toml").unwrap();
        assert_eq!(d.retention.journal.0.as_secs(), 30 * 86_400);
    }
}
