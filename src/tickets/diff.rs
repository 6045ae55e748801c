//! What a change did to a ticket, as history records it: every top-level field that differs
//! between the ticket before and after, old → new as JSON, in field-name order.
//!
//! Each ticket is written once as JSON text, field by field ([`Fields`]), and the fields are
//! compared as text; only a field that changed is turned into a JSON value. Serialising is
//! deterministic (no hash maps in a ticket), so equal text is an equal field. Links are
//! compared as they are, never written: a problem with hundreds of incidents is not turned into
//! JSON twice for each change, and its change is the links removed and added.

use std::ops::Range;

use serde::Serialize;
use serde::ser::{self, Error as _, Impossible};
use serde_json::Value;

use crate::tickets::{FieldChange, Link, Ticket};

/// Fields that change with every write and say nothing on their own.
const UNRECORDED: [&str; 3] = ["updated_at", "history_len", "state_since"];

/// Fields a new ticket's first entry leaves out: its id and creation time are the ticket itself
/// (shown with it), not a change to it.
const IDENTITY: [&str; 2] = ["id", "created_at"];

/// An empty value, which a new ticket's first entry leaves out: "description: — → " says nothing.
fn empty(text: &[u8]) -> bool {
    matches!(text, b"\"\"" | b"[]" | b"{}" | b"null")
}

/// The field that is compared as it is, not as text.
const LINKS: &str = "links";

/// Every top-level field that differs between `before` (none for a new ticket) and `after`,
/// in field-name order.
pub(crate) fn diff(before: Option<&Ticket>, after: &Ticket) -> Vec<FieldChange> {
    let old = before.map(Fields::of).unwrap_or_default();
    let new = Fields::of(after);
    let (old, new) = (old.sorted(), new.sorted());
    let (mut i, mut j) = (0, 0);
    let mut changes = Vec::new();
    while i < old.len() || j < new.len() {
        let (name, was, is) = match (old.get(i), new.get(j)) {
            (Some(&(a, x)), Some(&(b, y))) if a == b => {
                (i, j) = (i + 1, j + 1);
                (a, Some(x), Some(y))
            }
            (Some(&(a, x)), Some(&(b, _))) if a < b => {
                i += 1;
                (a, Some(x), None)
            }
            (Some(&(a, x)), None) => {
                i += 1;
                (a, Some(x), None)
            }
            (_, Some(&(b, y))) => {
                j += 1;
                (b, None, Some(y))
            }
            (None, None) => break,
        };
        if was == is || UNRECORDED.contains(&name) {
            continue;
        }
        if before.is_none() && (IDENTITY.contains(&name) || is.is_none_or(empty)) {
            continue;
        }
        changes.push(FieldChange {
            field: name.to_string(),
            old: was.map_or(Value::Null, json),
            new: is.map_or(Value::Null, json),
        });
    }
    let no_links = Vec::new();
    let before_links = before.map_or(&no_links, |b| &b.process.links);
    if *before_links != after.process.links {
        let at = changes.partition_point(|c| c.field.as_str() < LINKS);
        changes.insert(at, links_change(before_links, &after.process.links));
    }
    changes
}

/// A field's text back as a value; the text is serde_json's own output, so it parses.
fn json(text: &[u8]) -> Value {
    serde_json::from_slice(text).unwrap_or(Value::Null)
}

/// The change of a ticket that gained `link` at the end of its links: what [`diff`] says of it,
/// without comparing the tickets.
pub(crate) fn link_added(link: Link) -> FieldChange {
    links_change(&[], &[link])
}

/// The links of `a` that `b` does not have, in `a`'s order.
fn only_in<'a>(a: &'a [Link], b: &[Link]) -> Vec<&'a Link> {
    a.iter().filter(|x| !b.contains(x)).collect()
}

/// A change of `links` as the links removed (`old`) and added (`new`), not the whole lists: a
/// problem with 400 incidents would otherwise write 800 links into the entry of its 401st.
fn links_change(old: &[Link], new: &[Link]) -> FieldChange {
    let (removed, added): (Vec<&Link>, Vec<&Link>) = if new.starts_with(old) {
        // The usual case, one link made: the list grew at its end.
        (Vec::new(), new[old.len()..].iter().collect())
    } else {
        (only_in(old, new), only_in(new, old))
    };
    let json = |links: Vec<&Link>| serde_json::to_value(links).unwrap_or(Value::Null);
    FieldChange {
        field: LINKS.into(),
        old: json(removed),
        new: json(added),
    }
}

