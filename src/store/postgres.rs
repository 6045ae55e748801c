//! The PostgreSQL backend: every logical [`Tree`] in one table `itsmd_kv (tree, key, value)`,
//! ordered by `(tree, key)` as bytes, so ranges and prefixes scan in the same order as sled.
//!
//! A batch is one transaction (`apply`), committed with the server's durability
//! (`synchronous_commit` as configured), so [`Store::flush`] has nothing left to do. Scans read
//! in pages from either end, so a long scan never holds the whole range in memory. The schema is
//! created and migrated by [`migrate`] with numbered migrations recorded in
//! `itsmd_schema_migrations`; views (`itsmd_tickets`, `itsmd_history`, `itsmd_events`) show
//! the JSON of tickets, history and the journal to plain SQL.
//!
//! The client is `postgres` (the synchronous face of `tokio-postgres`), owned by one worker
//! thread that runs every query: it drives its own small runtime, which must never be entered
//! from a thread that is already running one, whichever thread calls the store.

use std::ops::Bound;
use std::sync::{Mutex, mpsc};

use postgres::types::ToSql;
use postgres::{Client, NoTls};

use crate::store::{Entry, ScanIter, Store, StoreError, Tree, Write, WriteBatch};

/// Rows fetched per round trip while scanning.
const PAGE: i64 = 512;

/// Numbered schema migrations, applied in order, each once. Never edit one that shipped: add
/// the next.
const MIGRATIONS: &[(i32, &str)] = &[
    (
    1,
    "CREATE TABLE itsmd_kv (
         tree  smallint NOT NULL,
         key   bytea    NOT NULL,
         value bytea    NOT NULL,
         PRIMARY KEY (tree, key)
     );
     -- Values are a format-version byte and JSON: these views decode them for SQL readers.
     CREATE VIEW itsmd_tickets AS
         SELECT t.ticket->>'id' AS id, t.ticket->>'state' AS state,
                t.ticket->>'group' AS assigned_group, (t.ticket->>'priority')::int AS priority,
                (t.ticket->>'created_at')::timestamptz AS created_at,
                (t.ticket->>'updated_at')::timestamptz AS updated_at, t.ticket
           FROM (SELECT convert_from(substring(value from 2), 'UTF8')::jsonb AS ticket
                   FROM itsmd_kv WHERE tree = 2) t;
     CREATE VIEW itsmd_history AS
         SELECT convert_from(substring(key from 1 for 3), 'UTF8')
                    || '-' || lpad(('x' || encode(substring(key from 4 for 8), 'hex'))::bit(64)::bigint::text, 6, '0')
                    AS ticket,
                convert_from(substring(value from 2), 'UTF8')::jsonb AS entry
           FROM itsmd_kv WHERE tree = 3;
     CREATE VIEW itsmd_events AS
         SELECT ('x' || encode(key, 'hex'))::bit(64)::bigint AS id,
                convert_from(substring(value from 2), 'UTF8')::jsonb AS event
           FROM itsmd_kv WHERE tree = 1;",
    ),
    (
        2,
        "-- Several nodes, one writer: the engine's lease (with its fencing token) and the
     -- inbox every node's intake writes to and the leader's engine takes from.
     CREATE TABLE itsmd_lease (
         name       text        PRIMARY KEY,
         holder     text        NOT NULL DEFAULT '',
         token      bigint      NOT NULL DEFAULT 0,
         expires_at timestamptz NOT NULL DEFAULT '-infinity'
     );
     INSERT INTO itsmd_lease (name) VALUES ('engine');
     CREATE TABLE itsmd_inbox (
         id          bigserial   PRIMARY KEY,
         body        bytea       NOT NULL,
         received_at timestamptz NOT NULL DEFAULT now(),
         answered_at timestamptz,
         answer      bytea
     );
     CREATE INDEX itsmd_inbox_pending ON itsmd_inbox (id) WHERE answered_at IS NULL;",
    ),
];

