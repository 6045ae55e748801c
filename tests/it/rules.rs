//! Rule authors' tools and the rule API's engine side, through the real binary.

use serde_json::json;

use crate::support::{Daemon, Setup, alert, itsmd};

/// Posts a firing alert and reads back the ticket it opened.
fn alerted(d: &Daemon) -> serde_json::Value {
    let (status, r) = d.post("/api/v1/events", &alert("firing", "x", json!({})));
    assert_eq!(status, 202, "{r}");
    d.get_ok(&format!(
        "/api/v1/tickets/{}",
        r["ticket"].as_str().unwrap()
    ))
}

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_shipped_rules_and_the_worked_examples_pass_their_tests() {
    for dir in ["rules", "rules/examples"] {
        let (ok, out) = itsmd(&["rules", "test", &repo(dir)]);
        assert!(ok, "{dir}:\n{out}");
        assert!(out.contains(" passed, 0 failed"), "{out}");
        assert!(!out.contains("FAILED"), "{out}");
    }
}

#[test]
fn a_failing_rule_test_shows_expected_against_actual() {
    let setup = Setup::new().rules(&[("10-a.rhai", "fn on_alert(a, t) { t.impact = \"low\"; }")]);
    let dir = setup.rules_dir.clone().unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("tests/t.toml"),
        r#"
[[case]]
name = "impact"
outcomes = ["opened"]
[[case.events]]
alert = { source = "x", status = "firing", severity = "critical", summary = "s" }
[[case.expect]]
ticket = "INC-000001"
fields = { impact = "high", group = "dba", kind = "incident", prio = 1 }
"#,
    )
    .unwrap();
    let (ok, out) = itsmd(&["rules", "test", dir.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED  t.toml :: impact"), "{out}");
    assert!(
        out.contains(r#"INC-000001.impact: expected "high", got "low""#),
        "{out}"
    );
    // `kind` is compared as the API shows it; a field no ticket has is named, not "null".
    assert!(!out.contains("INC-000001.kind"), "{out}");
    assert!(
        out.contains("INC-000001: a ticket has no field `prio`; did you mean priority?"),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn on_ticket_loops_are_cut_by_the_guard_and_nothing_is_lost() {
    // Every change adds another tag, so on_ticket would run forever.
    let rule = r#"fn on_ticket(ticket, change) { ticket.add_tag("round-" + change.depth); }"#;
    let d = Setup::new()
        .rules(&[("10-loop.rhai", rule)])
        .config("[rules]\nmax_ticket_hook_depth = 3\n")
        .start();
    let t = alerted(&d);
    assert_eq!(t["tags"], json!(["round-1", "round-2", "round-3"]));
    let last = t["history"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("stopped after 3 rounds"),
        "{last}"
    );
    d.wait_for_log(|v| {
        v["message"] == "on_ticket loop guard: rules kept changing the ticket; stopped."
    });
}

#[test]
fn a_decision_the_lifecycle_forbids_is_refused_and_noted() {
    // A new incident cannot be closed directly; the rule's other decisions stand.
    let rule = r#"fn on_alert(a, t) { t.add_tag("seen"); t.transition("closed", "no thanks"); }"#;
    let d = Setup::new().rules(&[("10-close.rhai", rule)]).start();
    let t = alerted(&d);
    assert_eq!(t["state"], "new");
    assert_eq!(t["tags"], json!(["seen"]));
    let refused = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["changes"][0]["field"] == "refused_decision")
        .cloned()
        .expect("a note");
    assert_eq!(refused["actor"]["file"], "10-close.rhai");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("cannot go from new to closed"),
        "{refused}"
    );
}

#[test]
fn history_names_a_rules_line_only_when_its_changes_came_from_one() {
    let d = Setup::new()
        .rules(&[
            (
                "10-one.rhai",
                "fn on_alert(a, t) {\n  t.add_tag(\"one\");\n}",
            ),
            (
                "20-two.rhai",
                "fn on_alert(a, t) {\n  t.add_tag(\"two\");\n  t.impact = \"low\";\n}",
            ),
        ])
        .start();
    let t = alerted(&d);
    let by = |file: &str| {
        t["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["actor"]["file"] == file)
            .map(|h| h["actor"].clone())
            .unwrap_or_else(|| panic!("no entry by {file}: {t}"))
    };
    assert_eq!(by("10-one.rhai")["line"], 2);
    assert!(by("20-two.rhai").get("line").is_none(), "{t}");
}

#[test]
fn bad_arguments_to_rule_functions_fail_the_rule_at_their_line() {
    let rule = "fn on_alert(a, t) {\n  t.transition(\"nowhere\", \"r\");\n}";
    let d = Setup::new().rules(&[("10-bad.rhai", rule)]).start();
    let (_, r) = d.post("/api/v1/events", &alert("firing", "x", json!({})));
    let t = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        r["ticket"].as_str().unwrap()
    ));
    assert_eq!(t["group"], "triage");
    assert!(t["history"].to_string().contains("10-bad.rhai:2: "), "{t}");
}

#[test]
fn replay_shows_what_a_candidate_rule_set_would_change_and_nothing_for_the_same_rules() {
    let running = r#"fn on_alert(a, t) { t.group = "one"; }"#;
    let setup =
        Setup::new()
            .rules(&[("10-route.rhai", running)])
            .config(&crate::support::groups_config(&[
                ("one", &[]),
                ("two", &[]),
            ]));
    let d = setup.start();
    d.post(
        "/api/v1/events",
        &alert("firing", "disk", json!({"alertname": "Disk"})),
    );
    d.post(
        "/api/v1/events",
        &alert("firing", "noise", json!({"alertname": "Noise"})),
    );
    d.post(
        "/api/v1/events",
        &alert("firing", "disk", json!({"alertname": "Disk"})),
    );
    let server = format!("http://{}", d.addr);

    // The rules that ran: replay reproduces everything.
    let (ok, out) = itsmd(&[
        "replay",
        "--rules",
        setup.rules_dir.as_ref().unwrap().to_str().unwrap(),
        "--server",
        &server,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("Replayed 3 events, compared 3."), "{out}");
    assert!(out.contains("No differences"), "{out}");

    // A candidate that routes elsewhere and suppresses the noise.
    let candidate = tempfile::tempdir().unwrap();
    std::fs::write(
        candidate.path().join("10-route.rhai"),
        r#"fn on_alert(a, t) { if a.labels.alertname == "Noise" { t.suppress("noise"); } t.group = "two"; }"#,
    )
    .unwrap();
    let (ok, out) = itsmd(&[
        "replay",
        "--rules",
        candidate.path().to_str().unwrap(),
        "--server",
        &server,
        "--json",
    ]);
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(
        report["event_differences"],
        json!([{
            "event": 2, "received_at": report["event_differences"][0]["received_at"],
            "happened": "opened INC-000002", "would": "suppressed"
        }])
    );
    let diffs = report["ticket_differences"].as_array().unwrap();
    assert!(
        diffs.contains(&json!({
            "ticket": "INC-000001", "replay_ticket": "INC-000001", "opened_by": 1,
            "field": "group", "happened": "one", "would": "two", "events": [1]
        })),
        "{report}"
    );
    assert!(
        diffs
            .iter()
            .any(|x| x["ticket"] == "INC-000002" && x["field"] == "state" && x["would"].is_null()),
        "{report}"
    );
    // Nothing changed in the real store.
    assert_eq!(d.get_ok("/api/v1/tickets/INC-000001")["group"], "one");

    // A candidate that does not compile gets every error back.
    std::fs::write(
        candidate.path().join("20-bad.rhai"),
        "fn on_alert(a, t) { let = ; }",
    )
    .unwrap();
    let (ok, out) = itsmd(&[
        "replay",
        "--rules",
        candidate.path().to_str().unwrap(),
        "--server",
        &server,
    ]);
    assert!(!ok && out.contains("rules_invalid"), "{out}");
}

#[test]
fn queries_find_open_tickets_by_key_and_by_labels() {
    let rule = r#"
fn on_alert(a, t) {
    if (a.labels.probe ?? "") == "yes" {
        t.set("by_key", open_tickets(#{ key: a.labels.target }).map(|x| x.id));
        t.set("by_labels", open_tickets(#{ labels: #{ alertname: "Disk", host: "db01" }, limit: 5 }).map(|x| x.id));
        t.set("no_match", open_tickets(#{ labels: #{ alertname: "Disk", host: "db02" } }).len());
    }
}"#;
    let d = Setup::new().rules(&[("10-q.rhai", rule)]).start();
    let (_, first) = d.post(
        "/api/v1/events",
        &alert(
            "firing",
            "disk",
            json!({"alertname": "Disk", "host": "db01"}),
        ),
    );
    let id = first["ticket"].as_str().unwrap().to_string();
    let key = d.get_ok(&format!("/api/v1/tickets/{id}"))["correlation_key"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, probe) = d.post(
        "/api/v1/events",
        &alert("firing", "probe", json!({"probe": "yes", "target": key})),
    );
    let p = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        probe["ticket"].as_str().unwrap()
    ));
    assert_eq!(p["custom"]["by_key"], json!([id]));
    assert_eq!(p["custom"]["by_labels"], json!([id]));
    assert_eq!(p["custom"]["no_match"], 0);
}

#[test]
fn clearing_a_priority_override_returns_to_the_matrix() {
    let rule = r#"fn on_alert(a, t) { t.priority = 1; if a.labels.withdraw == "yes" { t.clear_priority(); } }"#;
    let d = Setup::new().rules(&[("10-p.rhai", rule)]).start();
    let (_, kept) = d.post(
        "/api/v1/events",
        &alert("firing", "a", json!({"withdraw": "no"})),
    );
    let t = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        kept["ticket"].as_str().unwrap()
    ));
    assert_eq!(
        (t["priority"].clone(), t["priority_override"].clone()),
        (json!(1), json!(true))
    );
    let (_, cleared) = d.post(
        "/api/v1/events",
        &alert("firing", "b", json!({"withdraw": "yes"})),
    );
    let t = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        cleared["ticket"].as_str().unwrap()
    ));
    // medium impact × medium urgency in the default matrix.
    assert_eq!(t["priority"], 3);
    assert!(
        t.get("priority_override")
            .is_none_or(|v| v == &json!(false)),
        "{t}"
    );
}
