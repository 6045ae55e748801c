//! Backup: the whole store as JSON lines, and back.
//!
//! Line 1 is a header with the number of entries (in all and per tree); every other line but
//! the last is one entry: its tree, its key in hex and its value as the JSON it is stored as
//! (with the value's format version); the last line is a trailer with the number of entries
//! again and the SHA-256 of every byte before it. The dump is plain enough to read, diff and
//! grep. Export reads through the [`Store`] trait; import checks the whole file first (every
//! line, every value decodes as its tree's record type, the counts, the checksum) and writes
//! into an empty store only then, so a cut-off or tampered file leaves nothing half-imported.
//!
//! Dumps of format 1 (no counts, no trailer) are refused unless asked for
//! ([`Verify::AllowUnverified`]): without a trailer a cut-off dump cannot be told from a whole
//! one. Their entries are still checked one by one.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::store::layout::check_record;
use crate::store::{FORMAT_VERSION, Store, StoreError, Tree, WriteBatch};

/// The first line of a dump.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// Dump format; bumped on incompatible change.
    itsmd_export: u32,
    /// itsmd version that wrote it.
    version: String,
    /// Entries in the dump (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entries: Option<u64>,
    /// Entries per tree, trees without entries left out (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trees: Option<BTreeMap<String, u64>>,
    /// An archive (`itsmd export --since`): only the journal from this time, and the tickets
    /// updated since with their history, comments and alert occurrences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<jiff::Timestamp>,
}

/// The last line of a dump (format 2).
#[derive(Debug, Serialize, Deserialize)]
struct Trailer {
    itsmd_export_end: End,
}

#[derive(Debug, Serialize, Deserialize)]
struct End {
    entries: u64,
    /// SHA-256, in hex, of every byte of the dump before this line.
    sha256: String,
}

/// The format export writes.
const DUMP_FORMAT: u32 = 2;
/// The format before counts and trailer: imported only when asked for.
const DUMP_FORMAT_UNVERIFIED: u32 = 1;

/// Whether a dump without a trailer (format 1) may be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Only whole, checksummed dumps (format 2).
    Strict,
    /// Format 1 dumps too: each entry is checked, but a cut-off file cannot be detected.
    AllowUnverified,
}

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
#[serde(deny_unknown_fields)]
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

/// What a checked dump holds.
#[derive(Debug)]
pub struct Verified {
    /// Entries in the dump.
    pub entries: u64,
    /// The dump's format: 1 when it had no trailer to check.
    pub format: u32,
    /// An archive from this time on (`itsmd export --since`), not a whole store.
    pub since: Option<jiff::Timestamp>,
}

/// Writes every entry of every tree between a header and a checksummed trailer; returns the
/// number of entries. The store must not change meanwhile (the daemon pauses commits).
pub fn export(store: &dyn Store, out: &mut dyn Write) -> Result<u64, BackupError> {
    export_where(store, out, None, &mut |_, _, _| Ok(true))
}

/// Writes an archive of what happened from `since` on, in the same checked format: the
/// journal records received at or after `since`, and the tickets updated at or after it
/// with their history, comments and alert occurrences (nothing else). For keeping the
/// journal before the retention sweep prunes it; importing it gives a store of those
/// tickets and events only.
pub fn export_since(
    store: &dyn Store,
    out: &mut dyn Write,
    since: jiff::Timestamp,
) -> Result<u64, BackupError> {
    let mut tickets = std::collections::HashSet::new();
    for item in store.range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded) {
        let (key, value) = item?;
        let t: crate::tickets::Ticket = crate::store::decode(Tree::Tickets, &value)?;
        if t.updated_at >= since {
            tickets.insert(key);
        }
    }
    // Keys of these trees start with the ticket's key (kind prefix + number).
    let ticket_key_len = crate::tickets::TicketId {
        kind: crate::tickets::Kind::Incident,
        number: 0,
    }
    .key()
    .len();
    export_where(store, out, Some(since), &mut |tree, key, value| {
        Ok(match tree {
            Tree::Events => {
                let e: crate::store::layout::StoredEvent = crate::store::decode(tree, value)?;
                e.event.received_at >= since
            }
            Tree::Tickets => tickets.contains(key),
            Tree::History | Tree::Comments | Tree::TicketAlerts | Tree::TicketLinks => key
                .get(..ticket_key_len)
                .is_some_and(|k| tickets.contains(k)),
            _ => false,
        })
    })
}

