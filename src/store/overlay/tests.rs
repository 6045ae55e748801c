//! The overlay reads as the store would after the pending batch: checked against a second
//! store that has the batch applied, over many random stores and batches.

use std::ops::Bound;
use std::sync::Arc;

use super::Overlay;
use crate::store::{Entry, MemoryStore, Store, Tree, WriteBatch};
use crate::test_rng::Rng;

/// A key of the few the cases share, so that writes meet.
fn key(rng: &mut Rng) -> Vec<u8> {
    vec![b'k', rng.below(24) as u8]
}

/// A store with random entries in two trees, a random batch over the same keys, the overlay
/// of that batch over the store, and the store with the batch applied.
fn case(seed: u64) -> (Overlay, MemoryStore, Rng) {
    let mut rng = Rng::seeded(seed);
    let base = MemoryStore::new();
    let after = MemoryStore::new();
    let mut stored = WriteBatch::default();
    for _ in 0..rng.below(20) {
        let tree = [Tree::Tickets, Tree::History][rng.below(2) as usize];
        stored.put(tree, key(&mut rng), vec![b'o', rng.below(9) as u8]);
    }
    base.apply(stored.clone()).expect("base");
    after.apply(stored).expect("base");
    let mut pending = WriteBatch::default();
    for _ in 0..rng.below(16) {
        let tree = [Tree::Tickets, Tree::History][rng.below(2) as usize];
        if rng.below(3) == 0 {
            pending.delete(tree, key(&mut rng));
        } else {
            pending.put(tree, key(&mut rng), vec![b'n', rng.below(9) as u8]);
        }
    }
    after.apply(pending.clone()).expect("pending");
    let overlay = Overlay::new(Arc::new(base));
    overlay.set(&pending);
    (overlay, after, rng)
}

fn bounds(rng: &mut Rng) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let bound = |rng: &mut Rng| match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(key(rng)),
        _ => Bound::Excluded(key(rng)),
    };
    (bound(rng), bound(rng))
}

fn all(i: crate::store::ScanIter<'_>) -> Vec<Entry> {
    i.collect::<Result<_, _>>().expect("scan")
}

#[test]
fn reads_through_the_pending_batch_as_the_store_will_hold_it() {
    for seed in 0..2_000 {
        let (overlay, after, mut rng) = case(seed);
        let keys: Vec<(Tree, Vec<u8>)> = (0..8)
            .map(|_| {
                (
                    [Tree::Tickets, Tree::History][rng.below(2) as usize],
                    key(&mut rng),
                )
            })
            .collect();
        for (tree, key) in &keys {
            assert_eq!(
                overlay.get(*tree, key).expect("get"),
                after.get(*tree, key).expect("get"),
                "seed {seed}: get {tree:?} {key:?}"
            );
        }
        assert_eq!(
            overlay.get_many(&keys).expect("get_many"),
            after.get_many(&keys).expect("get_many"),
            "seed {seed}: get_many"
        );
        let tree = [Tree::Tickets, Tree::History][rng.below(2) as usize];
        let (start, end) = bounds(&mut rng);
        let want = all(after.range(tree, start.clone(), end.clone()));
        assert_eq!(
            all(overlay.range(tree, start.clone(), end.clone())),
            want,
            "seed {seed}: range {start:?}..{end:?}"
        );
        let mut backwards = all(Box::new(
            overlay.range(tree, start.clone(), end.clone()).rev(),
        ));
        backwards.reverse();
        assert_eq!(backwards, want, "seed {seed}: range from the back");
        // From both ends at once, in random turns: each entry once, in order.
        let mut both = overlay.range(tree, start.clone(), end.clone());
        let (mut front, mut back) = (Vec::new(), Vec::new());
        loop {
            let (next, side) = if rng.below(2) == 0 {
                (both.next(), &mut front)
            } else {
                (both.next_back(), &mut back)
            };
            match next {
                Some(e) => side.push(e.expect("entry")),
                None => break,
            }
        }
        assert!(
            both.next().is_none() && both.next_back().is_none(),
            "seed {seed}: ends met"
        );
        drop(both);
        back.reverse();
        front.extend(back);
        assert_eq!(front, want, "seed {seed}: both ends");
        let limit = rng.below(6) as usize;
        assert_eq!(
            overlay
                .scan(tree, start.clone(), end.clone(), limit)
                .expect("scan"),
            want.into_iter().take(limit).collect::<Vec<_>>(),
            "seed {seed}: scan {start:?}..{end:?} limit {limit}"
        );
    }
}

#[test]
fn reads_the_store_alone_once_cleared_and_writes_go_beneath() {
    let base = Arc::new(MemoryStore::new());
    let overlay = Overlay::new(base.clone());
    let mut pending = WriteBatch::default();
    pending.put(Tree::Tickets, b"a".to_vec(), b"1".to_vec());
    overlay.set(&pending);
    assert_eq!(
        overlay.get(Tree::Tickets, b"a").expect("get"),
        Some(b"1".to_vec())
    );
    assert_eq!(base.get(Tree::Tickets, b"a").expect("get"), None);
    overlay.clear();
    assert_eq!(overlay.get(Tree::Tickets, b"a").expect("get"), None);
    overlay.apply(pending).expect("apply");
    assert_eq!(
        base.get(Tree::Tickets, b"a").expect("get"),
        Some(b"1".to_vec())
    );
}
