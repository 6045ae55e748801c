//! Retention through the real binary: a short `[retention] journal`, the sweep on a short
//! interval; the journal and the alert occurrences go, the tickets and their history stay;
//! `itsmd export --since` archives first, replay says where the journal starts, and
//! `itsmd compact` keeps every record.

use serde_json::{Value, json};

use crate::support::{Setup, alert, itsmd, wait_until};

const CONFIG: &str = "[retention]\njournal = \"5s\"\nsweep_every = \"1s\"\n";

/// The dump's lines of `tree`, and its header.
fn dump(file: &std::path::Path) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines[0].clone(), lines)
}

fn entries<'a>(lines: &'a [Value], tree: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["tree"] == tree).collect()
}

#[test]
fn the_journal_is_pruned_after_its_retention_and_tickets_stay() {
    let setup = Setup::new().config(CONFIG);
    let d = setup.start();
    let server = format!("http://{}", d.addr);
    let before_alerts = jiff::Timestamp::now();
    let labels = json!({"alertname": "DiskFull", "instance": "db01"});
    let (status, first) = d.post(
        "/api/v1/events",
        &alert("firing", "Disk full", labels.clone()),
    );
    assert_eq!(status, 202, "{first}");
    let id = first["ticket"].as_str().unwrap().to_string();
    let (status, _) = d.post("/api/v1/events", &alert("firing", "Disk full", labels));
    assert_eq!(status, 202);
    let occurrences = |d: &crate::support::Daemon| {
        d.get_ok(&format!("/api/v1/tickets/{id}/alerts"))["alerts"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(occurrences(&d), 2);
    // A problem the incident is caused by: its `causes` link is kept apart from its record
    // (ticket_links), and the archive must carry it.
    let (status, problem) = d.post(
        "/api/v1/tickets",
        &json!({"kind": "problem", "title": "Disks fill up"}).to_string(),
    );
    assert_eq!(status, 201, "{problem}");
    let problem = problem["id"].as_str().unwrap().to_string();
    let (status, linked) = d.post(
        &format!("/api/v1/tickets/{id}/links"),
        &json!({"rel": "caused_by", "ticket": problem}).to_string(),
    );
    assert_eq!(status, 201, "{linked}");

    // Archive before the sweep prunes: the journal and the ticket, from that time on.
    let archive = setup.dir.path().join("archive.jsonl");
    let since = before_alerts.to_string();
    let (ok, out) = itsmd(&[
        "export",
        archive.to_str().unwrap(),
        "--since",
        &since,
        "--server",
        &server,
    ]);
    assert!(ok, "{out}");
    let (header, lines) = dump(&archive);
    assert_eq!(header["since"], json!(since), "{header}");
    // Two alerts, the problem opened, the link made.
    assert_eq!(entries(&lines, "events").len(), 4);
    assert_eq!(entries(&lines, "tickets").len(), 2);
    assert_eq!(
        entries(&lines, "ticket_links").len(),
        1,
        "the problem's `causes`"
    );
    assert!(!entries(&lines, "history").is_empty());
    assert!(
        entries(&lines, "meta").is_empty(),
        "an archive holds no counters"
    );
    // Imported into a scratch store, the archive's numbers are taken: the next ticket and
    // event follow them, nothing archived is overwritten.
    let scratch = Setup::new();
    let (ok, out) = itsmd(&[
        "import",
        archive.to_str().unwrap(),
        "--data-dir",
        scratch.data_dir().to_str().unwrap(),
    ]);
    assert!(ok && out.contains("is an archive"), "{out}");
    {
        let s = scratch.start();
        let (status, created) = s.post(
            "/api/v1/tickets",
            &json!({"kind": "incident", "title": "after the import"}).to_string(),
        );
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["id"], json!("INC-000002"), "{created}");
        assert_eq!(
            s.get_ok(&format!("/api/v1/tickets/{id}"))["title"],
            json!("Disk full")
        );
        let (status, event) = s.post(
            "/api/v1/events",
            &alert("firing", "Other", json!({"alertname": "Other"})),
        );
        assert_eq!(status, 202, "{event}");
        assert_eq!(event["event_id"], json!(6), "the create was 5: {event}");
    }

    wait_until("the sweep to prune all four journal records", || {
        d.metric(r#"itsmd_retention_pruned_total{kind="journal"}"#) >= 4.0
    });
    assert_eq!(
        d.metric(r#"itsmd_retention_pruned_total{kind="ticket_alerts"}"#),
        2.0
    );
    assert_eq!(occurrences(&d), 0);
    let ticket = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(ticket["alert"]["count"], json!(2), "{ticket}");
    assert!(
        !ticket["history"].as_array().unwrap().is_empty(),
        "{ticket}"
    );

    // A full backup after a sweep checks: the journal's start is a record of its own in meta.
    let full = setup.dir.path().join("full.jsonl");
    let (ok, out) = itsmd(&["export", full.to_str().unwrap(), "--server", &server]);
    assert!(ok, "{out}");

    // A replay from before the journal's start is refused, naming where it starts.
    let rules = json!({ "rules": { "00.rhai": "fn on_alert(alert, ticket) {}" }, "since": since });
    let (status, refused) = d.post("/api/v1/admin/replay", &rules.to_string());
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        refused["error"]["code"],
        json!("journal_pruned"),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("the journal starts at"), "{message}");
    // From now on it runs, and says where the journal starts.
    let now = jiff::Timestamp::now().to_string();
    let rules = json!({ "rules": { "00.rhai": "fn on_alert(alert, ticket) {}" }, "since": now });
    let (status, report) = d.post("/api/v1/admin/replay", &rules.to_string());
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["journal_starts"]["pruned_through"],
        json!(4),
        "{report}"
    );
    assert_eq!(report["ticket_differences"], json!([]), "{report}");

    // Compaction of the running daemon's store is refused, saying why, and changes nothing.
    let data = setup.data_dir();
    let (ok, out) = itsmd(&["compact", "--data-dir", data.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("is in use by another process"), "{out}");
    assert!(!setup.dir.path().join("data.compacting").exists(), "{out}");
    d.get_ok(&format!("/api/v1/tickets/{id}"));

    // Offline compaction keeps every record: the ticket is there after a restart.
    assert!(d.terminate().success());
    let (ok, out) = itsmd(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "a pruned store is a healthy one: {out}");
    // A folder that is not a store is refused and left as it was.
    let other = setup.dir.path().join("not-a-store");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let (ok, out) = itsmd(&["compact", "--data-dir", other.to_str().unwrap()]);
    assert!(!ok && out.contains("not an itsmd store"), "{out}");
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "mine"
    );
    // The Maildir and .forward the docs put in the data directory stay through it.
    std::fs::create_dir_all(data.join("Maildir/new")).unwrap();
    std::fs::write(data.join("Maildir/new/waiting.mail"), "From: a@b\n\nx\n").unwrap();
    std::fs::write(data.join(".forward"), "/var/lib/itsmd/Maildir/\n").unwrap();
    let (ok, out) = itsmd(&["compact", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("Compacted"), "{out}");
    assert!(data.join("Maildir/new/waiting.mail").is_file(), "{out}");
    assert!(data.join(".forward").is_file(), "{out}");
    assert!(!setup.dir.path().join("data.before-compact").exists());
    assert!(!setup.dir.path().join("data.compacting").exists());
    // A small store's sizes are in KiB, the compacted one not rounded down to nothing.
    let after = out
        .split_once(" → ")
        .and_then(|(_, rest)| rest.split_once(" KiB on disk."))
        .and_then(|(n, _)| n.parse::<u64>().ok());
    assert!(after.is_some_and(|kib| kib > 0), "{out}");
    let d = setup.start();
    let again = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(again["history"], ticket["history"]);
}

#[test]
fn unknown_and_bad_retention_settings_are_named() {
    let setup = Setup::new().config("[retention]\njournal = \"soon\"\nkeep_for = \"1d\"\n");
    let config = setup.config.clone().unwrap();
    let (ok, out) = itsmd(&["check", "--config", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("keep_for"), "{out}");
    assert!(
        out.contains("retention.journal") || out.contains("\"soon\""),
        "{out}"
    );
}