/// Which entries an export writes: tree, key, stored value.
type Keep<'a> = dyn FnMut(Tree, &[u8], &[u8]) -> Result<bool, StoreError> + 'a;

fn export_where(
    store: &dyn Store,
    out: &mut dyn Write,
    since: Option<jiff::Timestamp>,
    keep: &mut Keep<'_>,
) -> Result<u64, BackupError> {
    let mut trees = BTreeMap::new();
    let mut total = 0;
    for tree in Tree::ALL {
        let mut n = 0;
        for item in store.range(tree, Bound::Unbounded, Bound::Unbounded) {
            let (key, value) = item?;
            if keep(tree, &key, &value)? {
                n += 1;
            }
        }
        if n > 0 {
            trees.insert(tree.name().to_string(), n);
        }
        total += n;
    }
    let mut out = Hashing {
        out,
        sha: Sha256::new(),
    };
    let header = Header {
        itsmd_export: DUMP_FORMAT,
        version: env!("CARGO_PKG_VERSION").into(),
        entries: Some(total),
        trees: Some(trees),
        since,
    };
    write_line(&mut out, &header)?;
    let mut n = 0;
    for tree in Tree::ALL {
        for item in store.range(tree, Bound::Unbounded, Bound::Unbounded) {
            let (key, value) = item?;
            if !keep(tree, &key, &value)? {
                continue;
            }
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
                &mut out,
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
    if n != total {
        return Err(StoreError::Corrupt {
            tree: "all",
            message: format!("the store changed during the export ({total} then {n} entries)"),
        }
        .into());
    }
    let trailer = Trailer {
        itsmd_export_end: End {
            entries: n,
            sha256: hex(&out.sha.clone().finalize()[..]),
        },
    };
    write_line(&mut out, &trailer)?;
    out.out.flush().map_err(BackupError::Write)?;
    Ok(n)
}

/// A writer that hashes what goes through it.
struct Hashing<'a> {
    out: &'a mut dyn Write,
    sha: Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn write_line(out: &mut dyn Write, value: &impl Serialize) -> Result<(), BackupError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| BackupError::Write(e.into()))?;
    out.write_all(b"\n").map_err(BackupError::Write)
}

