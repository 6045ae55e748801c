//! The PostgreSQL backend: every logical [`Tree`] in one table `itsmd_kv (tree, key, value)`,
//! ordered by `(tree, key)` as bytes, so ranges and prefixes scan in the same order as sled.
//!
//! A batch is one statement (`itsmd_write`, so one transaction and one round trip), committed
//! with the server's durability (`synchronous_commit` as configured), so [`Store::flush`] has
//! nothing left to do. Scans read in pages from either end (`pages.rs`). The schema is created
//! and migrated by `schema.rs` with numbered migrations recorded in `itsmd_schema_migrations`;
//! views (`itsmd_tickets`, `itsmd_history`, `itsmd_events`) show the JSON of tickets, history
//! and the journal to plain SQL. The cluster's lease and inbox are `shared.rs`, the wake-ups
//! (LISTEN: the leader's for new inbox rows, intake's for answers) `listen.rs`, the
//! connection and its TLS `connect.rs`.
//!
//! The client is `postgres` (the synchronous face of `tokio-postgres`), each connection
//! owned by a worker thread that runs its queries: it drives its own small runtime, which
//! must never be entered from a thread that is already running one, whichever thread calls
//! the store. Reads run on one connection, batches ([`Store::apply`]) on a second, so the
//! engine reads for its next batch while the server commits the last one (the engine reads
//! through that batch meanwhile, [`crate::store::Overlay`]). Every job a worker runs is one
//! statement, so jobs counted are round trips ([`Store::round_trips`]).

mod connect;
mod listen;
mod pages;
mod schema;
mod shared;
mod tls;

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};

use postgres::Client;

pub(crate) use connect::{describe, problem};

use crate::store::postgres::pages::{Pages, page};
use crate::store::{Entry, ScanIter, Store, StoreError, Tree, Write, WriteBatch};

pub struct PostgresStore {
    /// The worker that runs every read (and the shared store's statements).
    reader: Worker,
    /// The worker that runs [`Store::apply`] on a connection of its own, so the engine's
    /// reads for the next batch are not queued behind a commit; started on the first apply
    /// (a store that never writes, such as the cluster's shared one, opens no second
    /// connection).
    writer: Mutex<Option<Worker>>,
    /// Statements sent to the server (each job is one).
    trips: AtomicU64,
    /// The connection string, for the inbox listener's and the writer's own connections.
    url: String,
    /// The inbox listener, started on the first wait (`listen.rs`).
    listener: Mutex<Option<listen::Listener>>,
}

