//! Hostile conditions and input (issue #21): a store left behind by a start on a full disk,
//! dumps that are cut off or tampered with, browser-origin requests, oversized fields.

use std::process::Command;

use serde_json::json;

use crate::support::{BIN, Setup, alert};

/// Runs the `itsmd` binary; returns success, stdout and stderr.
fn itsmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run itsmd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_store_left_with_an_empty_generating_snapshot_opens_and_keeps_its_data() {
    let setup = Setup::new();
    let d = setup.start();
    for i in 0..5 {
        let (status, body) = d.post(
            "/api/v1/events",
            &alert("firing", &format!("disk {i}"), json!({"i": i.to_string()})),
        );
        assert_eq!(status, 202, "{body}");
    }
    let before = d.get_ok("/api/v1/tickets?limit=100");
    assert!(d.terminate().success());

    // What sled 0.34.7 leaves when a snapshot write hits a full disk: an empty
    // `snap.<LSN>.generating`, named so that it sorts after the last complete snapshot.
    let data = setup.data_dir();
    let last = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("snap.") && !n.ends_with(".generating"))
        .max()
        .unwrap_or_else(|| "snap.0000000000000000".into());
    let leftover = data.join(format!("{last}.generating"));
    std::fs::write(&leftover, b"").unwrap();

    let d = setup.start();
    assert_eq!(d.get_ok("/api/v1/tickets?limit=100"), before);
    let warning = d.wait_for_log(|v| {
        v["fields"]["message"]
            .as_str()
            .or(v["message"].as_str())
            .is_some_and(|m| m.starts_with("Removed an incomplete snapshot"))
    });
    assert!(warning.to_string().contains(".generating"), "{warning}");
    assert!(!leftover.exists());
    assert!(d.terminate().success());

    // Offline verification: counts per tree, every record decodes.
    let (ok, out, err) = itsmd(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("tickets "), "{out}");
    assert!(out.contains("OK: "), "{out}");
}

#[test]
fn a_store_that_cannot_be_opened_says_what_to_do() {
    let setup = Setup::new();
    let data = setup.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    // A damaged store: sled's config file is garbage.
    std::fs::write(data.join("conf"), b"\x00\x01garbage").unwrap();
    std::fs::write(data.join("db"), b"not a sled log").unwrap();
    let (ok, out, err) = itsmd(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.contains("itsmd check --data-dir"), "{err}");
    assert!(err.contains("itsmd import"), "{err}");
}
