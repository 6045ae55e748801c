//! `itsmd ticket …` against a running daemon: the real binary on both ends.

use std::process::Command;

use serde_json::Value;

use crate::support::{BIN, Daemon, Setup, groups_config};

const TOKEN: &str = "cli-agent-token-0123456789";

/// Runs `itsmd ticket ARGS --server … --token …`: success, stdout, stderr.
pub(crate) fn ticket(d: &Daemon, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("ticket").args(args).arg("--server").arg(d.url(""));
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let out = cmd
        .env_remove("ITSMD_TOKEN")
        .output()
        .expect("run itsmd ticket");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    let (success, stdout, stderr) = ticket(d, Some(TOKEN), args);
    assert!(success, "itsmd ticket {args:?} failed: {stderr}");
    stdout
}

/// A daemon whose `dba` group has ann, who holds the agent token and authorises normal
/// changes.
fn start() -> Daemon {
    let config = format!(
        "{}[[auth.tokens]]\nname = \"ann\"\nrole = \"agent\"\ntoken = \"{TOKEN}\"\n\
         [approval.changes.normal]\napprovers = [\"ann\"]\n",
        groups_config(&[("dba", &["ann"])])
    );
    Setup::new().config(&config).start()
}

#[test]
fn an_agent_works_a_ticket_from_the_command_line() {
    let d = start();

    let out = ok(
        &d,
        &[
            "create",
            "--kind",
            "incident",
            "--title",
            "Replica lag on db02",
            "--group",
            "dba",
            "--impact",
            "high",
            "--urgency",
            "high",
        ],
    );
    assert!(out.starts_with("INC-000001  new  P1  group dba"), "{out}");

    let json: Value = serde_json::from_str(&ok(
        &d,
        &[
            "update",
            "INC-000001",
            "--assignee",
            "ann",
            "--reason",
            "mine",
            "--json",
        ],
    ))
    .expect("--json prints JSON");
    assert_eq!(json["assignee"], "ann");

    ok(
        &d,
        &[
            "transition",
            "INC-000001",
            "in_progress",
            "--reason",
            "looking",
        ],
    );
    let out = ok(
        &d,
        &[
            "transition",
            "INC-000001",
            "on_hold",
            "--reason",
            "vendor",
            "--hold-reason",
            "awaiting_vendor",
        ],
    );
    assert!(out.contains("hold_reason: awaiting_vendor\n"), "{out}");
    ok(
        &d,
        &[
            "comment",
            "INC-000001",
            "Waiting for the storage vendor.",
            "--public",
        ],
    );

    let list = ok(&d, &["list", "--group", "dba"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("TITLE"),
        "{list}"
    );
    assert!(
        lines[1].contains("INC-000001") && lines[1].contains("on_hold") && lines[1].contains("ann"),
        "{list}"
    );

    let show = ok(&d, &["show", "INC-000001"]);
    assert!(show.contains("why: vendor"), "{show}");
    assert!(show.contains("state in_progress → on_hold"), "{show}");
    assert!(
        show.contains("ann (public): Waiting for the storage vendor."),
        "{show}"
    );

    // Refused by the API: its message, a non-zero exit, nothing on stdout.
    let (success, stdout, stderr) = ticket(
        &d,
        Some(TOKEN),
        &["transition", "INC-000001", "closed", "--reason", "done"],
    );
    assert!(!success);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("409 illegal_transition: incident cannot go from on_hold to closed; allowed: in_progress, resolved, canceled"),
        "{stderr}"
    );
    let (success, _, stderr) = ticket(&d, None, &["list"]);
    assert!(!success);
    assert!(stderr.contains("401 unauthorized"), "{stderr}");
}

#[test]
fn an_unreachable_daemon_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["ticket", "list", "--server", "http://127.0.0.1:9"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the itsmd daemon at http://127.0.0.1:9"),
        "{stderr}"
    );
}

