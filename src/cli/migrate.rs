//! `itsmd migrate --from SOURCE --to TARGET`: copies a whole store from one backend to the
//! other (an embedded data directory to PostgreSQL, or back), with every daemon on either
//! stopped. SOURCE and TARGET are each a data directory or a PostgreSQL connection string
//! (`postgres://…`, `postgresql://…`, or libpq `key=value` words).
//!
//! A target that holds anything is refused unless `--replace` says to empty it first. The
//! copy goes tree by tree in bounded batches; then both stores are read again and compared
//! by the number of entries in each tree and a SHA-256 over every tree, key and value, in
//! key order, and both are printed: the copy is only reported done when they are equal.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::config::{StoreBackend, StoreConfig};
use crate::store::{Store, StoreError, Tree, WriteBatch};

/// Entries written per batch while copying or emptying.
const CHUNK: usize = 2000;

/// What a store holds, for comparing two of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Entries per tree name; trees without entries left out.
    pub trees: BTreeMap<&'static str, u64>,
    /// SHA-256, in hex, over every tree prefix, key and value (each length-prefixed), trees in
    /// [`Tree::ALL`] order and keys in order.
    pub sha256: String,
}

impl Summary {
    pub fn entries(&self) -> u64 {
        self.trees.values().sum()
    }
}

/// Reads all of `store` into its [`Summary`].
pub fn summarise(store: &dyn Store) -> Result<Summary, StoreError> {
    let mut trees = BTreeMap::new();
    let mut hash = Sha256::new();
    for tree in Tree::ALL {
        let mut n = 0u64;
        for item in store.range(tree, Bound::Unbounded, Bound::Unbounded) {
            let (key, value) = item?;
            hash.update([tree.prefix()]);
            hash.update((key.len() as u64).to_be_bytes());
            hash.update(&key);
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(&value);
            n += 1;
        }
        if n > 0 {
            trees.insert(tree.name(), n);
        }
    }
    let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Summary { trees, sha256 })
}

/// Where a store is, as the command line names it.
pub fn location(arg: &str) -> StoreConfig {
    let postgres = arg.starts_with("postgres://")
        || arg.starts_with("postgresql://")
        || arg
            .split_whitespace()
            .any(|w| w.starts_with("host=") || w.starts_with("dbname="));
    if postgres {
        StoreConfig {
            backend: StoreBackend::Postgres,
            url: Some(arg.to_string()),
            ..StoreConfig::default()
        }
    } else {
        StoreConfig {
            backend: StoreBackend::Embedded,
            data_dir: PathBuf::from(arg),
            ..StoreConfig::default()
        }
    }
}

/// Copies `from` into `to` and checks the copy; prints what each holds.
pub fn run(from: &str, to: &str, replace: bool) -> anyhow::Result<()> {
    let (source_at, target_at) = (location(from), location(to));
    if source_at == target_at {
        anyhow::bail!("--from and --to name the same store");
    }
    if source_at.backend == StoreBackend::Embedded && !source_at.data_dir.is_dir() {
        anyhow::bail!(
            "the source {} is not a folder",
            source_at.data_dir.display()
        );
    }
    let source = crate::store::open(&source_at)
        .with_context(|| format!("cannot open the source ({})", describe(&source_at)))?;
    if is_empty(&*source)? {
        anyhow::bail!(
            "the source ({}) holds nothing: is it the right one?",
            describe(&source_at)
        );
    }
    let target = open_target(&target_at)?;
    if !is_empty(&*target)? {
        if !replace {
            anyhow::bail!(
                "the target ({}) is not empty; pass --replace to delete what it holds first",
                describe(&target_at)
            );
        }
        let removed = empty(&*target)?;
        eprintln!(
            "Emptied the target ({}): {removed} entries deleted.",
            describe(&target_at)
        );
    }
    let copied = copy(&*source, &*target)?;
    let (before, after) = (summarise(&*source)?, summarise(&*target)?);
    print_comparison(
        &before,
        &after,
        &describe(&source_at),
        &describe(&target_at),
    );
    if before != after {
        anyhow::bail!(
            "the target does not match the source after copying {copied} entries; the target \
             is left as it is for inspection, and the source is unchanged"
        );
    }
    eprintln!(
        "Migrated {copied} entries from {} to {}; counts and checksum match.",
        describe(&source_at),
        describe(&target_at)
    );
    Ok(())
}

fn describe(at: &StoreConfig) -> String {
    crate::store::describe(at)
}

/// Opens the target, creating an embedded one's directory (only if it is new or empty, so a
/// typo cannot fill some other folder).
fn open_target(at: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    if at.backend == StoreBackend::Embedded
        && let Ok(mut entries) = std::fs::read_dir(&at.data_dir)
        && entries.next().is_some()
        && !at.data_dir.join("conf").exists()
    {
        anyhow::bail!(
            "{} is a folder that holds something other than an itsmd store; give a new or \
             empty folder",
            at.data_dir.display()
        );
    }
    crate::store::open(at).with_context(|| format!("cannot open the target ({})", describe(at)))
}

fn is_empty(store: &dyn Store) -> Result<bool, StoreError> {
    for tree in Tree::ALL {
        if !store
            .scan(tree, Bound::Unbounded, Bound::Unbounded, 1)?
            .is_empty()
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes every entry of `store`; how many.
fn empty(store: &dyn Store) -> Result<u64, StoreError> {
    let mut n = 0;
    for tree in Tree::ALL {
        loop {
            let keys = store.scan(tree, Bound::Unbounded, Bound::Unbounded, CHUNK)?;
            if keys.is_empty() {
                break;
            }
            let mut batch = WriteBatch::default();
            for (key, _) in keys {
                batch.delete(tree, key);
                n += 1;
            }
            store.apply(batch)?;
        }
    }
    store.flush()?;
    Ok(n)
}

/// Copies every entry, tree by tree in batches of [`CHUNK`]; how many.
fn copy(source: &dyn Store, target: &dyn Store) -> Result<u64, StoreError> {
    let mut n = 0;
    for tree in Tree::ALL {
        let mut batch = WriteBatch::default();
        for item in source.range(tree, Bound::Unbounded, Bound::Unbounded) {
            let (key, value) = item?;
            batch.put(tree, key, value);
            n += 1;
            if batch.len() >= CHUNK {
                target.apply(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            target.apply(batch)?;
        }
    }
    target.flush()?;
    Ok(n)
}

fn print_comparison(source: &Summary, target: &Summary, from: &str, to: &str) {
    let mut names: Vec<&str> = source
        .trees
        .keys()
        .chain(target.trees.keys())
        .copied()
        .collect();
    names.sort_unstable();
    names.dedup();
    println!("{:<20} {:>10} {:>10}", "tree", "source", "target");
    for name in names {
        let count = |s: &Summary| s.trees.get(name).copied().unwrap_or(0);
        println!("{name:<20} {:>10} {:>10}", count(source), count(target));
    }
    println!(
        "{:<20} {:>10} {:>10}",
        "all",
        source.entries(),
        target.entries()
    );
    println!("source sha256 {} ({from})", source.sha256);
    println!("target sha256 {} ({to})", target.sha256);
}
