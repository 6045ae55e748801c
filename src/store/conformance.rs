//! One behavioural suite, run against every Store implementation.

use std::ops::Bound;

use crate::store::{MemoryStore, PostgresStore, SledStore, Store, Tree, WriteBatch};

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

    // several keys at once, across trees, in the order asked, missing ones as None
    assert_eq!(
        store
            .get_many(&[
                (Tree::History, b"a".to_vec()),
                (Tree::Tickets, b"zz".to_vec()),
                (Tree::Tickets, b"a".to_vec()),
                (Tree::History, b"a".to_vec()),
            ])
            .unwrap(),
        vec![
            Some(b"h".to_vec()),
            None,
            Some(b"1".to_vec()),
            Some(b"h".to_vec())
        ]
    );
    assert_eq!(store.get_many(&[]).unwrap(), Vec::<Option<Vec<u8>>>::new());

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
    layouts(store);
}

/// The ticket layouts that lean on prefix and reverse scans: links kept apart read back in
/// order, and tickets by service, newest first from a time bound.
fn layouts(store: &dyn Store) {
    use crate::store::layout::{by_service, get_ticket, links};
    use crate::tickets::{Kind, Link, LinkRel, Ticket};
    let ticket = |id: &str, minute: u32| -> Ticket {
        serde_json::from_value(serde_json::json!({
            "id": id, "state": "new", "title": id, "impact": "low", "urgency": "low",
            "priority": 5, "custom": {"service": "billing"},
            "created_at": format!("2026-12-01T08:{minute:02}:00Z"),
            "updated_at": "2026-12-01T09:00:00Z", "history_len": 0,
        }))
        .unwrap()
    };
    let mut batch = WriteBatch::default();
    let mut problem = ticket("PRB-000001", 0);
    for n in 1..=300u64 {
        problem.process.links.push(Link {
            rel: LinkRel::Causes,
            ticket: crate::tickets::TicketId {
                kind: Kind::Incident,
                number: n,
            },
        });
    }
    let (record, writes) = links::split(None, &mut problem);
    batch.put(Tree::Tickets, problem.id.key(), record);
    for (k, v) in writes {
        batch.put(Tree::TicketLinks, k, v.unwrap());
    }
    for (n, minute) in [(1, 10), (2, 20), (3, 30)] {
        let t = ticket(&format!("INC-{n:06}"), minute);
        for (k, v) in by_service::changes(None, &t) {
            batch.put(Tree::TicketsByService, k, v.unwrap());
        }
    }
    store.apply(batch).unwrap();
    assert_eq!(get_ticket(store, problem.id).unwrap(), Some(problem));
    let since = "2026-12-01T08:20:00Z".parse().unwrap();
    let mut found = Vec::new();
    by_service::scan(
        store,
        "billing",
        true,
        Kind::Incident,
        Some(since),
        &mut |f| {
            found.push(f.id.to_string());
            true
        },
    )
    .unwrap();
    assert_eq!(found, ["INC-000003", "INC-000002"]);
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

/// A fresh, empty PostgreSQL database on the server named by `ITSMD_TEST_PG_URL` (a libpq
/// key=value string without dbname; `eval "$(bash .ci/postgres.sh)"` starts a throwaway
/// server and sets it, as `.ci/run` does).
pub(crate) fn postgres_database(name: &str) -> String {
    let server = std::env::var("ITSMD_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "ITSMD_TEST_PG_URL is not set: the PostgreSQL backend is tested against a real \
             server; run `eval \"$(bash .ci/postgres.sh)\"` first (.ci/run does)"
        )
    });
    let db = format!("itsmd_test_{name}_{}", std::process::id());
    let mut admin =
        postgres::Client::connect(&format!("{server} dbname=postgres"), postgres::NoTls)
            .expect("connect to the test PostgreSQL server");
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        admin.batch_execute(&sql).expect("create a test database");
    }
    format!("{server} dbname={db}")
}

#[test]
fn postgres_store_conforms() {
    let url = postgres_database("conforms");
    suite(&PostgresStore::open(&url).unwrap());
}

#[test]
fn postgres_store_keeps_committed_batches_across_reconnect_and_scans_in_pages() {
    let url = postgres_database("pages");
    let store = PostgresStore::open(&url).unwrap();
    // More than a few pages, so scans from both ends meet in the middle.
    let mut b = WriteBatch::default();
    for i in 0u32..1_300 {
        b.put(
            Tree::Events,
            i.to_be_bytes().to_vec(),
            i.to_be_bytes().to_vec(),
        );
    }
    store.apply(b).unwrap();
    drop(store);
    // A second open migrates nothing and sees everything.
    let store = PostgresStore::open(&url).unwrap();
    let forward: Vec<u32> = collect(store.range(Tree::Events, Bound::Unbounded, Bound::Unbounded))
        .into_iter()
        .map(|(k, _)| u32::from_be_bytes(k.try_into().unwrap()))
        .collect();
    assert_eq!(forward, (0..1_300).collect::<Vec<_>>());
    let mut both = store.range(Tree::Events, Bound::Unbounded, Bound::Unbounded);
    let mut seen = Vec::new();
    loop {
        match (both.next(), both.next_back()) {
            (Some(a), Some(b)) => {
                seen.push(a.unwrap().0);
                seen.push(b.unwrap().0);
            }
            (Some(a), None) | (None, Some(a)) => seen.push(a.unwrap().0),
            (None, None) => break,
        }
    }
    seen.sort();
    let all: Vec<Vec<u8>> = (0u32..1_300).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(seen, all, "both ends meet without a gap or a repeat");
    let reversed: Vec<_> = store
        .range(
            Tree::Events,
            Bound::Excluded(1_000u32.to_be_bytes().to_vec()),
            Bound::Unbounded,
        )
        .rev()
        .map(|r| u32::from_be_bytes(r.unwrap().0.try_into().unwrap()))
        .collect();
    assert_eq!(reversed, (1_001..1_300).rev().collect::<Vec<_>>());
}
