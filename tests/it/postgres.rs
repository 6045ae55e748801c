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
    // Opening a migrated schema again logs nothing from the server (no NOTICE lines).
    d.wait_for_log(|l| l["message"] == "Store opened.");
    let notices: Vec<_> = d
        .logs()
        .into_iter()
        .filter(|l| l.to_string().contains("NOTICE"))
        .collect();
    assert!(notices.is_empty(), "{notices:?}");
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
fn a_batch_of_new_or_updated_alerts_costs_a_bounded_number_of_database_round_trips() {
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
    // New alerts, then the 60 again with a new summary: updates of known tickets, each with
    // a history entry (and so the report marks of each ticket to read).
    for (n, pass) in [(10usize, "new"), (60, "new"), (60, "update")] {
        let (trips_before, batches_before) = histogram(&d, "batch_round_trips");
        let alerts: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                json!({
                    "labels": {"alertname": "Trips", "instance": format!("n{n}-{i}"), "severity": "warning"},
                    "annotations": {"summary": format!("Trips {n} {i} {pass}")},
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
        println!("{n} {pass} alerts: {trips} round trips in {batches} batches; {opened} tickets");
        // Reads fetched together: a handful of queries per batch, however many alerts it
        // holds (one per key would be several per alert: 60 alerts, 300 and more).
        assert!(
            trips <= 12.0 * batches,
            "{n} {pass} alerts took {trips} round trips in {batches} batches"
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

/// A throwaway PostgreSQL cluster of this test's own (`.ci/postgres.sh`), stopped on drop.
struct OwnServer {
    url: String,
    dir: std::path::PathBuf,
}

impl OwnServer {
    fn start() -> OwnServer {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}='")))
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .to_string()
        };
        OwnServer {
            url: value("ITSMD_TEST_PG_URL"),
            dir: value("ITSMD_TEST_PG_DIR").into(),
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres.sh");
        let _ = std::process::Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

#[test]
fn the_store_speaks_tls_to_a_server_with_ssl_on_and_checks_its_certificate() {
    use std::os::unix::fs::MetadataExt;
    let server = OwnServer::start();
    // A test CA and a server certificate for 127.0.0.1, readable by the server's user only.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "itsmd test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let owner = std::fs::metadata(&server.dir).unwrap();
    let (crt, pem_key) = (server.dir.join("server.crt"), server.dir.join("server.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&pem_key, key.serialize_pem()).unwrap();
    for f in [&crt, &pem_key] {
        std::os::unix::fs::chown(f, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    let ca_file = scratch.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let other_ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let wrong_ca = scratch.path().join("wrong.pem");
    std::fs::write(&wrong_ca, other_ca.pem()).unwrap();

    let mut admin =
        postgres::Client::connect(&format!("{} dbname=postgres", server.url), postgres::NoTls)
            .unwrap();
    for sql in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", pem_key.display()),
        "ALTER SYSTEM SET ssl = on".to_string(),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while admin
        .query_one("SHOW ssl", &[])
        .unwrap()
        .get::<_, String>(0)
        != "on"
    {
        assert!(std::time::Instant::now() < deadline, "ssl did not turn on");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let open = |words: &str| {
        itsmd::store::open(&itsmd::config::StoreConfig {
            backend: itsmd::config::StoreBackend::Postgres,
            url: Some(format!("{} dbname=postgres {words}", server.url)),
            ..Default::default()
        })
    };
    let encrypted = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                  WHERE s.ssl AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(encrypted(&mut admin), 0);
    for words in [
        format!("sslmode=verify-full sslrootcert={}", ca_file.display()),
        format!("sslmode=verify-ca sslrootcert={}", ca_file.display()),
        "sslmode=require".to_string(),
    ] {
        let store = open(&words).unwrap_or_else(|e| panic!("{words}: {e}"));
        let mut b = itsmd::store::WriteBatch::default();
        b.put(
            itsmd::store::Tree::Meta,
            b"tls".to_vec(),
            words.clone().into_bytes(),
        );
        store.apply(b).unwrap();
        assert_eq!(
            store.get(itsmd::store::Tree::Meta, b"tls").unwrap(),
            Some(words.clone().into_bytes())
        );
        assert_eq!(
            encrypted(&mut admin),
            2,
            "{words}: both connections (reads, and batches since the apply) are encrypted"
        );
        drop(store);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while encrypted(&mut admin) != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{words}: connection not closed"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    // A certificate from another CA is refused, and verify-* without roots says what it needs.
    let refused = open(&format!(
        "sslmode=verify-full sslrootcert={}",
        wrong_ca.display()
    ))
    .err()
    .expect("a server certificate of another CA is refused");
    assert!(refused.to_string().contains("certificate"), "{refused}");
    let refused = open("sslmode=verify-full").err().expect("no roots");
    assert!(refused.to_string().contains("sslrootcert"), "{refused}");

    // The server going away under a running daemon: reads answer 503 store_unavailable
    // with a Retry-After, as intake does, not a 500.
    let setup = pg_setup(&format!("{} dbname=postgres", server.url), "");
    let d = setup.start();
    let (status, body) = d.post(
        "/api/v1/events",
        &alert(
            "firing",
            "Before the outage",
            json!({"alertname": "Outage"}),
        ),
    );
    assert_eq!(status, 202, "{body}");
    drop(admin);
    drop(server);
    let (status, body) = d.get("/api/v1/tickets/INC-000001");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], json!("store_unavailable"), "{body}");
}
