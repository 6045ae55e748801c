//! The PostgreSQL schema: numbered migrations, each applied once, recorded in
//! `itsmd_schema_migrations`. Never edit one that shipped: add the next.

use postgres::Client;

use crate::store::StoreError;
use crate::store::postgres::io;

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
    (
        3,
        "-- A batch in one statement (one round trip): deletes and puts of distinct keys.
     CREATE FUNCTION itsmd_write(del_trees smallint[], del_keys bytea[],
                                 put_trees smallint[], put_keys bytea[], put_values bytea[])
     RETURNS void LANGUAGE plpgsql AS $$
     BEGIN
         IF cardinality(del_keys) > 0 THEN
             DELETE FROM itsmd_kv k USING unnest(del_trees, del_keys) AS d(tree, key)
              WHERE k.tree = d.tree AND k.key = d.key;
         END IF;
         IF cardinality(put_keys) > 0 THEN
             INSERT INTO itsmd_kv (tree, key, value)
             SELECT * FROM unnest(put_trees, put_keys, put_values)
             ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value;
         END IF;
     END $$;
     -- The leader's batch: only if its lease token is current (SQLSTATE IT001, the holder
     -- and token in DETAIL), writing the batch and answering its inbox rows, each once
     -- (IT002 otherwise), in one statement.
     CREATE FUNCTION itsmd_commit_fenced(fence bigint,
                                         del_trees smallint[], del_keys bytea[],
                                         put_trees smallint[], put_keys bytea[], put_values bytea[],
                                         ids bigint[], answers bytea[])
     RETURNS void LANGUAGE plpgsql AS $$
     DECLARE
         current_holder text;
         current_token  bigint;
         answered       bigint;
     BEGIN
         -- Shared: a node taking the lead (an UPDATE) waits for this commit, and this one
         -- sees any takeover that committed before.
         SELECT holder, token INTO current_holder, current_token
           FROM itsmd_lease WHERE name = 'engine' FOR SHARE;
         IF current_token IS DISTINCT FROM fence THEN
             RAISE EXCEPTION 'fenced' USING ERRCODE = 'IT001',
                 DETAIL = coalesce(current_token, 0)::text || ' ' || coalesce(current_holder, '');
         END IF;
         PERFORM itsmd_write(del_trees, del_keys, put_trees, put_keys, put_values);
         IF cardinality(ids) > 0 THEN
             UPDATE itsmd_inbox i SET answer = a.answer, answered_at = now()
               FROM unnest(ids, answers) AS a(id, answer)
              WHERE i.id = a.id AND i.answered_at IS NULL;
             GET DIAGNOSTICS answered = ROW_COUNT;
             IF answered <> cardinality(ids) THEN
                 RAISE EXCEPTION '% of the batch''s % inbox rows were answered already; the batch is not written twice',
                     cardinality(ids) - answered, cardinality(ids) USING ERRCODE = 'IT002';
             END IF;
         END IF;
     END $$;",
    ),
    (
        4,
        "-- The leader's batch also tells every node's intake it answered rows (NOTIFY on
     -- itsmd_answered with the batch's highest inbox id, delivered at commit), so intake
     -- looks for answers when there are some instead of polling.
     CREATE OR REPLACE FUNCTION itsmd_commit_fenced(fence bigint,
                                         del_trees smallint[], del_keys bytea[],
                                         put_trees smallint[], put_keys bytea[], put_values bytea[],
                                         ids bigint[], answers bytea[])
     RETURNS void LANGUAGE plpgsql AS $$
     DECLARE
         current_holder text;
         current_token  bigint;
         answered       bigint;
     BEGIN
         SELECT holder, token INTO current_holder, current_token
           FROM itsmd_lease WHERE name = 'engine' FOR SHARE;
         IF current_token IS DISTINCT FROM fence THEN
             RAISE EXCEPTION 'fenced' USING ERRCODE = 'IT001',
                 DETAIL = coalesce(current_token, 0)::text || ' ' || coalesce(current_holder, '');
         END IF;
         PERFORM itsmd_write(del_trees, del_keys, put_trees, put_keys, put_values);
         IF cardinality(ids) > 0 THEN
             UPDATE itsmd_inbox i SET answer = a.answer, answered_at = now()
               FROM unnest(ids, answers) AS a(id, answer)
              WHERE i.id = a.id AND i.answered_at IS NULL;
             GET DIAGNOSTICS answered = ROW_COUNT;
             IF answered <> cardinality(ids) THEN
                 RAISE EXCEPTION '% of the batch''s % inbox rows were answered already; the batch is not written twice',
                     cardinality(ids) - answered, cardinality(ids) USING ERRCODE = 'IT002';
             END IF;
             PERFORM pg_notify('itsmd_answered', (SELECT max(x) FROM unnest(ids) AS x)::text);
         END IF;
     END $$;",
    ),
];

/// Applies every migration not yet recorded, each in its own transaction.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    // Without the server's NOTICE that the table exists, logged at every open otherwise.
    client
        .batch_execute(
            "SET client_min_messages = warning;
             CREATE TABLE IF NOT EXISTS itsmd_schema_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );
             RESET client_min_messages",
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
