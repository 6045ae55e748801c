//! The report aggregates' keys and records: per-day buckets the engine adds to in each
//! commit (`reports::aggregate`), and what has been counted of each ticket.
//!
//! A bucket key is the UTC day (big-endian days since 1970), a measure byte, a dimension
//! byte and the dimension's value, so one period's buckets are one key range.

use std::ops::Bound;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Tree, decode};

/// Counts and durations of one measure on one day for one dimension value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// How many times the measured event happened.
    pub n: u64,
    /// Sum of the durations, in seconds (measures with durations only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sum: i64,
    /// Every duration in seconds with how often it occurred, ascending: exact medians.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub d: Vec<(i64, u64)>,
    /// The day's rows of a listing measure (breaches, escalations), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<serde_json::Value>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Bucket {
    /// One occurrence lasting `secs`.
    pub fn duration(secs: i64) -> Bucket {
        Bucket {
            n: 1,
            sum: secs,
            d: vec![(secs, 1)],
            rows: Vec::new(),
        }
    }

    /// One occurrence without a duration.
    pub fn one() -> Bucket {
        Bucket {
            n: 1,
            ..Bucket::default()
        }
    }

    /// Adds `other` into this bucket (durations merged in order).
    pub fn add(&mut self, other: &Bucket) {
        self.n += other.n;
        self.sum += other.sum;
        for &(secs, count) in &other.d {
            match self.d.binary_search_by_key(&secs, |&(s, _)| s) {
                Ok(i) => self.d[i].1 += count,
                Err(i) => self.d.insert(i, (secs, count)),
            }
        }
        self.rows.extend(other.rows.iter().cloned());
    }
}

/// What the reports have already counted of one ticket, so each is counted once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Marks {
    /// Its first acknowledgement (first response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Timestamp>,
    /// Its first resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Timestamp>,
}

/// The UTC day of `t`, in days since 1970-01-01.
pub fn day(t: Timestamp) -> u32 {
    (t.as_second().div_euclid(86_400)).max(0) as u32
}

/// The start of `day`.
pub fn day_start(day: u32) -> Timestamp {
    Timestamp::from_second(i64::from(day) * 86_400).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The key of one bucket.
pub fn bucket_key(day: u32, measure: u8, dim: u8, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + value.len());
    k.extend_from_slice(&day.to_be_bytes());
    k.push(measure);
    k.push(dim);
    k.extend_from_slice(value.as_bytes());
    k
}

/// One bucket as read back: its day, measure, dimension, value and record.
pub type Read = (u32, u8, u8, String, Bucket);

/// Every bucket of the days `[from, to)`, in day order.
pub fn buckets(store: &dyn Store, from: u32, to: u32) -> Result<Vec<Read>, StoreError> {
    let mut out = Vec::new();
    let range = store.range(
        Tree::ReportBuckets,
        Bound::Included(from.to_be_bytes().to_vec()),
        Bound::Excluded(to.to_be_bytes().to_vec()),
    );
    for item in range {
        let (key, value) = item?;
        let (Some(day), Some(&measure), Some(&dim)) = (
            key.get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes),
            key.get(4),
            key.get(5),
        ) else {
            continue;
        };
        let name = String::from_utf8_lossy(&key[6..]).into_owned();
        out.push((
            day,
            measure,
            dim,
            name,
            decode(Tree::ReportBuckets, &value)?,
        ));
    }
    Ok(out)
}
