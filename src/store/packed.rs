//! How the embedded store keeps a value on disk: packed (LZ4 against a fixed dictionary of
//! typical records) or as given.
//!
//! Why: sled 0.34.7 replays at every open the whole log written since the previous open, and
//! rewrites whole leaves as it goes, so what a start costs and how fast the data file grows
//! follow the bytes of the values. A ticket record is about 1.6 KB of JSON, most of it field
//! names, RFC 3339 times and SLA timers that every ticket shares; against a dictionary of such
//! records LZ4 keeps about a fifth of it, for a few microseconds per record.
//!
//! A packed value is [`PACKED_1`], the length of the value as given (u32, little-endian) and
//! the LZ4 block. Every other value is stored byte for byte: those of [`MIN_PACKED`] bytes or
//! less, those that would not shrink, and every value of a store written before packing
//! existed (the codec's values start with its version byte, 1), so such a store reads as it
//! is and packs its records as they are next written. A value that starts with `PACKED_1`
//! itself is always packed, so the first byte tells the two apart whatever a value holds.
//!
//! Only the embedded store packs: what the [`super::Store`] trait hands in and out is always
//! the codec's bytes (export, import and the PostgreSQL views read those).
//!
//! The dictionary (`packed/dict-1.json`) is part of the on-disk format: packed values cannot
//! be read without the very bytes they were packed against. It is never edited; a better one
//! is added as `dict-2.json` under a marker of its own, with `dict-1.json` kept for reading.

use thiserror::Error;

/// First byte of a value packed against [`DICT_1`].
pub const PACKED_1: u8 = 0xF1;

/// The dictionary of [`PACKED_1`]: one stored record of each common kind (a comment, a
/// service summary, an SLA timer, an alert's end, tickets, history entries, journal events),
/// the most common last, where LZ4 finds them first.
const DICT_1: &[u8] = include_bytes!("packed/dict-1.json");

/// Values up to this many bytes are stored as given: counters, index entries and short
/// records gain a few bytes at most, and each packing costs a pass over the dictionary.
pub const MIN_PACKED: usize = 96;

/// Bytes in front of the LZ4 block: the marker and the unpacked length.
const HEADER: usize = 5;

/// No record comes near this; a packed value claiming more is corrupt, and is refused before
/// anything is allocated for it.
const MAX_UNPACKED: usize = 256 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PackError {
    #[error("packed value of {0} bytes is shorter than its {HEADER}-byte header")]
    Short(usize),
    #[error("packed value claims {0} bytes unpacked, more than any record ({MAX_UNPACKED})")]
    TooLong(usize),
    #[error("packed value does not unpack: {0}")]
    Lz4(String),
    #[error("packed value unpacked to {got} bytes, its header says {want}")]
    Length { want: usize, got: usize },
}

/// The form of `value` to store.
pub fn pack(value: Vec<u8>) -> Vec<u8> {
    let marked = value.first() == Some(&PACKED_1);
    if value.len() <= MIN_PACKED && !marked {
        return value;
    }
    let Ok(len) = u32::try_from(value.len()) else {
        return value;
    };
    let mut out = vec![0u8; HEADER + lz4_flex::block::get_maximum_output_size(value.len())];
    out[0] = PACKED_1;
    out[1..HEADER].copy_from_slice(&len.to_le_bytes());
    let written = match lz4_flex::block::compress_into_with_dict(&value, &mut out[HEADER..], DICT_1)
    {
        Ok(n) => n,
        // The buffer is LZ4's own bound for this input: not reached. Kept as given (a marked
        // value cannot be: it would read as packed), so a value is never lost to packing.
        Err(_) if !marked => return value,
        Err(e) => unreachable!("LZ4 output exceeded its own bound: {e}"),
    };
    out.truncate(HEADER + written);
    if out.len() >= value.len() && !marked {
        return value;
    }
    out
}

