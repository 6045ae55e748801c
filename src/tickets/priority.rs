//! Priority from impact × urgency through a configurable matrix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    High,
    Medium,
    Low,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::High, Level::Medium, Level::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::High => "high",
            Level::Medium => "medium",
            Level::Low => "low",
        }
    }

    fn index(self) -> usize {
        match self {
            Level::High => 0,
            Level::Medium => 1,
            Level::Low => 2,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "high" => Ok(Level::High),
            "medium" => Ok(Level::Medium),
            "low" => Ok(Level::Low),
            _ => Err(format!(
                "{s:?} is not a level; expected high, medium or low"
            )),
        }
    }
}

/// Rows are impact (high, medium, low), columns urgency (high, medium, low); cells 1..=5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityMatrix {
    pub high: [u8; 3],
    pub medium: [u8; 3],
    pub low: [u8; 3],
}

impl Default for PriorityMatrix {
    /// ITIL's usual 3×3: high/high → 1 … low/low → 5.
    fn default() -> PriorityMatrix {
        PriorityMatrix {
            high: [1, 2, 3],
            medium: [2, 3, 4],
            low: [3, 4, 5],
        }
    }
}

impl fmt::Display for PriorityMatrix {
    /// `high=[1,2,3] medium=[2,3,4] low=[3,4,5]`: rows by impact, columns by urgency.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |r: &[u8; 3]| format!("[{},{},{}]", r[0], r[1], r[2]);
        write!(
            f,
            "high={} medium={} low={}",
            row(&self.high),
            row(&self.medium),
            row(&self.low)
        )
    }
}

impl PriorityMatrix {
    /// The reason recorded with a computed priority: the inputs and the matrix used.
    pub fn explain(&self, impact: Level, urgency: Level) -> String {
        format!(
            "priority {} = matrix[impact {impact}][urgency {urgency}] (matrix {self})",
            self.priority(impact, urgency)
        )
    }

    pub fn priority(&self, impact: Level, urgency: Level) -> u8 {
        let row = match impact {
            Level::High => &self.high,
            Level::Medium => &self.medium,
            Level::Low => &self.low,
        };
        row[urgency.index()]
    }

    /// Every cell outside 1..=5, as messages.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, row) in [
            ("high", &self.high),
            ("medium", &self.medium),
            ("low", &self.low),
        ] {
            for (i, p) in row.iter().enumerate() {
                if !(1..=5).contains(p) {
                    out.push(format!("priority.matrix.{name}[{i}] = {p}: must be 1..=5"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Level::*;

    #[test]
    fn default_matrix_matches_the_design() {
        let m = PriorityMatrix::default();
        let table = [
            (High, High, 1),
            (High, Medium, 2),
            (Medium, High, 2),
            (High, Low, 3),
            (Medium, Medium, 3),
            (Low, High, 3),
            (Medium, Low, 4),
            (Low, Medium, 4),
            (Low, Low, 5),
        ];
        for (i, u, p) in table {
            assert_eq!(m.priority(i, u), p, "{i}/{u}");
        }
        assert!(m.problems().is_empty());
        assert_eq!(
            m.explain(High, Medium),
            "priority 2 = matrix[impact high][urgency medium] (matrix high=[1,2,3] medium=[2,3,4] low=[3,4,5])"
        );
    }
}
