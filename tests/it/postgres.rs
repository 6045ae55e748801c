//! The daemon on the PostgreSQL backend: intake, restart, and the data readable with plain SQL.
//! Needs a server the tests may create databases on: `ITSMD_TEST_PG_URL` (a libpq key=value
//! string without dbname), which `eval "$(bash .ci/postgres.sh)"` sets (.ci/run does).

use serde_json::json;

use crate::support::{Setup, alert, itsmd};

/// A fresh database on the test server; its connection string.
pub(crate) fn database(name: &str) -> String {
    let server = std::env::var("ITSMD_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "ITSMD_TEST_PG_URL is not set: run `eval \"$(bash .ci/postgres.sh)\"` first (.ci/run does)"
        )
    });
    let db = format!("itsmd_it_{name}_{}", std::process::id());
    let mut admin =
        postgres::Client::connect(&format!("{server} dbname=postgres"), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    format!("{server} dbname={db}")
}

#[test]
fn the_daemon_runs_on_postgres_keeps_its_data_across_restarts_and_sql_reads_it() {
    let url = database("daemon");
    let setup = Setup::new().config(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"
    ));
    let d = setup.start();
    let (status, body) = d.post(
        "/api/v1/events",
        &alert(
            "firing",
            "Disk almost full on db01",
            json!({"alertname": "DiskFull", "instance": "db01"}),
        ),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["ticket"].as_str().unwrap().to_string();
    // The same alert again updates the same incident.
    let (_, again) = d.post(
        "/api/v1/events",
        &alert(
            "firing",
            "Disk almost full on db01",
            json!({"alertname": "DiskFull", "instance": "db01"}),
        ),
    );
    assert_eq!(again["ticket"], id.as_str());
    assert_eq!(d.terminate().code(), Some(0));

    let d = setup.start();
    let t = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(t["alert"]["count"], 2, "{t}");
    assert_eq!(t["title"], "Disk almost full on db01");

    // A BI tool reads the same data with plain SQL through the documented views.
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = sql
        .query_one(
            "SELECT id, state, ticket->>'title' FROM itsmd_tickets WHERE id = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(1), "new");
    assert_eq!(row.get::<_, String>(2), "Disk almost full on db01");
    let history: i64 = sql
        .query_one(
            "SELECT count(*) FROM itsmd_history WHERE ticket = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert!(history >= 2, "{history} history rows");
    let events: i64 = sql
        .query_one("SELECT count(*) FROM itsmd_events", &[])
        .unwrap()
        .get(0);
    assert_eq!(events, 2);
}

#[test]
fn a_postgres_store_without_a_url_or_unreachable_is_refused_with_a_clear_error() {
    let setup = Setup::new().config("[store]\nbackend = \"postgres\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_itsmd"))
        .args(["check", "--config"])
        .arg(setup.config.as_ref().unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("store.url is required"), "{err}");

    // Nothing listens on port 1: the start fails naming the server, never the password.
    let setup = Setup::new().config(
        "[store]\nbackend = \"postgres\"\nurl = \"host=127.0.0.1 port=1 user=itsmd password=s3cret dbname=x\"\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_itsmd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(setup.config.as_ref().unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("127.0.0.1:1/x"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

/// `itsmd_NAME_sum` and `_count` of a histogram.
fn histogram(d: &crate::support::Daemon, name: &str) -> (f64, f64) {
    (
        d.metric(&format!("itsmd_{name}_sum")),
        d.metric(&format!("itsmd_{name}_count")),
    )
}

#[test]
fn a_batch_of_new_alerts_costs_a_bounded_number_of_database_round_trips() {
    let url = database("trips");
    let setup = Setup::new().config(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"
    ));
    let d = setup.start();
    // Warm up: the first batch opens the counters.
    let (status, body) = d.post(
        "/api/v1/events",
        &alert("firing", "warm-up", json!({"alertname": "Warm"})),
    );
    assert_eq!(status, 202, "{body}");
    for n in [10usize, 60] {
        let (trips_before, batches_before) = histogram(&d, "batch_round_trips");
        let alerts: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                json!({
                    "labels": {"alertname": "Trips", "instance": format!("n{n}-{i}"), "severity": "warning"},
                    "annotations": {"summary": format!("Trips {n} {i}")},
                })
            })
            .collect();
        let (status, body) = d.post("/api/v2/alerts", &json!(alerts).to_string());
        assert_eq!(status, 202, "{body}");
        let (trips, batches) = histogram(&d, "batch_round_trips");
        let (trips, batches) = (trips - trips_before, batches - batches_before);
        assert!(batches >= 1.0, "the alerts were committed in a batch");
        let opened = d.get_ok("/api/v1/tickets?limit=1000")["tickets"]
            .as_array()
            .map_or(0, |t| t.len());
        println!("{n} new alerts: {trips} round trips in {batches} batches; {opened} tickets");
        // Reads fetched together: a handful of queries per batch, however many alerts it
        // holds (one per key would be several per alert: 60 alerts, 300 and more).
        assert!(
            trips <= 12.0 * batches,
            "{n} new alerts took {trips} round trips in {batches} batches"
        );
        assert!(
            batches <= 4.0,
            "{n} alerts in one request share a batch or few: {batches}"
        );
    }
}