/// The value as it was given to [`pack`].
pub fn unpack(stored: &[u8]) -> Result<Vec<u8>, PackError> {
    if stored.first() != Some(&PACKED_1) {
        return Ok(stored.to_vec());
    }
    let (Some(len), Some(block)) = (stored.get(1..HEADER), stored.get(HEADER..)) else {
        return Err(PackError::Short(stored.len()));
    };
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(len);
    let want = u32::from_le_bytes(bytes) as usize;
    if want > MAX_UNPACKED {
        return Err(PackError::TooLong(want));
    }
    let mut out = vec![0u8; want];
    let got = lz4_flex::block::decompress_into_with_dict(block, &mut out, DICT_1)
        .map_err(|e| PackError::Lz4(e.to_string()))?;
    if got != want {
        return Err(PackError::Length { want, got });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::encode;
    use sha2::{Digest, Sha256};

    /// The dictionary is part of the on-disk format: editing it makes every value packed with
    /// it unreadable. Add `dict-2.json` with a marker of its own instead.
    #[test]
    fn the_dictionary_is_never_edited() {
        let sha: String = Sha256::digest(DICT_1)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            sha, "30dbfe480d7192445c8f172d31dd122d090753b8a93668767742ad6afcb8e4ec",
            "packed/dict-1.json changed: values packed with it no longer read"
        );
    }

    #[test]
    fn a_record_packs_to_a_fraction_and_unpacks_to_the_same_bytes() {
        let ticket = crate::tickets::Ticket {
            title: "Disk almost full on db07".into(),
            group: Some("dba".into()),
            ..crate::tickets::Ticket::blank(
                crate::tickets::TicketId {
                    kind: crate::tickets::Kind::Incident,
                    number: 4711,
                },
                "2027-03-04T05:06:07.123456789Z".parse().unwrap(),
            )
        };
        let value = encode(&ticket);
        let packed = pack(value.clone());
        assert_eq!(packed[0], PACKED_1);
        assert!(
            packed.len() * 2 < value.len(),
            "{} bytes packed to {}",
            value.len(),
            packed.len()
        );
        assert_eq!(unpack(&packed).unwrap(), value);
    }

    #[test]
    fn small_and_incompressible_values_are_stored_as_given() {
        let counter = encode(&42u64);
        assert_eq!(pack(counter.clone()), counter);
        assert_eq!(unpack(&counter).unwrap(), counter);
        // Bytes LZ4 cannot shrink: a value that would grow stays as it is.
        let mut rng = fastrand::Rng::with_seed(7);
        let noise: Vec<u8> = std::iter::once(1u8)
            .chain(std::iter::repeat_with(|| rng.u8(..)).take(400))
            .collect();
        assert_eq!(pack(noise.clone()), noise);
        assert_eq!(unpack(&noise).unwrap(), noise);
    }

    #[test]
    fn a_value_starting_with_the_marker_is_always_packed() {
        for value in [vec![PACKED_1], vec![PACKED_1, 0, 0, 0, 0, 9, 9]] {
            let packed = pack(value.clone());
            assert_eq!(packed[0], PACKED_1);
            assert_eq!(unpack(&packed).unwrap(), value);
        }
    }

    #[test]
    fn a_damaged_packed_value_is_an_error_not_a_panic() {
        let value = encode(&vec!["word"; 100]);
        let packed = pack(value.clone());
        assert_eq!(unpack(&packed[..3]), Err(PackError::Short(3)));
        let mut long = packed.clone();
        long[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(unpack(&long), Err(PackError::TooLong(_))));
        let mut short = packed.clone();
        short[1..5].copy_from_slice(&((value.len() - 1) as u32).to_le_bytes());
        assert!(unpack(&short).is_err());
        let mut longer = packed.clone();
        longer[1..5].copy_from_slice(&((value.len() + 1) as u32).to_le_bytes());
        assert!(unpack(&longer).is_err());
        // Every cut of the block is refused or, where LZ4 cannot tell, gives the wrong length.
        for cut in HEADER..packed.len() {
            assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
        }
    }
}
