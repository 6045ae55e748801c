//! Rules v2 through the real daemon: a replay you can trust (the same rules over the same
//! journal give no differences, SLA stages, escalations and all; a changed rule gives exactly
//! its own differences, tickets matched by the event that opened them).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, alert, itsmd};

fn shipped(name: &str) -> (String, String) {
    let path = format!("{}/rules/{name}", env!("CARGO_MANIFEST_DIR"));
    (name.to_string(), std::fs::read_to_string(path).unwrap())
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Triage escalates to operations; both have a lead. Incidents: 2 s response, 3 s resolution,
/// warnings at 50 % and 90 %.
const CONFIG: &str = r#"
[groups.triage]
members = ["tina"]
lead = "tina"
escalate_to = "operations"
[groups.operations]
members = ["olivia"]
lead = "olivia"

[[sla.policies]]
name = "fast"
kinds = ["incident"]
response = "2s"
resolution = "3s"
warnings = [50, 90]
"#;

fn replay(d: &Daemon, rules: &std::path::Path, json: bool) -> (bool, String) {
    let server = format!("http://{}", d.addr);
    let mut args = vec![
        "replay",
        "--rules",
        rules.to_str().unwrap(),
        "--server",
        &server,
    ];
    if json {
        args.push("--json");
    }
    itsmd(&args)
}

fn report(out: &str) -> Value {
    serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap()
}

#[test]
fn replay_of_the_running_rules_reports_nothing_and_a_changed_rule_exactly_its_effect() {
    let files: Vec<(String, String)> = [
        "00-defaults.rhai",
        "05-mail.rhai",
        "10-escalation.rhai",
        "10-noise.rhai",
    ]
    .iter()
    .map(|n| shipped(n))
    .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let setup = Setup::new().rules(&refs).config(CONFIG);
    let d = setup.start();
    let post = |body: String| {
        let (status, answer) = d.post("/api/v1/events", &body);
        assert_eq!(status, 202, "{answer}");
        answer
    };
    // A week in miniature: noise that opens a ticket, real alerts, a heartbeat the shipped
    // rules suppress, an agent taking one incident, one resolving and firing again.
    post(alert("firing", "noise", json!({"alertname": "Noise"})));
    post(alert("firing", "disk", json!({"alertname": "Disk"})));
    post(alert(
        "firing",
        "heartbeat",
        json!({"alertname": "Watchdog"}),
    ));
    post(alert("firing", "cpu", json!({"alertname": "Cpu"})));
    let (status, answer) = d.post(
        "/api/v1/tickets/INC-000003/transitions",
        &json!({"to": "in_progress", "reason": "taking it"}).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    // The SLA clocks warn and breach; the shipped escalation rule tells leads and escalates.
    wait_until("the breaches and escalations", || {
        ["INC-000001", "INC-000002"].iter().all(|id| {
            let h = d
                .get_ok(&format!("/api/v1/tickets/{id}/history"))
                .to_string();
            h.matches(r#""stage":"breach""#).count() >= 2
        })
    });
    post(alert("resolved", "disk", json!({"alertname": "Disk"})));
    post(alert("firing", "disk", json!({"alertname": "Disk"})));
    // Let the last timers fire, so the journal holds SLA events after the last alert too:
    // no ticket has a timer left.
    wait_until("every SLA timer has fired", || {
        d.get_ok("/api/v1/tickets")["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| {
                let id = t["id"].as_str().unwrap();
                d.get_ok(&format!("/api/v1/tickets/{id}/sla"))["timers"]
                    .as_array()
                    .is_some_and(|timers| timers.is_empty())
            })
    });
    let history = d.get_ok("/api/v1/tickets/INC-000002/history").to_string();
    assert!(history.contains("breach"), "{history}");
    assert!(history.contains("notified"), "{history}");

    // The running rules, twice: no differences, in the terminal and as JSON.
    let rules_dir = setup.rules_dir.clone().unwrap();
    for _ in 0..2 {
        let (ok, out) = replay(&d, &rules_dir, false);
        assert!(ok, "{out}");
        assert!(out.contains("No differences"), "{out}");
        let (ok, out) = replay(&d, &rules_dir, true);
        assert!(ok, "{out}");
        let r = report(&out);
        assert_eq!(r["event_differences"], json!([]), "{r:#}");
        assert_eq!(r["ticket_differences"], json!([]), "{r:#}");
        assert!(r["events"].as_u64().unwrap() >= 12, "{r:#}");
    }

    // A candidate that also suppresses the noise: INC-000001 is never opened, so every later
    // ticket has another number in the replay; matched by origin, none of them differs.
    let candidate = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        std::fs::write(candidate.path().join(name), text).unwrap();
    }
    std::fs::write(
        candidate.path().join("20-noise.rhai"),
        "fn on_alert(alert, ticket) {\n    if alert.labels.alertname == \"Noise\" { ticket.suppress(\"noise\"); }\n}\n",
    )
    .unwrap();
    let (ok, out) = replay(&d, candidate.path(), true);
    assert!(ok, "{out}");
    let r = report(&out);
    let events = r["event_differences"].as_array().unwrap();
    assert_eq!(events[0]["event"], 1, "{r:#}");
    assert_eq!(events[0]["happened"], "opened INC-000001", "{r:#}");
    assert_eq!(events[0]["would"], "suppressed", "{r:#}");
    // The other differing events are INC-000001's own SLA timers, which the replay lacks.
    for e in &events[1..] {
        assert!(
            e["happened"].as_str().unwrap().ends_with("INC-000001"),
            "{r:#}"
        );
        assert!(!e["would"].as_str().unwrap().contains("INC-"), "{r:#}");
    }
    let tickets = r["ticket_differences"].as_array().unwrap();
    assert!(!tickets.is_empty());
    for t in tickets {
        assert_eq!(t["ticket"], "INC-000001", "{r:#}");
        assert_eq!(t["replay_ticket"], Value::Null, "{r:#}");
        assert_eq!(t["opened_by"], 1, "{r:#}");
        assert_eq!(t["would"], Value::Null, "{r:#}");
    }
    let state = tickets.iter().find(|t| t["field"] == "state").unwrap();
    assert_eq!(state["events"][0], 1, "{r:#}");
    assert!(
        tickets.iter().any(|t| t["field"] == "sla.escalation"),
        "{r:#}"
    );
    // The terminal shows the same per ticket and field, old → new, with the events.
    let (ok, out) = replay(&d, candidate.path(), false);
    assert!(ok, "{out}");
    assert!(out.contains("INC-000001 (opened by event 1)"), "{out}");
    assert!(out.contains("state"), "{out}");
    assert!(out.contains("→ —"), "{out}");

    // A broken candidate: every error with its file and line.
    std::fs::write(
        candidate.path().join("30-broken.rhai"),
        "fn on_alert(alert, ticket) {\n    let x = ;\n}\n",
    )
    .unwrap();
    std::fs::write(
        candidate.path().join("31-broken.rhai"),
        "fn on_ticket(ticket, change) {\n\n    ticket.title = \n}\n",
    )
    .unwrap();
    let (ok, out) = replay(&d, candidate.path(), false);
    assert!(!ok, "{out}");
    assert!(out.contains("422 rules_invalid: 2 error(s)"), "{out}");
    assert!(out.contains("30-broken.rhai:2:"), "{out}");
    assert!(out.contains("31-broken.rhai:4:"), "{out}");
}

#[test]
fn a_correlation_rule_opens_one_problem_for_a_service_and_replay_matches_it_by_origin() {
    let example = format!(
        "{}/rules/examples/95-problem-from-incidents.rhai",
        env!("CARGO_MANIFEST_DIR")
    );
    let example = std::fs::read_to_string(example).unwrap();
    // A rule with a typo in open_ticket's fields fails visibly, naming the field (a literal
    // map's typo is refused by `rules check` already; this one is computed).
    let typo = r#"fn on_alert(alert, ticket) {
    if alert.labels.alertname == "Typo" {
        let fields = #{};
        fields["titel"] = "x";
        ticket.open_ticket("problem", fields);
    }
}
"#;
    let setup = Setup::new()
        .rules(&[("95-problem.rhai", &example), ("96-typo.rhai", typo)])
        .config(&crate::support::groups_config(&[]));
    let d = setup.start();
    for name in ["Slow", "Errors", "Timeouts", "Disk"] {
        let (status, answer) = d.post(
            "/api/v1/events",
            &alert(
                "firing",
                name,
                json!({"alertname": name, "service": "billing"}),
            ),
        );
        assert_eq!(status, 202, "{answer}");
    }
    let problem = d.get_ok("/api/v1/tickets/PRB-000001");
    assert_eq!(problem["title"], "Recurring incidents on billing");
    let linked: Vec<&str> = problem["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ticket"].as_str().unwrap())
        .collect();
    assert_eq!(
        linked,
        ["INC-000003", "INC-000002", "INC-000001", "INC-000004"]
    );
    let history = d.get_ok("/api/v1/tickets/PRB-000001/history").to_string();
    assert!(history.contains("95-problem.rhai"), "{history}");
    let (status, _) = d.get("/api/v1/tickets/PRB-000002");
    assert_eq!(status, 404, "one problem, not one per incident");

    let (status, answer) = d.post(
        "/api/v1/events",
        &alert("firing", "typo", json!({"alertname": "Typo"})),
    );
    assert_eq!(status, 202, "{answer}");
    let t = d.get_ok("/api/v1/tickets/INC-000005/history").to_string();
    assert!(t.contains("unknown field `titel`"), "{t}");

    // The same rules: the rule-opened problem is matched by the event that opened it.
    let rules_dir = setup.rules_dir.clone().unwrap();
    let (ok, out) = replay(&d, &rules_dir, true);
    assert!(ok, "{out}");
    let r = report(&out);
    assert_eq!(r["event_differences"], json!([]), "{r:#}");
    assert_eq!(r["ticket_differences"], json!([]), "{r:#}");

    // Without the rule: no problem, and the incidents are not linked.
    let candidate = tempfile::tempdir().unwrap();
    std::fs::write(candidate.path().join("96-typo.rhai"), typo).unwrap();
    let (ok, out) = replay(&d, candidate.path(), true);
    assert!(ok, "{out}");
    let r = report(&out);
    assert_eq!(r["event_differences"], json!([]), "{r:#}");
    let diffs = r["ticket_differences"].as_array().unwrap();
    let problem: Vec<&Value> = diffs
        .iter()
        .filter(|x| x["ticket"] == "PRB-000001")
        .collect();
    assert!(
        problem
            .iter()
            .all(|x| x["replay_ticket"].is_null() && x["opened_by"] == 3),
        "{r:#}"
    );
    for id in ["INC-000001", "INC-000002", "INC-000003", "INC-000004"] {
        assert!(
            diffs
                .iter()
                .any(|x| x["ticket"] == id && x["field"] == "links" && x["would"].is_null()),
            "{id}: {r:#}"
        );
    }
}