/// The `NAME sha256 HEX` line of `itsmd migrate`'s output.
fn checksum<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} sha256 ")))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name} checksum in: {out}"))
}

fn pg_setup(url: &str, extra: &str) -> Setup {
    Setup::new().config(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n{extra}"
    ))
}

#[test]
fn migrate_moves_a_store_to_postgres_and_back_and_export_import_work_on_postgres() {
    // A store with tickets, history, indexes and expiry rows, on the embedded backend.
    let sled = Setup::new();
    let d = sled.start();
    for (status, name) in [
        ("firing", "a"),
        ("firing", "b"),
        ("firing", "a"),
        ("resolved", "b"),
        ("firing", "c"),
    ] {
        let (code, body) = d.post(
            "/api/v1/events",
            &alert(
                status,
                &format!("Migrate {name}"),
                json!({"alertname": name}),
            ),
        );
        assert_eq!(code, 202, "{body}");
    }
    let tickets = d.get_ok("/api/v1/tickets?limit=1000");
    let one = d.get_ok("/api/v1/tickets/INC-000001");
    assert_eq!(d.terminate().code(), Some(0));
    let data = sled.data_dir();
    let data = data.to_str().unwrap();

    let url = database("migrate");
    let (ok, out) = itsmd(&["migrate", "--from", data, "--to", &url]);
    assert!(ok, "{out}");
    let there = checksum(&out, "source").to_string();
    assert_eq!(checksum(&out, "target"), there, "{out}");
    assert!(out.contains("tickets"), "per-tree counts: {out}");
    // A target that holds something is refused, unless told to empty it.
    let (ok, err) = itsmd(&["migrate", "--from", data, "--to", &url]);
    assert!(!ok && err.contains("not empty"), "{err}");
    let (ok, out) = itsmd(&["migrate", "--from", data, "--to", &url, "--replace"]);
    assert!(ok, "{out}");
    assert_eq!(checksum(&out, "target"), there, "{out}");

    // And back into a new data directory: the same bytes.
    let back = Setup::new();
    let back_dir = back.data_dir();
    let (ok, out) = itsmd(&[
        "migrate",
        "--from",
        &url,
        "--to",
        back_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(checksum(&out, "source"), there, "{out}");
    assert_eq!(checksum(&out, "target"), there, "{out}");

    // The daemon serves the same tickets from each.
    let pg = pg_setup(&url, "");
    for setup in [&pg, &back] {
        let d = setup.start();
        assert_eq!(d.get_ok("/api/v1/tickets?limit=1000"), tickets);
        assert_eq!(d.get_ok("/api/v1/tickets/INC-000001"), one);
        assert_eq!(d.terminate().code(), Some(0));
    }

    // Export from a daemon on PostgreSQL, import into another PostgreSQL database.
    let d = pg.start();
    let dump = pg.dir.path().join("dump.jsonl");
    let (ok, err) = d.export_to(&dump, "unused");
    assert!(ok, "{err}");
    assert_eq!(d.terminate().code(), Some(0));
    let other = pg_setup(&database("imported"), "");
    let (ok, out) = itsmd(&[
        "import",
        dump.to_str().unwrap(),
        "--config",
        other.config.as_ref().unwrap().to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let (ok, err) = itsmd(&[
        "import",
        dump.to_str().unwrap(),
        "--config",
        other.config.as_ref().unwrap().to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("not empty"), "{err}");
    let d = other.start();
    assert_eq!(d.get_ok("/api/v1/tickets?limit=1000"), tickets);
    assert_eq!(d.get_ok("/api/v1/tickets/INC-000001"), one);
    assert_eq!(d.terminate().code(), Some(0));
}
