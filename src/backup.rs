//! Backup: the whole store as JSON lines, and back.
//!
//! Line 1 is a header; every other line is one entry: its tree, its key in hex and its value
//! as the JSON it is stored as (with the value's format version). The dump is plain enough to
//! read, diff and grep. Export reads through the [`Store`] trait; import writes into an empty
//! store only, after checking every line, so a bad file leaves nothing half-imported.

use std::io::{BufRead, Write};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::store::FORMAT_VERSION;

use crate::store::Store;

use crate::store::StoreError;

use crate::store::Tree;

use crate::store::WriteBatch;

/// The first line of a dump.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// Dump format; bumped on incompatible change.
    itsmd_export: u32,
    /// itsmd version that wrote it.
    version: String,
}

const DUMP_FORMAT: u32 = 1;

/// One stored entry.
#[derive(Serialize)]
struct EntryOut<'a> {
    tree: &'static str,
    key: String,
    /// Format version of the value.
    v: u8,
    value: &'a RawValue,
}

#[derive(Deserialize)]
struct EntryIn {
    tree: String,
    key: String,
    v: u8,
    value: Box<RawValue>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("writing the dump: {0}")]
    Write(#[source] std::io::Error),
    #[error("reading the dump: {0}")]
    Read(#[source] std::io::Error),
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("the target store is not empty; import only into an empty data directory")]
    NotEmpty,
}

/// Writes every entry of every tree; returns the number of entries.
pub fn export(store: &dyn Store, out: &mut dyn Write) -> Result<u64, BackupError> {
    let header = Header {
        itsmd_export: DUMP_FORMAT,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    write_line(out, &header)?;
    let mut n = 0;
    for tree in Tree::ALL {
        for item in store.range(tree, Bound::Unbounded, Bound::Unbounded) {
            let (key, value) = item?;
            let (v, body) = value.split_first().ok_or_else(|| StoreError::Corrupt {
                tree: tree.name(),
                message: "empty value".into(),
            })?;
            let body = std::str::from_utf8(body)
                .ok()
                .and_then(|s| RawValue::from_string(s.into()).ok());
            let Some(body) = body else {
                return Err(StoreError::Corrupt {
                    tree: tree.name(),
                    message: "value is not JSON".into(),
                }
                .into());
            };
            write_line(
                out,
                &EntryOut {
                    tree: tree.name(),
                    key: hex(&key),
                    v: *v,
                    value: &body,
                },
            )?;
            n += 1;
        }
    }
    out.flush().map_err(BackupError::Write)?;
    Ok(n)
}

fn write_line(out: &mut dyn Write, value: &impl Serialize) -> Result<(), BackupError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| BackupError::Write(e.into()))?;
    out.write_all(b"\n").map_err(BackupError::Write)
}

/// Reads a whole dump into an empty store and flushes it; returns the number of entries.
pub fn import(store: &dyn Store, input: &mut dyn BufRead) -> Result<u64, BackupError> {
    let empty = Tree::ALL.iter().all(|t| {
        store
            .range(*t, Bound::Unbounded, Bound::Unbounded)
            .next()
            .is_none()
    });
    if !empty {
        return Err(BackupError::NotEmpty);
    }
    let mut batch = WriteBatch::default();
    let mut lines = input.lines().enumerate();
    let bad = |line: usize, message: String| BackupError::Invalid {
        line: line + 1,
        message,
    };
    match lines.next() {
        Some((i, line)) => {
            let line = line.map_err(BackupError::Read)?;
            let header: Header = serde_json::from_str(&line)
                .map_err(|e| bad(i, format!("not an itsmd export header: {e}")))?;
            if header.itsmd_export != DUMP_FORMAT {
                return Err(bad(
                    i,
                    format!("dump format {} is not supported", header.itsmd_export),
                ));
            }
        }
        None => return Err(bad(0, "the file is empty".into())),
    }
    for (i, line) in lines {
        let line = line.map_err(BackupError::Read)?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: EntryIn = serde_json::from_str(&line).map_err(|e| bad(i, e.to_string()))?;
        let tree = Tree::ALL
            .into_iter()
            .find(|t| t.name() == entry.tree)
            .ok_or_else(|| bad(i, format!("unknown tree `{}`", entry.tree)))?;
        if entry.v != FORMAT_VERSION {
            return Err(bad(i, format!("value format {} is not supported", entry.v)));
        }
        let key = unhex(&entry.key).ok_or_else(|| bad(i, "key is not hex".into()))?;
        let mut value = Vec::with_capacity(entry.value.get().len() + 1);
        value.push(entry.v);
        value.extend_from_slice(entry.value.get().as_bytes());
        batch.put(tree, key, value);
    }
    let n = batch.len() as u64;
    store.apply(batch)?;
    store.flush()?;
    Ok(n)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::store::encode;

    fn sample() -> MemoryStore {
        let s = MemoryStore::new();
        let mut b = WriteBatch::default();
        b.put(
            Tree::Tickets,
            b"INC\0\0\0\0\0\0\0\x01".to_vec(),
            encode(&serde_json::json!({"id": "INC-000001"})),
        );
        b.put(
            Tree::History,
            vec![0xFF, 0x00],
            encode(&serde_json::json!([1, 2])),
        );
        b.put(Tree::Meta, b"seq/event".to_vec(), encode(&7u64));
        s.apply(b).unwrap();
        s
    }

    #[test]
    fn a_round_trip_restores_every_entry_exactly() {
        let original = sample();
        let mut dump = Vec::new();
        assert_eq!(export(&original, &mut dump).unwrap(), 3);
        let copy = MemoryStore::new();
        assert_eq!(import(&copy, &mut dump.as_slice()).unwrap(), 3);
        let mut again = Vec::new();
        export(&copy, &mut again).unwrap();
        assert_eq!(
            String::from_utf8(dump).unwrap(),
            String::from_utf8(again).unwrap()
        );
    }

    #[test]
    fn import_refuses_a_non_empty_store_and_bad_lines_without_writing() {
        let mut dump = Vec::new();
        export(&sample(), &mut dump).unwrap();
        assert!(matches!(
            import(&sample(), &mut dump.as_slice()),
            Err(BackupError::NotEmpty)
        ));

        let text = String::from_utf8(dump)
            .unwrap()
            .replace("\"history\"", "\"histories\"");
        let target = MemoryStore::new();
        let err = import(&target, &mut text.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("unknown tree `histories`"),
            "{err}"
        );
        assert!(err.to_string().starts_with("line "), "{err}");
        assert!(
            target
                .range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded)
                .next()
                .is_none()
        );
    }
}
