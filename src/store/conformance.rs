//! One behavioural suite, run against every Store implementation.

use std::ops::Bound;

use crate::store::MemoryStore;

use crate::store::SledStore;

use crate::store::Store;

use crate::store::Tree;

use crate::store::WriteBatch;

fn collect(iter: crate::store::ScanIter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter.map(|r| r.expect("scan item")).collect()
}

fn suite(store: &dyn Store) {
    // get on an empty store
    assert_eq!(store.get(Tree::Tickets, b"a").unwrap(), None);

    // a batch across trees is applied as a whole
    let mut b = WriteBatch::default();
    b.put(Tree::Tickets, b"a".to_vec(), b"1".to_vec());
    b.put(Tree::Tickets, b"b".to_vec(), b"2".to_vec());
    b.put(Tree::Tickets, b"c".to_vec(), b"3".to_vec());
    b.put(Tree::History, b"a".to_vec(), b"h".to_vec());
    b.put(Tree::Meta, vec![0xFF, 0xFF], b"m".to_vec());
    store.apply(b).unwrap();
    store.flush().unwrap();
    assert_eq!(store.get(Tree::Tickets, b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(store.get(Tree::History, b"a").unwrap(), Some(b"h".to_vec()));
    // trees are separate namespaces
    assert_eq!(store.get(Tree::History, b"b").unwrap(), None);

    // later writes in one batch win; deletes apply
    let mut b = WriteBatch::default();
    b.put(Tree::Tickets, b"b".to_vec(), b"x".to_vec());
    b.put(Tree::Tickets, b"b".to_vec(), b"y".to_vec());
    b.delete(Tree::Tickets, b"c".to_vec());
    store.apply(b).unwrap();
    assert_eq!(store.get(Tree::Tickets, b"b").unwrap(), Some(b"y".to_vec()));
    assert_eq!(store.get(Tree::Tickets, b"c").unwrap(), None);

    // full scans stay inside their tree and are ordered
    let all = collect(store.range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded));
    assert_eq!(
        all,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"y".to_vec())
        ]
    );
    let meta = collect(store.range(Tree::Meta, Bound::Unbounded, Bound::Unbounded));
    assert_eq!(meta, vec![(vec![0xFF, 0xFF], b"m".to_vec())]);

    // reverse iteration
    let rev: Vec<_> = store
        .range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded)
        .rev()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(rev, vec![b"b".to_vec(), b"a".to_vec()]);

    // bounded ranges and prefix scans
    let mut b = WriteBatch::default();
    for k in [&b"k1"[..], b"k2", b"k3", b"l1", b"k2a"] {
        b.put(Tree::Events, k.to_vec(), k.to_vec());
    }
    store.apply(b).unwrap();
    let keys: Vec<_> = collect(store.range(
        Tree::Events,
        Bound::Excluded(b"k1".to_vec()),
        Bound::Included(b"k3".to_vec()),
    ))
    .into_iter()
    .map(|e| e.0)
    .collect();
    assert_eq!(keys, vec![b"k2".to_vec(), b"k2a".to_vec(), b"k3".to_vec()]);
    let keys: Vec<_> = collect(store.scan_prefix(Tree::Events, b"k2"))
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(keys, vec![b"k2".to_vec(), b"k2a".to_vec()]);
    assert!(collect(store.scan_prefix(Tree::Events, b"z")).is_empty());

    // bounded scans: at most `limit`, in order, from where asked
    let keys: Vec<_> = store
        .scan(
            Tree::Events,
            Bound::Excluded(b"k1".to_vec()),
            Bound::Unbounded,
            2,
        )
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(keys, vec![b"k2".to_vec(), b"k2a".to_vec()]);
    assert!(
        store
            .scan(Tree::Events, Bound::Unbounded, Bound::Unbounded, 0)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn memory_store_conforms() {
    suite(&MemoryStore::new());
}

#[test]
fn sled_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    suite(&SledStore::open(dir.path(), 8 << 20).unwrap());
}

#[test]
fn sled_store_keeps_flushed_batches_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), 8 << 20).unwrap();
        let mut b = WriteBatch::default();
        b.put(Tree::Tickets, b"t".to_vec(), b"v".to_vec());
        s.apply(b).unwrap();
        s.flush().unwrap();
    }
    let s = SledStore::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(s.get(Tree::Tickets, b"t").unwrap(), Some(b"v".to_vec()));
}
