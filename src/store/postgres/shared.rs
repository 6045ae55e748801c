//! The store's shared face for cluster mode: the engine lease with its fencing token, the
//! inbox every node's intake writes to (with a NOTIFY the leader waits on), and the
//! leader's fenced commits. Each call is one statement.

use std::time::Duration;

use crate::store::postgres::{PostgresStore, Rows, io, prepared};
use crate::store::{Lease, Shared, Store, StoreError, WriteBatch};

/// The name of the engine's lease row.
const ENGINE_LEASE: &str = "engine";

/// The channel intake notifies after storing events, and the leader listens on.
pub(super) const INBOX_CHANNEL: &str = "itsmd_inbox";

/// The channel the leader's commits notify (with the batch's highest inbox id, schema
/// migration 4), and intake listens on.
const ANSWERS_CHANNEL: &str = "itsmd_answered";

impl Shared for PostgresStore {
    fn take_lease(&self, node: &str, lease_ms: u64) -> Result<Lease, StoreError> {
        let node = node.to_string();
        let ms = lease_ms as f64;
        self.call(move |client| {
            // A new holder, or the same one after its lease ran out, is a new term: the
            // token goes up, and every batch of an older term is refused. The inbox depth
            // rides along, so the lease task makes one query a round.
            let statement = prepared(
                client,
                "WITH taken AS (
                         UPDATE itsmd_lease SET
                             token = CASE WHEN holder = $2 AND expires_at >= now()
                                          THEN token ELSE token + 1 END,
                             holder = $2,
                             expires_at = now() + make_interval(secs => $3::float8 / 1000.0)
                          WHERE name = $1 AND (expires_at < now() OR holder = $2)
                          RETURNING holder, token
                     ), seen AS (
                         SELECT holder, token, true AS mine FROM taken
                         UNION ALL
                         SELECT holder, token, false FROM itsmd_lease
                          WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM taken)
                     )
                     SELECT holder, token, mine,
                            (SELECT count(*) FROM itsmd_inbox WHERE answered_at IS NULL)
                       FROM seen",
            )
            .map_err(|e| io("prepare", e))?;
            let row = client
                .query_one(&statement, &[&ENGINE_LEASE, &node, &ms])
                .map_err(|e| io("take the lease", e))?;
            Ok(Lease {
                holder: row.get(0),
                token: row.get(1),
                mine: row.get(2),
                pending: row.get::<_, i64>(3).max(0) as u64,
            })
        })
    }

    fn release_lease(&self, node: &str, token: i64) -> Result<(), StoreError> {
        let node = node.to_string();
        self.call(move |client| {
            let statement = prepared(
                client,
                "UPDATE itsmd_lease SET expires_at = '-infinity'
                      WHERE name = $1 AND holder = $2 AND token = $3",
            )
            .map_err(|e| io("prepare", e))?;
            client
                .execute(&statement, &[&ENGINE_LEASE, &node, &token])
                .map(|_| ())
                .map_err(|e| io("release the lease", e))
        })
    }

    fn push(&self, bodies: Vec<Vec<u8>>, limit: u64) -> Result<Vec<i64>, StoreError> {
        let n = bodies.len();
        // Counting stops at the limit: the check costs at most `limit` index entries.
        let cap = limit.min(i64::MAX as u64) as i64;
        self.call(move |client| {
            let statement = prepared(
                client,
                "WITH depth AS (
                         SELECT count(*) AS n FROM (
                             SELECT 1 FROM itsmd_inbox WHERE answered_at IS NULL LIMIT $2
                         ) p
                     ), stored AS (
                         INSERT INTO itsmd_inbox (body)
                         SELECT b FROM unnest($1::bytea[]) WITH ORDINALITY AS u(b, o)
                          WHERE (SELECT n FROM depth) < $2
                          ORDER BY o
                         RETURNING id
                     )
                     SELECT id, pg_notify($3, '') IS NULL FROM stored ORDER BY id",
            )
            .map_err(|e| io("prepare", e))?;
            let rows = client
                .query(&statement, &[&bodies, &cap, &INBOX_CHANNEL])
                .map_err(|e| io("inbox insert", e))?;
            if rows.len() != n {
                return Err(StoreError::InboxFull { limit });
            }
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    fn answers(&self, ids: Vec<i64>) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        self.call(move |client| {
            let statement = prepared(
                client,
                "SELECT id, answer FROM itsmd_inbox WHERE id = ANY($1) AND answer IS NOT NULL",
            )
            .map_err(|e| io("prepare", e))?;
            let rows = client
                .query(&statement, &[&ids])
                .map_err(|e| io("inbox answers", e))?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn on_answers(
        &self,
        mut answered: Box<dyn FnMut(Option<i64>) -> bool + Send>,
    ) -> Result<(), StoreError> {
        super::listen::spawn(self.url.clone(), ANSWERS_CHANNEL, move |payload| {
            // A payload that is not an id says "something": look at every waiting row.
            answered(payload.and_then(|p| p.parse().ok()))
        })
        .map_err(|e| StoreError::Io {
            op: "listen for answers",
            source: e.into(),
        })
    }

    fn pending(&self, after: i64, limit: usize) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.call(move |client| {
            let statement = prepared(
                client,
                "SELECT id, body FROM itsmd_inbox WHERE answered_at IS NULL AND id > $2
                  ORDER BY id LIMIT $1",
            )
            .map_err(|e| io("prepare", e))?;
            let rows = client
                .query(&statement, &[&limit, &after])
                .map_err(|e| io("inbox read", e))?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn wait_for_inbox(&self, timeout: Duration) -> bool {
        let mut listener = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        listener
            .get_or_insert_with(|| super::listen::Listener::start(self.url.clone()))
            .wait(timeout)
    }

    fn commit_fenced(
        &self,
        batch: WriteBatch,
        token: i64,
        answers: Vec<(i64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let rows = Rows::of(batch);
        let (ids, bodies): (Vec<i64>, Vec<Vec<u8>>) = answers.into_iter().unzip();
        self.write(move |client| {
            let statement = prepared(
                client,
                "SELECT itsmd_commit_fenced($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .map_err(|e| io("prepare", e))?;
            let done = client.execute(
                &statement,
                &[
                    &token,
                    &rows.del_trees,
                    &rows.del_keys,
                    &rows.put_trees,
                    &rows.put_keys,
                    &rows.put_values,
                    &ids,
                    &bodies,
                ],
            );
            match done {
                Ok(_) => Ok(()),
                Err(e) => Err(refusal(&e, token).unwrap_or_else(|| io("commit", e))),
            }
        })
    }

    fn round_trips(&self) -> u64 {
        Store::round_trips(self)
    }

    fn prune(&self, older_than_secs: u64) -> Result<u64, StoreError> {
        let secs = older_than_secs as f64;
        self.call(move |client| {
            let statement = prepared(
                client,
                "DELETE FROM itsmd_inbox
                      WHERE answered_at < now() - make_interval(secs => $1::float8)",
            )
            .map_err(|e| io("prepare", e))?;
            client
                .execute(&statement, &[&secs])
                .map_err(|e| io("inbox prune", e))
        })
    }
}

/// What `itsmd_commit_fenced` raised on purpose: a stale token, or inbox rows answered twice.
fn refusal(e: &postgres::Error, token: i64) -> Option<StoreError> {
    let db = e.as_db_error()?;
    match db.code().code() {
        "IT001" => {
            let detail = db.detail().unwrap_or_default();
            let (current, holder) = detail.split_once(' ').unwrap_or((detail, ""));
            Some(StoreError::Fenced {
                token,
                current: current.parse().unwrap_or(0),
                holder: holder.to_string(),
            })
        }
        "IT002" => Some(StoreError::Io {
            op: "inbox answer",
            source: db.message().to_string().into(),
        }),
        _ => None,
    }
}