/// A query to run on a worker's connection.
type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// A thread that owns one connection and runs the jobs sent to it, one at a time, in order.
struct Worker {
    /// Behind a lock only because a `Sender` clone per caller would be no cheaper.
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Worker {
    /// Connects to `url` on a new thread named `name` (bringing the schema up to date first
    /// when `migrate`), and returns once the connection is up or has failed.
    fn start(url: &str, name: &str, migrate: bool) -> Result<Worker, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, opened) = mpsc::channel();
        let url = url.to_string();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut client = match connect::connect(&url).and_then(|mut c| {
                    if migrate {
                        schema::migrate(&mut c)?;
                    }
                    Ok(c)
                }) {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                // Since when the connection is lost, and the attempts to reconnect since: logged
                // when it is lost and when it is back, not at every query in between.
                let mut lost: Option<(std::time::Instant, u64)> = None;
                for job in queue {
                    if client.is_closed() {
                        // A lost link: the next job gets a fresh connection (or its error).
                        match connect::connect(&url) {
                            Ok(c) => {
                                client = c;
                                PREPARED.with(|p| p.borrow_mut().clear());
                                if let Some((since, attempts)) = lost.take() {
                                    tracing::info!(
                                        down_ms = since.elapsed().as_millis() as u64,
                                        failed_attempts = attempts,
                                        "PostgreSQL connection restored."
                                    );
                                }
                            }
                            Err(e) => match &mut lost {
                                Some((_, attempts)) => *attempts += 1,
                                None => {
                                    tracing::warn!(error = %e, "PostgreSQL connection lost; reconnecting on each query until it is back.");
                                    lost = Some((std::time::Instant::now(), 1));
                                }
                            },
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
        Ok(Worker {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `f` (one statement) on this worker's connection and waits for its answer.
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
}

impl PostgresStore {
    /// Connects to `url` (a libpq-style connection string or `postgres://` URL; `sslmode`
    /// and `sslrootcert` as `connect.rs` says) and brings the schema up to date.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        Ok(PostgresStore {
            reader: Worker::start(url, "itsmd-postgres", true)?,
            writer: Mutex::new(None),
            trips: AtomicU64::new(0),
            url: url.to_string(),
            listener: Mutex::new(None),
        })
    }

    /// Runs `f` (one statement) on the reading connection and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.reader.call(f)
    }

    /// Runs `f` (one statement) on the writing connection, connecting it first if needed.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        // Held while the statement runs: commits are one at a time anyway.
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let worker = match &mut *writer {
            Some(w) => w,
            None => writer.insert(Worker::start(&self.url, "itsmd-postgres-write", false)?),
        };
        worker.call(f)
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

impl Store for PostgresStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.call(move |client| {
            let statement = prepared(
                client,
                "SELECT value FROM itsmd_kv WHERE tree = $1 AND key = $2",
            )
            .map_err(|e| io("prepare", e))?;
            let row = client
                .query_opt(&statement, &[&tree_id(tree), &key])
                .map_err(|e| io("get", e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn get_many(&self, keys: &[(Tree, Vec<u8>)]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let trees: Vec<i16> = keys.iter().map(|(t, _)| tree_id(*t)).collect();
        let wanted: Vec<Vec<u8>> = keys.iter().map(|(_, k)| k.clone()).collect();
        let n = keys.len();
        self.call(move |client| {
            let statement = prepared(
                client,
                "SELECT q.i, k.value
                       FROM unnest($1::smallint[], $2::bytea[]) WITH ORDINALITY AS q(tree, key, i)
                       JOIN itsmd_kv k ON k.tree = q.tree AND k.key = q.key",
            )
            .map_err(|e| io("prepare", e))?;
            let rows = client
                .query(&statement, &[&trees, &wanted])
                .map_err(|e| io("get many", e))?;
            let mut out = vec![None; n];
            for row in rows {
                let i: i64 = row.get(0);
                if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)) {
                    *slot = Some(row.get(1));
                }
            }
            Ok(out)
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
        self.write(move |client| {
            let statement = prepared(client, "SELECT itsmd_write($1, $2, $3, $4, $5)")
                .map_err(|e| io("prepare", e))?;
            client
                .execute(
                    &statement,
                    &[
                        &rows.del_trees,
                        &rows.del_keys,
                        &rows.put_trees,
                        &rows.put_keys,
                        &rows.put_values,
                    ],
                )
                .map(|_| ())
                .map_err(|e| io("apply", e))
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

    fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    fn pipelines_apply(&self) -> bool {
        true
    }
}

/// A batch as the rows it leaves: each key's last write only, deletes and puts apart (so
/// the two never touch the same key and one statement can do both).
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
}

thread_local! {
    /// The statements prepared on this worker thread's connection, by their text: a query
    /// given as text is prepared (one round trip) and then run (another); prepared once, it
    /// is one round trip each time after.
    static PREPARED: std::cell::RefCell<std::collections::HashMap<String, postgres::Statement>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// `sql` prepared on `client`, once per connection (the worker thread owns one).
fn prepared(client: &mut Client, sql: &str) -> Result<postgres::Statement, postgres::Error> {
    if let Some(statement) = PREPARED.with(|p| p.borrow().get(sql).cloned()) {
        return Ok(statement);
    }
    let statement = client.prepare(sql)?;
    PREPARED.with(|p| p.borrow_mut().insert(sql.to_string(), statement.clone()));
    Ok(statement)
}

/// The tree's number in the table: its stable on-disk prefix.
fn tree_id(tree: Tree) -> i16 {
    i16::from(tree.prefix())
}

fn io(op: &'static str, e: postgres::Error) -> StoreError {
    StoreError::Io {
        op,
        source: e.into(),
    }
}