#[test]
fn links_windows_sla_and_checked_values_from_the_command_line() {
    let d = start();
    let json = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&ok(&d, &all)).expect("--json prints JSON")
    };
    let change = json(&[
        "create",
        "--kind",
        "change",
        "--title",
        "Upgrade db02",
        "--change-type",
        "normal",
    ]);
    assert_eq!(change["kind"], "change");
    let planned = json(&[
        "update",
        "CHG-000001",
        "--window-start",
        "2030-01-05T22:00:00Z",
        "--window-end",
        "2030-01-06T02:00:00Z",
        "--reason",
        "planned",
    ]);
    assert_eq!(planned["change"]["window"]["start"], "2030-01-05T22:00:00Z");
    assert_eq!(planned["change"]["window"]["end"], "2030-01-06T02:00:00Z");
    let cleared = json(&["update", "CHG-000001", "--no-window"]);
    assert!(cleared["change"].get("window").is_none(), "{cleared}");

    let incident = json(&[
        "create",
        "--kind",
        "incident",
        "--title",
        "db02 down",
        "--group",
        "dba",
    ]);
    assert_eq!(incident["kind"], "incident");
    assert_eq!(json(&["show", "INC-000001"])["kind"], "incident");
    assert_eq!(
        json(&["list", "--kind", "change"])["tickets"][0]["kind"],
        "change"
    );
    let out = ok(&d, &["link", "INC-000001", "caused_by", "CHG-000001"]);
    assert!(
        out.contains("links: rel=caused_by ticket=CHG-000001\n"),
        "{out}"
    );
    assert_eq!(json(&["show", "CHG-000001"])["links"][0]["rel"], "causes");

    let sla = ok(&d, &["sla", "INC-000001"]);
    let lines: Vec<&str> = sla.lines().collect();
    assert!(lines[0].starts_with("INC-000001  policy incident"), "{sla}");
    assert!(
        lines[1].starts_with("CLOCK") && lines[1].contains("REMAINING"),
        "{sla}"
    );
    assert!(
        sla.lines()
            .any(|l| l.starts_with("resolution") && l.contains("running") && l.contains("72h")),
        "{sla}"
    );

    // Comment authors by name.
    ok(&d, &["comment", "INC-000001", "On it."]);
    let show = ok(&d, &["show", "INC-000001"]);
    assert!(show.contains("ann (internal): On it."), "{show}");

    // Closed vocabularies are checked before anything is sent, naming the flag and the
    // allowed values.
    for (args, says) in [
        (
            vec![
                "transition",
                "INC-000001",
                "on_hold",
                "--reason",
                "r",
                "--hold-reason",
                "waiting",
            ],
            "invalid value 'waiting' for '--hold-reason <HOLD_REASON>'",
        ),
        (
            vec![
                "create", "--kind", "incident", "--title", "x", "--impact", "huge",
            ],
            "[possible values: high, medium, low]",
        ),
        (
            vec!["link", "INC-000001", "causd", "CHG-000001"],
            "caused_by, causes, fixed_by",
        ),
        (
            vec!["transition", "INC-000001", "done", "--reason", "r"],
            "invalid value 'done' for '<TO>'",
        ),
        (
            vec!["create", "--kind", "incidnet", "--title", "x"],
            "incident, request, problem, change",
        ),
        (
            vec!["update", "INC-000001", "--reason", "r"],
            "nothing to update: give at least one field",
        ),
    ] {
        let (success, stdout, stderr) = ticket(&d, Some(TOKEN), &args);
        assert!(!success && stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("invalid JSON"), "{stderr}");
    }
    assert_eq!(
        json(&["show", "INC-000001"])["state"],
        "new",
        "nothing was sent"
    );
}

#[test]
fn a_change_approver_implements_outside_the_window_with_a_reason() {
    let d = start();
    ok(
        &d,
        &[
            "create",
            "--kind",
            "change",
            "--title",
            "Move the racks",
            "--window-start",
            "2030-01-05T22:00:00Z",
            "--window-end",
            "2030-01-06T02:00:00Z",
        ],
    );
    for to in ["assess", "authorize", "scheduled"] {
        ok(&d, &["transition", "CHG-000001", to, "--reason", to]);
    }
    let go = ["transition", "CHG-000001", "implement", "--reason", "go"];
    let (success, _, stderr) = ticket(&d, Some(TOKEN), &go);
    assert!(!success);
    assert!(
        stderr.contains("409 conflict: CHG-000001 is outside its window"),
        "{stderr}"
    );
    let mut with_reason = go.to_vec();
    with_reason.extend(["--window-override", "the movers come early"]);
    let out = ok(&d, &with_reason);
    assert!(out.starts_with("CHG-000001  implement"), "{out}");
    let show = ok(&d, &["show", "CHG-000001"]);
    assert!(
        show.contains("why: go (outside its window 2030-01-05T22:00:00Z .. 2030-01-06T02:00:00Z, overridden by ann: the movers come early)"),
        "{show}"
    );
    assert!(
        show.contains("why: scheduled (authorization 1 of 1, by ann)"),
        "{show}"
    );
}