pub struct PostgresStore {
    /// Jobs for the worker thread that owns the connection. Behind a lock only because a
    /// `Sender` clone per caller would be no cheaper.
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// A query to run on the worker's connection.
type Job = Box<dyn FnOnce(&mut Client) + Send>;

impl PostgresStore {
    /// Connects to `url` (a libpq-style connection string or `postgres://` URL) and brings
    /// the schema up to date.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, opened) = mpsc::channel();
        let url = url.to_string();
        std::thread::Builder::new()
            .name("itsmd-postgres".into())
            .spawn(move || {
                let mut client = match connect(&url).and_then(|mut c| migrate(&mut c).map(|()| c)) {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    if client.is_closed() {
                        // A lost link: the next job gets a fresh connection (or its error).
                        match connect(&url) {
                            Ok(c) => client = c,
                            Err(e) => tracing::warn!(error = %e, "PostgreSQL connection lost; reconnecting on the next query."),
                        }
                    }
                    job(&mut client);
                }
            })
            .map_err(|e| StoreError::Open {
                path: "postgres".into(),
                error: e.into(),
            })?;
        opened.recv().map_err(|e| StoreError::Open {
            path: "postgres".into(),
            error: e.into(),
        })??;
        Ok(PostgresStore {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `f` on the worker's connection and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |client| {
            let _ = tx.send(f(client));
        });
        let stopped = || StoreError::Io {
            op: "query",
            source: "the PostgreSQL worker thread has stopped".into(),
        };
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// One page of `tree` within the bounds, from the low end (`forward`) or the high end.
    fn page(
        &self,
        tree: Tree,
        low: &Bound<Vec<u8>>,
        high: &Bound<Vec<u8>>,
        forward: bool,
        limit: i64,
    ) -> Result<Vec<Entry>, StoreError> {
        let (low, high) = (low.clone(), high.clone());
        self.call(move |client| page(client, tree, &low, &high, forward, limit))
    }
}

fn page(
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
    let rows = client
        .query(sql.as_str(), &params)
        .map_err(|e| io("scan", e))?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

impl Store for PostgresStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.call(move |client| {
            let row = client
                .query_opt(
                    "SELECT value FROM itsmd_kv WHERE tree = $1 AND key = $2",
                    &[&tree_id(tree), &key],
                )
                .map_err(|e| io("get", e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> ScanIter<'_> {
        Box::new(Pages {
            store: self,
            tree,
            low: start,
            high: end,
            front: Vec::new().into_iter(),
            back: Vec::new().into_iter(),
            done: false,
        })
    }

    fn scan(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.page(
            tree,
            &start,
            &end,
            true,
            limit.min(i64::MAX as usize) as i64,
        )
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let rows = Rows::of(batch);
        self.call(move |client| {
            let mut txn = client.transaction().map_err(|e| io("begin", e))?;
            rows.write(&mut txn)?;
            txn.commit().map_err(|e| io("commit", e))
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every apply committed durably already.
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.call(|client| {
            client
                .query_one("SELECT pg_total_relation_size('itsmd_kv')", &[])
                .map_err(|e| io("size", e))
                .map(|r| r.try_get::<_, i64>(0).map_or(0, |n| n.max(0) as u64))
        })
        .unwrap_or(0)
    }
}

/// The name of the engine's lease row.
const ENGINE_LEASE: &str = "engine";

impl crate::store::Shared for PostgresStore {
    fn take_lease(&self, node: &str, lease_ms: u64) -> Result<crate::store::Lease, StoreError> {
        let node = node.to_string();
        let ms = lease_ms as f64;
        self.call(move |client| {
            // A new holder, or the same one after its lease ran out, is a new term: the
            // token goes up, and every batch of an older term is refused.
            let taken = client
                .query_opt(
                    "UPDATE itsmd_lease SET
                         token = CASE WHEN holder = $2 AND expires_at >= now()
                                      THEN token ELSE token + 1 END,
                         holder = $2,
                         expires_at = now() + make_interval(secs => $3::float8 / 1000.0)
                      WHERE name = $1 AND (expires_at < now() OR holder = $2)
                      RETURNING token",
                    &[&ENGINE_LEASE, &node, &ms],
                )
                .map_err(|e| io("take the lease", e))?;
            if let Some(row) = taken {
                return Ok(crate::store::Lease {
                    holder: node,
                    token: row.get(0),
                    mine: true,
                });
            }
            let row = client
                .query_one(
                    "SELECT holder, token FROM itsmd_lease WHERE name = $1",
                    &[&ENGINE_LEASE],
                )
                .map_err(|e| io("read the lease", e))?;
            Ok(crate::store::Lease {
                holder: row.get(0),
                token: row.get(1),
                mine: false,
            })
        })
    }

    fn release_lease(&self, node: &str, token: i64) -> Result<(), StoreError> {
        let node = node.to_string();
        self.call(move |client| {
            client
                .execute(
                    "UPDATE itsmd_lease SET expires_at = '-infinity'
                      WHERE name = $1 AND holder = $2 AND token = $3",
                    &[&ENGINE_LEASE, &node, &token],
                )
                .map(|_| ())
                .map_err(|e| io("release the lease", e))
        })
    }

    fn push(&self, bodies: Vec<Vec<u8>>) -> Result<Vec<i64>, StoreError> {
        self.call(move |client| {
            let mut txn = client.transaction().map_err(|e| io("begin", e))?;
            let insert = txn
                .prepare("INSERT INTO itsmd_inbox (body) VALUES ($1) RETURNING id")
                .map_err(|e| io("inbox insert", e))?;
            let mut ids = Vec::with_capacity(bodies.len());
            for body in &bodies {
                let row = txn
                    .query_one(&insert, &[body])
                    .map_err(|e| io("inbox insert", e))?;
                ids.push(row.get(0));
            }
            txn.commit().map_err(|e| io("inbox commit", e))?;
            Ok(ids)
        })
    }

    fn answers(&self, ids: Vec<i64>) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        self.call(move |client| {
            let rows = client
                .query(
                    "SELECT id, answer FROM itsmd_inbox WHERE id = ANY($1) AND answer IS NOT NULL",
                    &[&ids],
                )
                .map_err(|e| io("inbox answers", e))?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn pending(&self, limit: usize) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.call(move |client| {
            let rows = client
                .query(
                    "SELECT id, body FROM itsmd_inbox WHERE answered_at IS NULL ORDER BY id LIMIT $1",
                    &[&limit],
                )
                .map_err(|e| io("inbox read", e))?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn commit_fenced(
        &self,
        batch: WriteBatch,
        token: i64,
        answers: Vec<(i64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let rows = Rows::of(batch);
        let (ids, bodies): (Vec<i64>, Vec<Vec<u8>>) = answers.into_iter().unzip();
        self.call(move |client| {
            let mut txn = client.transaction().map_err(|e| io("begin", e))?;
            // Shared: a node taking the lead (an UPDATE) waits for this commit, and this
            // one sees any takeover that committed before.
            let lease = txn
                .query_one(
                    "SELECT holder, token FROM itsmd_lease WHERE name = $1 FOR SHARE",
                    &[&ENGINE_LEASE],
                )
                .map_err(|e| io("fence", e))?;
            let current: i64 = lease.get(1);
            if current != token {
                return Err(StoreError::Fenced {
                    token,
                    current,
                    holder: lease.get(0),
                });
            }
            rows.write(&mut txn)?;
            if !ids.is_empty() {
                let answered = txn
                    .execute(
                        "UPDATE itsmd_inbox i SET answer = a.answer, answered_at = now()
                           FROM unnest($1::bigint[], $2::bytea[]) AS a(id, answer)
                          WHERE i.id = a.id AND i.answered_at IS NULL",
                        &[&ids, &bodies],
                    )
                    .map_err(|e| io("inbox answer", e))?;
                if answered != ids.len() as u64 {
                    return Err(StoreError::Io {
                        op: "inbox answer",
                        source: format!(
                            "{} of the batch's {} inbox rows were answered already; the batch \
                             is not written twice",
                            ids.len() as u64 - answered,
                            ids.len()
                        )
                        .into(),
                    });
                }
            }
            txn.commit().map_err(|e| io("commit", e))
        })
    }

    fn depth(&self) -> Result<u64, StoreError> {
        self.call(|client| {
            let row = client
                .query_one(
                    "SELECT count(*) FROM itsmd_inbox WHERE answered_at IS NULL",
                    &[],
                )
                .map_err(|e| io("inbox depth", e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    fn prune(&self, older_than_secs: u64) -> Result<u64, StoreError> {
        let secs = older_than_secs as f64;
        self.call(move |client| {
            client
                .execute(
                    "DELETE FROM itsmd_inbox
                      WHERE answered_at < now() - make_interval(secs => $1::float8)",
                    &[&secs],
                )
                .map_err(|e| io("inbox prune", e))
        })
    }
}

/// A batch as the rows it leaves: each key's last write only, deletes and puts apart.
struct Rows {
    del_trees: Vec<i16>,
    del_keys: Vec<Vec<u8>>,
    put_trees: Vec<i16>,
    put_keys: Vec<Vec<u8>>,
    put_values: Vec<Vec<u8>>,
}

impl Rows {
    fn of(batch: WriteBatch) -> Rows {
        // A later write to the same key wins: keep each key's last write only.
        let mut last: std::collections::BTreeMap<(i16, Vec<u8>), Option<Vec<u8>>> =
            std::collections::BTreeMap::new();
        for w in batch.writes {
            match w {
                Write::Put { tree, key, value } => {
                    last.insert((tree_id(tree), key), Some(value));
                }
                Write::Delete { tree, key } => {
                    last.insert((tree_id(tree), key), None);
                }
            }
        }
        let (mut put_trees, mut put_keys, mut put_values) = (Vec::new(), Vec::new(), Vec::new());
        let (mut del_trees, mut del_keys) = (Vec::new(), Vec::new());
        for ((tree, key), value) in last {
            match value {
                Some(v) => {
                    put_trees.push(tree);
                    put_keys.push(key);
                    put_values.push(v);
                }
                None => {
                    del_trees.push(tree);
                    del_keys.push(key);
                }
            }
        }
        Rows {
            del_trees,
            del_keys,
            put_trees,
            put_keys,
            put_values,
        }
    }

    fn write(&self, txn: &mut postgres::Transaction<'_>) -> Result<(), StoreError> {
        let Rows {
            del_trees,
            del_keys,
            put_trees,
            put_keys,
            put_values,
        } = self;
        if !del_keys.is_empty() {
            txn.execute(
                "DELETE FROM itsmd_kv k USING unnest($1::smallint[], $2::bytea[]) AS d(tree, key)
                  WHERE k.tree = d.tree AND k.key = d.key",
                &[del_trees, del_keys],
            )
            .map_err(|e| io("apply", e))?;
        }
        if !put_keys.is_empty() {
            txn.execute(
                "INSERT INTO itsmd_kv (tree, key, value)
                 SELECT * FROM unnest($1::smallint[], $2::bytea[], $3::bytea[])
                 ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
                &[put_trees, put_keys, put_values],
            )
            .map_err(|e| io("apply", e))?;
        }
        Ok(())
    }
}

/// A range read a page at a time from whichever end is asked for; the two ends meet in the
/// middle without reading anything twice.
struct Pages<'a> {
    store: &'a PostgresStore,
    tree: Tree,
    /// What is left to read: the ends move inwards as pages are taken.
    low: Bound<Vec<u8>>,
    high: Bound<Vec<u8>>,
    front: std::vec::IntoIter<Entry>,
    back: std::vec::IntoIter<Entry>,
    /// The database has nothing more between `low` and `high`.
    done: bool,
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

/// The tree's number in the table: its stable on-disk prefix.
fn tree_id(tree: Tree) -> i16 {
    i16::from(tree.prefix())
}

fn connect(url: &str) -> Result<Client, StoreError> {
    Client::connect(url, NoTls).map_err(|e| StoreError::Open {
        // The URL may carry a password: name the server only.
        path: describe(url),
        error: e.into(),
    })
}

/// Applies every migration not yet recorded, each in its own transaction.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS itsmd_schema_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(|e| io("migrate", e))?;
    for (version, sql) in MIGRATIONS {
        let mut txn = client.transaction().map_err(|e| io("migrate", e))?;
        // One migrator at a time, whichever node starts first.
        txn.batch_execute("LOCK TABLE itsmd_schema_migrations IN EXCLUSIVE MODE")
            .map_err(|e| io("migrate", e))?;
        let done = txn
            .query_opt(
                "SELECT 1 FROM itsmd_schema_migrations WHERE version = $1",
                &[version],
            )
            .map_err(|e| io("migrate", e))?
            .is_some();
        if !done {
            txn.batch_execute(sql).map_err(|e| io("migrate", e))?;
            txn.execute(
                "INSERT INTO itsmd_schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .map_err(|e| io("migrate", e))?;
            tracing::info!(version, "Store schema migrated.");
        }
        txn.commit().map_err(|e| io("migrate", e))?;
    }
    Ok(())
}

/// `host:port/dbname` of a connection string, without user or password.
pub(crate) fn describe(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    postgres::config::Host::Tcp(name) => name.clone(),
                    postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_default();
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres {host}:{port}/{}",
                c.get_dbname().unwrap_or_default()
            )
        }
        Err(_) => "postgres (an unreadable connection string)".to_string(),
    }
}

fn io(op: &'static str, e: postgres::Error) -> StoreError {
    StoreError::Io {
        op,
        source: e.into(),
    }
}