/// Checks a whole dump without writing anything: the header, every entry (known tree, hex
/// key, a value that decodes as its tree's record type), the counts and the checksum. Each
/// entry is handed to `sink` as (tree, key, stored value); an error means the caller must
/// discard what it was given.
pub fn verify(
    input: &mut dyn BufRead,
    mode: Verify,
    sink: &mut dyn FnMut(Tree, Vec<u8>, Vec<u8>),
) -> Result<Verified, BackupError> {
    let bad = |line: usize, message: String| BackupError::Invalid { line, message };
    let mut sha = Sha256::new();
    let mut buf = String::new();
    let mut number = 0;
    // Reads the next line: its text without the newline, or None at the end of the file.
    let mut next = |sha: &mut Sha256, number: &mut usize| -> Result<Option<String>, BackupError> {
        buf.clear();
        let n = input.read_line(&mut buf).map_err(BackupError::Read)?;
        if n == 0 {
            return Ok(None);
        }
        *number += 1;
        if !buf.ends_with('\n') {
            return Err(bad(
                *number,
                "the line is cut off (no newline at the end): the dump is incomplete".into(),
            ));
        }
        sha.update(buf.as_bytes());
        Ok(Some(buf.trim_end_matches('\n').to_string()))
    };
    let header: Header = match next(&mut sha, &mut number)? {
        Some(line) => serde_json::from_str(&line)
            .map_err(|e| bad(1, format!("not an itsmd export header: {e}")))?,
        None => return Err(bad(1, "the file is empty".into())),
    };
    let strict = match header.itsmd_export {
        DUMP_FORMAT => true,
        DUMP_FORMAT_UNVERIFIED if mode == Verify::AllowUnverified => false,
        DUMP_FORMAT_UNVERIFIED => {
            return Err(bad(
                1,
                "dump format 1 has no trailer, so a cut-off file cannot be told from a whole \
                 one; export again with this itsmd, or import it with --allow-unverified"
                    .into(),
            ));
        }
        other => return Err(bad(1, format!("dump format {other} is not supported"))),
    };
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut entries = 0u64;
    let mut trailer = None;
    loop {
        let digest_before = sha.clone();
        let Some(line) = next(&mut sha, &mut number)? else {
            break;
        };
        let i = number;
        if trailer.is_some() {
            return Err(bad(i, "data after the trailer".into()));
        }
        if strict && line.starts_with("{\"itsmd_export_end\"") {
            let t: Trailer =
                serde_json::from_str(&line).map_err(|e| bad(i, format!("bad trailer: {e}")))?;
            trailer = Some((i, t, digest_before.finalize()));
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
        check_record(tree, &key, &value).map_err(|e| bad(i, e.to_string()))?;
        *seen.entry(tree.name().to_string()).or_default() += 1;
        entries += 1;
        sink(tree, key, value);
    }
    if !strict {
        return Ok(Verified {
            entries,
            format: DUMP_FORMAT_UNVERIFIED,
            since: header.since,
        });
    }
    let Some((i, trailer, digest)) = trailer else {
        return Err(bad(
            number,
            "the dump ends without its trailer: it is incomplete (cut off?); export again".into(),
        ));
    };
    let end = trailer.itsmd_export_end;
    if hex(&digest[..]) != end.sha256 {
        return Err(bad(
            i,
            "checksum mismatch: the dump was changed or damaged after export".into(),
        ));
    }
    let declared = header.entries.unwrap_or(0);
    if end.entries != entries || declared != entries {
        return Err(bad(
            i,
            format!(
                "{entries} entries in the dump, but the header says {declared} and the \
                 trailer {}",
                end.entries
            ),
        ));
    }
    if header.trees.unwrap_or_default() != seen {
        return Err(bad(
            1,
            "the entries per tree differ from the header's".into(),
        ));
    }
    Ok(Verified {
        entries,
        format: DUMP_FORMAT,
        since: header.since,
    })
}

/// Checks a whole dump, then reads it into an empty store and flushes it; returns what was
/// imported. Nothing is written unless the whole dump checks.
pub fn import(
    store: &dyn Store,
    input: &mut dyn BufRead,
    mode: Verify,
) -> Result<Verified, BackupError> {
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
    let verified = verify(input, mode, &mut |tree, key, value| {
        batch.put(tree, key, value)
    })?;
    store.apply(batch)?;
    if verified.since.is_some() {
        store.apply(counters_of_archive(store)?)?;
    }
    store.flush()?;
    Ok(verified)
}

/// An archive holds no counters (`meta`): the event and ticket sequences and the ticket
/// counts are made from the records it brought, so the next event and ticket numbers follow
/// its own and a daemon on the imported store overwrites nothing. (Its search and link
/// indexes are rebuilt when the engine starts: their versions are not there either.)
fn counters_of_archive(store: &dyn Store) -> Result<WriteBatch, BackupError> {
    use crate::store::layout::{EVENT_SEQ, ticket_count_key, ticket_seq_key};
    use crate::store::{decode, encode};
    use crate::tickets::Ticket;
    let mut b = WriteBatch::default();
    let last_event = store
        .range(Tree::Events, Bound::Unbounded, Bound::Unbounded)
        .next_back()
        .transpose()?;
    if let Some((key, _)) = last_event
        && let Ok(id) = <[u8; 8]>::try_from(key.as_slice())
    {
        b.put(
            Tree::Meta,
            EVENT_SEQ.to_vec(),
            encode(&u64::from_be_bytes(id)),
        );
    }
    let mut seq = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for item in store.range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded) {
        let (_, value) = item?;
        let t: Ticket = decode(Tree::Tickets, &value)?;
        let last = seq.entry(ticket_seq_key(t.id.kind)).or_insert(0u64);
        *last = (*last).max(t.id.number);
        *counts
            .entry(ticket_count_key(t.id.kind, t.state))
            .or_insert(0u64) += 1;
    }
    for (key, n) in seq.into_iter().chain(counts) {
        b.put(Tree::Meta, key, encode(&n));
    }
    Ok(b)
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
            Tree::TicketsByState,
            b"new\0INC\0\0\0\0\0\0\0\x01".to_vec(),
            encode(&()),
        );
        b.put(Tree::OutboxQueues, vec![0xFF, 0x00], encode(&vec![1u64, 2]));
        b.put(Tree::Meta, b"seq/event".to_vec(), encode(&7u64));
        s.apply(b).unwrap();
        s
    }

    fn dump_of(store: &MemoryStore) -> String {
        let mut dump = Vec::new();
        export(store, &mut dump).unwrap();
        String::from_utf8(dump).unwrap()
    }

    fn import_text(text: &str) -> Result<(Verified, MemoryStore), BackupError> {
        let target = MemoryStore::new();
        let v = import(&target, &mut text.as_bytes(), Verify::Strict)?;
        Ok((v, target))
    }

    fn is_empty(store: &MemoryStore) -> bool {
        Tree::ALL.iter().all(|t| {
            store
                .range(*t, Bound::Unbounded, Bound::Unbounded)
                .next()
                .is_none()
        })
    }

    #[test]
    fn a_round_trip_restores_every_entry_exactly() {
        let original = sample();
        let dump = dump_of(&original);
        assert_eq!(dump.lines().count(), 5, "{dump}");
        assert!(dump.starts_with("{\"itsmd_export\":2,"), "{dump}");
        assert!(
            dump.lines().next().unwrap().contains("\"entries\":3"),
            "{dump}"
        );
        assert!(
            dump.lines().last().unwrap().contains("\"sha256\":"),
            "{dump}"
        );
        let (v, copy) = import_text(&dump).unwrap();
        assert_eq!((v.entries, v.format), (3, 2));
        assert_eq!(dump_of(&copy), dump);
    }

    #[test]
    fn import_refuses_a_non_empty_store_and_bad_lines_without_writing() {
        let dump = dump_of(&sample());
        assert!(matches!(
            import(&sample(), &mut dump.as_bytes(), Verify::Strict),
            Err(BackupError::NotEmpty)
        ));

        let text = dump.replace("\"outbox_queues\",", "\"outbox_queue\",");
        let target = MemoryStore::new();
        let err = import(&target, &mut text.as_bytes(), Verify::Strict).unwrap_err();
        assert!(
            err.to_string().contains("unknown tree `outbox_queue`"),
            "{err}"
        );
        assert!(err.to_string().starts_with("line "), "{err}");
        assert!(is_empty(&target));
    }

    #[test]
    fn import_refuses_an_incomplete_or_tampered_dump_naming_the_line() {
        let dump = dump_of(&sample());
        let lines: Vec<&str> = dump.lines().collect();
        let cases = [
            // Cut at a line boundary: no trailer.
            (
                lines[..3].join("\n") + "\n",
                "line 3: the dump ends without its trailer",
            ),
            // Header only.
            (
                lines[0].to_string() + "\n",
                "line 1: the dump ends without its trailer",
            ),
            // Cut inside a line.
            (
                dump[..dump.len() - 5].to_string(),
                "line 5: the line is cut off",
            ),
            // A value changed: still decodes, but the checksum catches it.
            (dump.replace("[1,2]", "[1,3]"), "line 5: checksum mismatch"),
            // A value that does not decode as its tree's record type.
            (
                dump.replace("[1,2]", "{\"x\":1}"),
                "line 4: stored value in tree outbox_queues is unreadable",
            ),
            // A line dropped: the checksum no longer matches.
            (
                [lines[0], lines[1], lines[3], lines[4]].join("\n") + "\n",
                "line 4: checksum mismatch",
            ),
            (String::new(), "line 1: the file is empty"),
        ];
        for (text, expected) in cases {
            let err = import_text(&text).map(|_| ()).unwrap_err();
            assert!(err.to_string().starts_with(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn a_format_1_dump_needs_allow_unverified() {
        let old = "{\"itsmd_export\":1,\"version\":\"0.1.0\"}\n\
                   {\"tree\":\"meta\",\"key\":\"00\",\"v\":1,\"value\":7}\n";
        let err = import_text(old).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("--allow-unverified"), "{err}");
        let target = MemoryStore::new();
        let v = import(&target, &mut old.as_bytes(), Verify::AllowUnverified).unwrap();
        assert_eq!((v.entries, v.format), (1, 1));
        let bad = old.replace("7}", "\"seven\"}");
        let err = import(
            &MemoryStore::new(),
            &mut bad.as_bytes(),
            Verify::AllowUnverified,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 2: stored value in tree meta"),
            "{err}"
        );
    }
}