/// Time in rules, through `itsmd rules test`: the case pins the clock (`now`, `at`, `after`)
/// and the rule reads it and the configured office calendar.
#[test]
fn rules_read_the_pinned_time_and_business_hours_of_a_calendar() {
    let rule = r#"fn on_alert(alert, ticket) {
    if !ticket.is_new { return; }
    let calendar = alert.labels.calendar ?? "office";
    ticket.set("seen_at", now());
    if in_business_hours(calendar) {
        ticket.group = "operations";
    } else {
        ticket.group = "oncall";
        ticket.add_tag("after-hours");
    }
    ticket.set("business_minutes_left", business_time_until(calendar, "2026-12-08T17:00:00Z"));
}
"#;
    let test = r#"config = """
[groups.triage]
[groups.operations]
[groups.oncall]
[calendars.office]
timezone = "Europe/Berlin"
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
"""

[[case]]
name = "office hours route to operations, the evening to on-call"
now = "2026-12-07T08:00:00Z"
[[case.events]]
alert = { source = "t", status = "firing", severity = "warning", summary = "Monday 09:00 Berlin", labels = { n = "1" } }
[[case.events]]
at = "2026-12-07T18:00:00Z"
alert = { source = "t", status = "firing", severity = "warning", summary = "Monday 19:00 Berlin", labels = { n = "2" } }
[[case.events]]
after = "14h"
alert = { source = "t", status = "firing", severity = "warning", summary = "Tuesday 09:00 Berlin", labels = { n = "3" } }
[[case.events]]
alert = { source = "t", status = "firing", severity = "warning", summary = "unknown calendar", labels = { n = "4", calendar = "ofice" } }
[[case.expect]]
ticket = "INC-000001"
fields = { group = "operations", custom = { seen_at = "2026-12-07T08:00:00Z", business_minutes_left = 960 } }
[[case.expect]]
ticket = "INC-000002"
fields = { group = "oncall", tags = ["after-hours"], custom = { seen_at = "2026-12-07T18:00:00Z", business_minutes_left = 480 } }
[[case.expect]]
ticket = "INC-000003"
fields = { group = "operations", custom = { seen_at = "2026-12-08T08:00:00Z", business_minutes_left = 480 } }
[[case.expect]]
ticket = "INC-000004"
fields = { group = "triage" }
history_mentions = ["unknown calendar `ofice`; configured calendars: 24x7, office"]
"#;
    passes_its_rules_test(("20-hours.rhai", rule), ("hours.toml", test));
}

#[test]
fn rules_check_names_unknown_hooks_wrong_arities_and_unknown_properties_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("20-typo.rhai"),
        "// routes alerts\nfn on_alrt(alert, ticket) {\n    ticket.group = \"dba\";\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("30-arity.rhai"),
        "fn helper(x) { x }\nfn on_clock(ticket) { }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("40-fields.rhai"),
        "fn on_mail(m, t) {\n    // m.subjct in a comment is no read\n    if m.subjct == \"x\" { t.add_tag(`${m.from}`); }\n}\n",
    )
    .unwrap();
    // Literal arguments: a query key, an open_ticket field, a calendar not configured.
    std::fs::write(
        dir.path().join("50-literals.rhai"),
        "fn on_alert(a, t) {\n    let n = tickets(#{ kind: \"incident\", servce: \"db\" });\n    t.open_ticket(\"problem\", #{ titel: \"x\" });\n    if in_business_hours(\"ofice\") { t.add_tag(\"bh\"); }\n    t.notify(\"dba\", \"disk_ful\");\n}\n",
    )
    .unwrap();
    let (ok, out) = itsmd(&["rules", "check", dir.path().to_str().unwrap()]);
    assert!(!ok, "{out}");
    for expected in [
        "50-literals.rhai:2:42: tickets: unknown query key `servce`; did you mean service?",
        "50-literals.rhai:3:33: open_ticket: unknown field `titel`; did you mean title?",
        "50-literals.rhai:4:26: in_business_hours: calendar `ofice` is not configured; calendars: 24x7",
        "50-literals.rhai:5: notify: template `disk_ful` is not known; notification templates: assigned,",
    ] {
        assert!(out.contains(expected), "{expected}\n{out}");
    }
    assert!(
        out.contains("20-typo.rhai:2:1: unknown hook `on_alrt`; did you mean on_alert?"),
        "{out}"
    );
    assert!(
        out.contains(
            "30-arity.rhai:2:1: on_clock must take 2 parameters (ticket, clock), this one takes 1"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "40-fields.rhai:3:8: on_mail reads `m.subjct`, which the mail does not have; did you mean subject?"
        ),
        "{out}"
    );
    assert_eq!(out.matches("40-fields.rhai").count(), 1, "{out}");
}

/// A query map the rule builds is checked when it runs: a misspelt key fails the rule,
/// naming the key, instead of filtering nothing.
#[test]
fn a_computed_query_with_an_unknown_key_fails_the_rule_naming_it() {
    let rule = r#"fn on_alert(alert, ticket) {
    let q = #{};
    q[alert.labels.filter] = "dba";
    ticket.set("found", open_tickets(q).len());
}
"#;
    let test = r#"[[case]]
name = "grup is not a filter"
[[case.events]]
alert = { source = "t", status = "firing", severity = "warning", summary = "a", labels = { filter = "grup" } }
[[case.expect]]
ticket = "INC-000001"
fields = { group = "triage" }
history_mentions = ["unknown query key `grup`; did you mean group? expected key, group, labels, limit"]
"#;
    passes_its_rules_test(("20-query.rhai", rule), ("query.toml", test));
}

/// `ticket.priority` of the incident an alert would open reads the matrix's priority (not
/// `()`), and follows impact and urgency decided before it, until a rule overrides it.
#[test]
fn a_new_tickets_priority_reads_the_matrix_in_on_alert() {
    let rule = r#"fn on_alert(alert, ticket) {
    ticket.set("at_first", ticket.priority);
    ticket.urgency = "high";
    ticket.set("after_urgency", ticket.priority);
    if alert.labels.page == "true" { ticket.priority = 1; ticket.impact = "low"; }
    ticket.set("last", ticket.priority);
}
"#;
    let test = r#"[[case]]
name = "the priority a rule reads is the one the ticket gets"
[[case.events]]
alert = { source = "t", status = "firing", severity = "warning", summary = "a", labels = { n = "1" } }
[[case.events]]
alert = { source = "t", status = "firing", severity = "warning", summary = "b", labels = { n = "2", page = "true" } }
[[case.expect]]
ticket = "INC-000001"
fields = { priority = 2, custom = { at_first = 3, after_urgency = 2, last = 2 } }
[[case.expect]]
ticket = "INC-000002"
fields = { priority = 1, custom = { at_first = 3, after_urgency = 2, last = 1 } }
"#;
    passes_its_rules_test(("20-priority.rhai", rule), ("priority.toml", test));
}

/// Writes one rule file and one test file into a fresh rules folder and asserts that
/// `itsmd rules test` passes its one case.
fn passes_its_rules_test(rule: (&str, &str), test: (&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(dir.path().join(rule.0), rule.1).unwrap();
    std::fs::write(dir.path().join("tests").join(test.0), test.1).unwrap();
    let (ok, out) = itsmd(&["rules", "test", dir.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
}

/// Per-event caps: a chatty rule's comments past the cap are dropped with a history entry;
/// a rule that keeps hitting its caps is disabled until the next reload (on /healthz and
/// /metrics), and runs again once the rules are reloaded.
#[test]
fn a_rule_that_keeps_hitting_its_caps_is_disabled_until_the_next_reload() {
    let chatty = r#"fn on_alert(alert, ticket) {
    ticket.add_tag("ran");
    for i in 0..30 { ticket.comment(`note ${i}`); }
}
"#;
    let mut config = crate::support::groups_config(&[]);
    config.push_str("[rules]\nmax_comments_per_event = 2\ndisable_after = 2\n");
    let setup = Setup::new()
        .rules(&[("20-chatty.rhai", chatty)])
        .config(&config);
    let d = setup.start();
    let fire = |n: u32| {
        let (status, answer) = d.post(
            "/api/v1/events",
            &alert("firing", "chatty", json!({"n": n.to_string()})),
        );
        assert_eq!(status, 202, "{answer}");
    };
    fire(1);
    let t = d.get_ok("/api/v1/tickets/INC-000001");
    assert_eq!(t["comments"], 2, "{t}");
    let history = d.get_ok("/api/v1/tickets/INC-000001/history").to_string();
    assert!(
        history.contains(
            "rule reached the cap of 2 comments per event (rules.max_comments_per_event)"
        ),
        "{history}"
    );
    fire(2);
    fire(3);
    let t = d.get_ok("/api/v1/tickets/INC-000003");
    assert_eq!(
        t["tags"],
        json!([]),
        "disabled after two events at the cap: {t}"
    );
    assert_eq!(
        d.get_ok("/healthz")["disabled_rules"],
        json!(["20-chatty.rhai"])
    );
    assert_eq!(d.metric("itsmd_rules_disabled"), 1.0);
    d.wait_for_log(|l| {
        l["message"] == "Rule disabled until the next reload: it kept exhausting its budget."
    });

    // A reload (the file changed) brings it back.
    let file = setup.rules_dir.as_ref().unwrap().join("20-chatty.rhai");
    std::fs::write(&file, format!("{chatty}// edited\n")).unwrap();
    wait_until("the reload", || {
        d.get_ok("/healthz")["disabled_rules"] == json!([]) && {
            fire(4);
            true
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, t) = d.get("/api/v1/tickets/INC-000004");
        if status == 200 && t["tags"] == json!(["ran"]) {
            break;
        }
        assert!(Instant::now() < deadline, "{t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A candidate under which an incident runs a stricter SLA: the replay fires that
/// incident's timers itself, when they fall due, and reports the breaches and escalations the
/// daemon never had; the other incident's timers, fired by the journal, match.
#[test]
fn replay_fires_the_sla_timers_only_the_candidate_schedules() {
    let files: Vec<(String, String)> = ["00-defaults.rhai", "10-escalation.rhai"]
        .iter()
        .map(|n| shipped(n))
        .collect();
    let lenient = "fn on_alert(alert, ticket) {\n    if alert.labels.alertname == \"Disk\" { ticket.sla_policy = \"lenient\"; }\n}\n";
    let mut refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    refs.push(("20-lenient.rhai", lenient));
    let config = format!(
        "{CONFIG}\n[[sla.policies]]\nname = \"lenient\"\nkinds = [\"incident\"]\nresponse = \"1h\"\nresolution = \"2h\"\n"
    );
    let setup = Setup::new().rules(&refs).config(&config);
    let d = setup.start();
    let post = |name: &str| {
        let (status, answer) = d.post(
            "/api/v1/events",
            &alert("firing", name, json!({"alertname": name})),
        );
        assert_eq!(status, 202, "{answer}");
    };
    post("Disk");
    post("Cpu");
    wait_until("the Cpu incident's breaches", || {
        let h = d.get_ok("/api/v1/tickets/INC-000002/history").to_string();
        h.matches(r#""stage":"breach""#).count() >= 2
    });
    // Both incidents' clocks have fallen due (Disk's before Cpu's): the replay reaches them
    // all before the journal's last event.
    post("Late");

    let (ok, out) = replay(&d, setup.rules_dir.as_ref().unwrap(), true);
    assert!(ok, "{out}");
    let r = report(&out);
    assert_eq!(r["event_differences"], json!([]), "{r:#}");
    assert_eq!(r["ticket_differences"], json!([]), "{r:#}");

    // Without the lenient rule, Disk runs the fast policy too.
    let candidate = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        std::fs::write(candidate.path().join(name), text).unwrap();
    }
    let (ok, out) = replay(&d, candidate.path(), true);
    assert!(ok, "{out}");
    let r = report(&out);
    let events = r["event_differences"].as_array().unwrap();
    assert_eq!(
        events.len(),
        6,
        "two warnings and a breach per clock: {r:#}"
    );
    for e in events {
        assert_eq!(e["event"], Value::Null, "{r:#}");
        assert_eq!(e["would"], "SLA timer fires: updated INC-000001", "{r:#}");
    }
    let tickets = r["ticket_differences"].as_array().unwrap();
    assert!(tickets.iter().all(|t| t["ticket"] == "INC-000001"), "{r:#}");
    let escalation = tickets
        .iter()
        .find(|t| t["field"] == "sla.escalation")
        .unwrap();
    assert_eq!(escalation["happened"], Value::Null, "{r:#}");
    assert_eq!(escalation["would"], 2, "{r:#}");
    let policy = tickets.iter().find(|t| t["field"] == "sla.policy").unwrap();
    assert_eq!(policy["happened"], "lenient", "{r:#}");
    assert_eq!(policy["would"], "fast", "{r:#}");
}

/// `tickets(#{ service })` reads the index the engine keeps in its commits: it follows an
/// incident from open to resolved, finds the problem by its custom `service`, answers without
/// links, and after a restart still finds the same tickets; the problem's links, most of them
/// kept apart from its record, read back whole and in order.
#[test]
fn service_queries_follow_tickets_through_the_index_and_links_survive_a_restart() {
    let example = format!(
        "{}/rules/examples/95-problem-from-incidents.rhai",
        env!("CARGO_MANIFEST_DIR")
    );
    let example = std::fs::read_to_string(example).unwrap();
    let probe = r#"fn on_alert(alert, ticket) {
    if alert.labels.alertname != "Probe" { return; }
    let s = alert.labels.target;
    ticket.set("open", tickets(#{ kind: "incident", service: s }).map(|t| t.id));
    ticket.set("resolved", tickets(#{ kind: "incident", service: s, state: "resolved" }).map(|t| t.id));
    ticket.set("any", count_tickets(#{ service: s, state: "any" }));
    ticket.set("recent", count_tickets(#{ kind: "incident", service: s, minutes: 60 }));
    ticket.set("problems", tickets(#{ kind: "problem", service: s }).map(|t| t.id));
    ticket.set("with_links", tickets(#{ kind: "problem", service: s }).filter(|t| t.contains("links")).len());
    ticket.set("other", tickets(#{ service: "nothing-here" }).len());
}
"#;
    let setup = Setup::new()
        .rules(&[("95-problem.rhai", &example), ("97-probe.rhai", probe)])
        .config(&crate::support::groups_config(&[]));
    let d = setup.start();
    for name in ["Slow", "Errors", "Timeouts", "Disk"] {
        let (status, answer) = d.post(
            "/api/v1/events",
            &alert(
                "firing",
                name,
                json!({"alertname": name, "service": "billing"}),
            ),
        );
        assert_eq!(status, 202, "{answer}");
    }
    let (status, answer) = d.post(
        "/api/v1/tickets/INC-000001/transitions",
        &json!({"to": "resolved", "reason": "fixed", "resolution": "fixed"}).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let expected = json!({
        "open": ["INC-000004", "INC-000003", "INC-000002"],
        "resolved": ["INC-000001"],
        "any": 5,
        "recent": 3,
        "problems": ["PRB-000001"],
        "with_links": 0,
        "other": 0,
    });
    let probe_answers = |d: &Daemon, n: &str| {
        let (status, answer) = d.post(
            "/api/v1/events",
            &alert(
                "firing",
                n,
                json!({"alertname": "Probe", "target": "billing", "n": n}),
            ),
        );
        assert_eq!(status, 202, "{answer}");
        let id = answer["ticket"].as_str().unwrap().to_string();
        let custom = d.get_ok(&format!("/api/v1/tickets/{id}"))["custom"].clone();
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(&custom[k], v, "{k} after {n}: {custom:#}");
        }
    };
    probe_answers(&d, "first");
    let links = |d: &Daemon| {
        d.get_ok("/api/v1/tickets/PRB-000001")["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                format!(
                    "{} {}",
                    l["rel"].as_str().unwrap(),
                    l["ticket"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    let before = links(&d);
    assert_eq!(
        before,
        [
            "causes INC-000003",
            "causes INC-000002",
            "causes INC-000001",
            "causes INC-000004"
        ]
    );
    assert_eq!(d.terminate().code(), Some(0));

    let d = setup.start();
    assert_eq!(links(&d), before, "the links read back from the store");
    probe_answers(&d, "second");
    // A fifth incident of the service links to the same problem after the restart.
    let (status, answer) = d.post(
        "/api/v1/events",
        &alert(
            "firing",
            "Latency",
            json!({"alertname": "Latency", "service": "billing"}),
        ),
    );
    assert_eq!(status, 202, "{answer}");
    let id = answer["ticket"].as_str().unwrap().to_string();
    assert_eq!(
        links(&d).last().map(String::as_str),
        Some(format!("causes {id}").as_str())
    );
}