/// A ticket's top-level fields but its links, as JSON text: one buffer, and each field's name
/// and value as ranges of it.
#[derive(Default)]
struct Fields {
    text: Vec<u8>,
    /// Name (without its quotes) and value, as ranges of `text`, in the order written.
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// A name written by `serialize_key` whose value is to come (a flattened map writes its
    /// entries in two calls); `None` inside: the links, whose value is skipped.
    key: Option<Option<Range<usize>>>,
}

impl Fields {
    fn of(t: &Ticket) -> Fields {
        let mut f = Fields {
            text: Vec::with_capacity(2048),
            fields: Vec::with_capacity(32),
            key: None,
        };
        // A ticket serialises as a map (its process fields are flattened into it) and writing
        // JSON into a vector does not fail; should a later field break that, say so rather
        // than record a change as no change without a word.
        if let Err(e) = t.serialize(&mut f) {
            tracing::error!(ticket = %t.id, error = %e, "History cannot describe a change: the ticket does not serialise as fields.");
        }
        f
    }

    /// `(name, value text)` in name order.
    fn sorted(&self) -> Vec<(&str, &[u8])> {
        let mut all: Vec<(&str, &[u8])> = self
            .fields
            .iter()
            .map(|(k, v)| {
                let name = std::str::from_utf8(&self.text[k.clone()]).unwrap_or_default();
                (name, &self.text[v.clone()])
            })
            .collect();
        all.sort_unstable_by_key(|(name, _)| *name);
        all
    }
}

fn unsupported() -> serde_json::Error {
    serde_json::Error::custom("a ticket serialises as a map of fields")
}

macro_rules! not_a_map {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), serde_json::Error> {
            Err(unsupported())
        })*
    };
}

/// The top level: only a map (or struct) of fields is taken.
impl ser::Serializer for &mut Fields {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    not_a_map!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), serde_json::Error> {
        Err(unsupported())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), serde_json::Error> {
        Err(unsupported())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), serde_json::Error> {
        Err(unsupported())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, serde_json::Error> {
        Err(unsupported())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, serde_json::Error> {
        Err(unsupported())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, serde_json::Error> {
        Err(unsupported())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, serde_json::Error> {
        Err(unsupported())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, serde_json::Error> {
        Err(unsupported())
    }
}

impl Fields {
    /// Writes a field's name; `None`: it is the links, which are not written.
    fn name<K: ?Sized + Serialize>(
        &mut self,
        key: &K,
    ) -> Result<Option<Range<usize>>, serde_json::Error> {
        let start = self.text.len();
        serde_json::to_writer(&mut self.text, key)?;
        // The name without its quotes (field names need no escapes).
        let name = start + 1..(self.text.len() - 1).max(start + 1);
        if &self.text[name.clone()] == LINKS.as_bytes() {
            self.text.truncate(start);
            return Ok(None);
        }
        Ok(Some(name))
    }

    /// Writes the value of the field named `name`.
    fn value<V: ?Sized + Serialize>(
        &mut self,
        name: Option<Range<usize>>,
        value: &V,
    ) -> Result<(), serde_json::Error> {
        let Some(name) = name else { return Ok(()) };
        let at = self.text.len();
        serde_json::to_writer(&mut self.text, value)?;
        self.fields.push((name, at..self.text.len()));
        Ok(())
    }
}

impl ser::SerializeMap for &mut Fields {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), serde_json::Error> {
        let name = self.name(key)?;
        self.key = Some(name);
        Ok(())
    }

    fn serialize_value<T: ?Sized + Serialize>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let name = self
            .key
            .take()
            .ok_or_else(|| serde_json::Error::custom("value without a key"))?;
        self.value(name, value)
    }

    fn serialize_entry<K: ?Sized + Serialize, V: ?Sized + Serialize>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), serde_json::Error> {
        let name = self.name(key)?;
        self.value(name, value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Fields {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let name = self.name(key)?;
        self.value(name, value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
