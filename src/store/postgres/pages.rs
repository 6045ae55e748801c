//! Ranges read in pages from either end, so a long scan never holds the whole range in
//! memory and a bounded scan is one round trip.

use std::ops::Bound;

use postgres::Client;
use postgres::types::ToSql;

use crate::store::postgres::{PostgresStore, io, prepared, tree_id};
use crate::store::{Entry, StoreError, Tree};

/// Rows fetched per round trip while scanning.
pub(super) const PAGE: i64 = 512;

pub(super) fn page(
    client: &mut Client,
    tree: Tree,
    low: &Bound<Vec<u8>>,
    high: &Bound<Vec<u8>>,
    forward: bool,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let t = tree_id(tree);
    let ends: Vec<(&[u8], &str)> = [end(low, ">=", ">"), end(high, "<=", "<")]
        .into_iter()
        .flatten()
        .collect();
    let mut sql = String::from("SELECT key, value FROM itsmd_kv WHERE tree = $1");
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&t];
    for (key, op) in &ends {
        params.push(key);
        sql.push_str(&format!(" AND key {op} ${}", params.len()));
    }
    sql.push_str(if forward {
        " ORDER BY key ASC"
    } else {
        " ORDER BY key DESC"
    });
    params.push(&limit);
    sql.push_str(&format!(" LIMIT ${}", params.len()));
    let statement = prepared(client, &sql).map_err(|e| io("prepare", e))?;
    let rows = client
        .query(&statement, &params)
        .map_err(|e| io("scan", e))?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A range read a page at a time from whichever end is asked for; the two ends meet in the
/// middle without reading anything twice.
pub(super) struct Pages<'a> {
    pub(super) store: &'a PostgresStore,
    pub(super) tree: Tree,
    /// What is left to read: the ends move inwards as pages are taken.
    pub(super) low: Bound<Vec<u8>>,
    pub(super) high: Bound<Vec<u8>>,
    pub(super) front: std::vec::IntoIter<Entry>,
    pub(super) back: std::vec::IntoIter<Entry>,
    /// The database has nothing more between `low` and `high`.
    pub(super) done: bool,
}

impl Pages<'_> {
    /// Reads the next page from one end into its buffer; false when nothing is left.
    fn fill(&mut self, forward: bool) -> Result<bool, StoreError> {
        if self.done {
            return Ok(false);
        }
        let page = self
            .store
            .page(self.tree, &self.low, &self.high, forward, PAGE)?;
        if (page.len() as i64) < PAGE {
            self.done = true;
        }
        let Some(last) = page.last() else {
            return Ok(false);
        };
        if forward {
            self.low = Bound::Excluded(last.0.clone());
            self.front = page.into_iter();
        } else {
            self.high = Bound::Excluded(last.0.clone());
            self.back = page.into_iter();
        }
        Ok(true)
    }

    /// The buffer of one end.
    fn buffer(&mut self, forward: bool) -> &mut std::vec::IntoIter<Entry> {
        if forward {
            &mut self.front
        } else {
            &mut self.back
        }
    }

    /// The next entry from one end: its buffer, then a new page, then (once the database has
    /// nothing left between the ends) the far side of the other end's buffer.
    fn take(&mut self, forward: bool) -> Option<Result<Entry, StoreError>> {
        if let Some(e) = self.buffer(forward).next() {
            return Some(Ok(e));
        }
        match self.fill(forward) {
            Ok(true) => self.buffer(forward).next().map(Ok),
            Ok(false) => self.buffer(!forward).next_back().map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Iterator for Pages<'_> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.take(true)
    }
}

impl DoubleEndedIterator for Pages<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.take(false)
    }
}

/// One end of a range as a key and its SQL comparison; `None` when unbounded.
fn end<'b>(
    bound: &'b Bound<Vec<u8>>,
    included: &'static str,
    excluded: &'static str,
) -> Option<(&'b [u8], &'static str)> {
    match bound {
        Bound::Included(k) => Some((k, included)),
        Bound::Excluded(k) => Some((k, excluded)),
        Bound::Unbounded => None,
    }
}
