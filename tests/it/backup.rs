//! `itsmd export` from a running daemon and `itsmd import` into an empty data directory.

use std::process::Command;

use serde_json::json;

use crate::support::{BIN, Setup, alert};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

fn tokens() -> String {
    format!(
        "[[auth.tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n\
         [[auth.tokens]]\nname = \"alice\"\nrole = \"agent\"\ntoken = \"{AGENT}\"\n"
    )
}

fn itsmd(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn export_then_import_round_trips_every_record() {
    let setup = Setup::new().config(&tokens());
    let d = setup.start();
    let post = |body: String| {
        let r = d
            .http
            .post(d.url("/api/v1/events"))
            .bearer_auth(AGENT)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    };
    for i in 0..20 {
        post(alert(
            "firing",
            &format!("alert {i}"),
            json!({"i": i.to_string(), "team": "dba"}),
        ));
    }
    post(alert("firing", "alert 0", json!({"i": "0", "team": "dba"})));
    post(alert(
        "resolved",
        "alert 1",
        json!({"i": "1", "team": "dba"}),
    ));

    let dump = setup.dir.path().join("dump.jsonl");
    // Export needs an admin token.
    let (ok, err) = d.export_to(&dump, AGENT);
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, err) = d.export_to(&dump, ADMIN);
    assert!(ok, "{err}");
    let get = |d: &crate::support::Daemon, path: &str| {
        d.http
            .get(d.url(path))
            .bearer_auth(AGENT)
            .send()
            .unwrap()
            .json::<serde_json::Value>()
            .unwrap()
    };
    let tickets = get(&d, "/api/v1/tickets?limit=1000");
    let one = get(&d, "/api/v1/tickets/INC-000002");
    assert!(d.terminate().success());

    let restored = Setup::new().config(&tokens());
    let target = restored.data_dir();
    let (ok, err) = itsmd(&[
        "import",
        dump.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // A second import into the now non-empty directory is refused.
    let (ok, err) = itsmd(&[
        "import",
        dump.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("not empty"), "{err}");

    let d2 = restored.start();
    assert_eq!(get(&d2, "/api/v1/tickets?limit=1000"), tickets);
    assert_eq!(get(&d2, "/api/v1/tickets/INC-000002"), one);
    // Every tree, entry for entry: exporting the restored store gives the same dump.
    let again = restored.dir.path().join("again.jsonl");
    let (ok, err) = d2.export_to(&again, ADMIN);
    assert!(ok, "{err}");
    let a = std::fs::read_to_string(&dump).unwrap();
    let b = std::fs::read_to_string(&again).unwrap();
    assert!(a.lines().count() > 60, "{} lines", a.lines().count());
    assert_eq!(a, b);
    // And the counters continue where they were.
    let r = d2
        .http
        .post(d2.url("/api/v1/events"))
        .bearer_auth(AGENT)
        .body(alert("firing", "new", json!({"n": "1"})))
        .send()
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["ticket"],
        "INC-000021"
    );
}

#[test]
fn import_of_a_broken_dump_names_the_line_and_writes_nothing() {
    let setup = Setup::new();
    let dump = setup.dir.path().join("bad.jsonl");
    std::fs::write(&dump, "{\"itsmd_export\":2,\"version\":\"0\",\"entries\":1}\n{\"tree\":\"tickets\",\"key\":\"zz\",\"v\":1,\"value\":{}}\n").unwrap();
    let target = setup.data_dir();
    let (ok, err) = itsmd(&[
        "import",
        dump.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("line 2: key is not hex"), "{err}");
    // Nothing half-imported: the directory is still importable (here an old, format-1
    // dump without a trailer, which needs --allow-unverified).
    std::fs::write(&dump, "{\"itsmd_export\":1,\"version\":\"0\"}\n").unwrap();
    let (ok, err) = itsmd(&[
        "import",
        dump.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
        "--allow-unverified",
    ]);
    assert!(ok, "{err}");
}
