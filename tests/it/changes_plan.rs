//! Change enablement beyond the votes, through the real daemon and CLI: risk and back-out
//! plan, the post-implementation review an emergency change needs before it closes, the
//! standard change catalogue, the change calendar with its conflicts, and the incidents
//! linked to the change that may have caused them.

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, itsmd, wait_until};
use crate::ticket_cli::ticket;
use crate::tickets::{APPROVERS, open_window, send, step_as, window as later};

const ALICE: &str = "alice-token-0123456789";
const CAROL: &str = "carol-token-0123456789";

/// Tokens for alice, bob and carol; alice authorises normal and emergency changes; two
/// standard change templates; back-out plans bounded by a small description limit.
fn config() -> String {
    format!(
        "{APPROVERS}
[approval.changes.normal]
approvers = [\"alice\"]

[approval.changes.emergency]
approvers = [\"alice\"]

[limits]
description_bytes = 200

[changes.templates.certs]
title = \"Rotate the TLS certificates\"
service = \"checkout\"
risk = \"low\"
backout_plan = \"Put the previous certificates back\"
authorized_by = \"CAB 2026-03-02\"

[changes.templates.restart]
title = \"Restart a web node\"
risk = \"medium\"
backout_plan = \"Start it again\"
authorized_by = \"CAB 2026-02-01\"
"
    )
}

fn start() -> Daemon {
    Setup::new().config(&config()).start()
}

fn create_as(d: &Daemon, token: &str, body: Value) -> (u16, Value) {
    send(d, "POST", "/api/v1/tickets", &body, Some(token))
}

fn create(d: &Daemon, body: Value) -> String {
    let (status, t) = create_as(d, CAROL, body);
    assert_eq!(status, 201, "{t}");
    t["id"].as_str().expect("id").to_string()
}

fn ok(d: &Daemon, token: &str, id: &str, to: &str, extra: Value) -> Value {
    let (status, t) = step_as(d, Some(token), id, to, &format!("to {to}"), extra);
    assert_eq!(status, 200, "→ {to}: {t}");
    t
}

fn get(d: &Daemon, path: &str) -> (u16, Value) {
    send(d, "GET", path, &Value::Null, Some(ALICE))
}

fn show(d: &Daemon, id: &str) -> Value {
    let (status, t) = get(d, &format!("/api/v1/tickets/{id}"));
    assert_eq!(status, 200, "{t}");
    t
}

fn last_reason(t: &Value) -> String {
    t["history"]
        .as_array()
        .and_then(|h| h.last())
        .and_then(|e| e["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn field(err: &Value) -> Value {
    err["error"]["details"]["field"].clone()
}

fn message(err: &Value) -> String {
    err["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn cli(d: &Daemon, args: &[&str]) -> String {
    let (success, stdout, stderr) = ticket(d, Some(ALICE), args);
    assert!(success, "itsmd ticket {args:?}: {stderr}");
    stdout
}

/// `itsmd change ARGS` against `d`: success, stdout and stderr together.
fn change_cli(d: &Daemon, args: &[&str]) -> (bool, String) {
    let server = d.url("");
    let mut all = vec!["change"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--server", &server, "--token", ALICE]);
    itsmd(&all)
}

#[test]
fn risk_and_backout_plan_are_set_checked_and_shown() {
    let d = start();
    let id = create(
        &d,
        json!({"kind": "change", "title": "Bigger disks", "service": "db", "risk": "high",
               "backout_plan": "Move the volume back", "window": later()}),
    );
    let t = show(&d, &id);
    assert_eq!(t["change"]["risk"], "high", "{t:#}");
    assert_eq!(t["change"]["backout_plan"], "Move the volume back");
    assert_eq!(t["change"]["service"], "db");

    // A risk outside the vocabulary: 422 naming the field and the allowed values.
    let (status, err) = create_as(
        &d,
        CAROL,
        json!({"kind": "change", "title": "x", "risk": "extreme"}),
    );
    assert_eq!((status, field(&err)), (422, json!("risk")), "{err}");
    assert!(
        message(&err).contains("unknown risk \"extreme\"; expected one of low, medium, high"),
        "{err}"
    );
    let (status, err) = create_as(
        &d,
        CAROL,
        json!({"kind": "incident", "title": "x", "risk": "low"}),
    );
    assert_eq!((status, field(&err)), (422, json!("risk")), "{err}");
    // A back-out plan over limits.description_bytes: 413 naming it.
    let (status, err) = create_as(
        &d,
        CAROL,
        json!({"kind": "change", "title": "x", "backout_plan": "y".repeat(201)}),
    );
    assert_eq!((status, field(&err)), (413, json!("backout_plan")), "{err}");

    let patch = |body: Value| {
        send(
            &d,
            "PATCH",
            &format!("/api/v1/tickets/{id}"),
            &body,
            Some(CAROL),
        )
    };
    let (status, t) = patch(json!({"risk": "medium", "backout_plan": "Restore the snapshot"}));
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["change"]["risk"], "medium");
    assert_eq!(t["change"]["backout_plan"], "Restore the snapshot");
    let (status, err) = patch(json!({"risk": "none"}));
    assert_eq!((status, field(&err)), (422, json!("risk")), "{err}");

    // Once sent for authorization the risk stands: who authorises may depend on it.
    ok(&d, CAROL, &id, "assess", json!({}));
    ok(&d, CAROL, &id, "authorize", json!({}));
    let (status, err) = patch(json!({"risk": "low"}));
    assert_eq!((status, field(&err)), (422, json!("risk")), "{err}");
    assert!(
        message(&err).contains("a authorize change keeps it"),
        "{err}"
    );

    // The CLI: create and update with --risk and --backout-plan, a typo refused by the CLI.
    let out = cli(
        &d,
        &[
            "create",
            "--kind",
            "change",
            "--title",
            "Kernel",
            "--risk",
            "low",
            "--backout-plan",
            "Boot the old kernel",
            "--service",
            "web",
            "--json",
        ],
    );
    let t: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(t["change"]["risk"], "low", "{t:#}");
    assert_eq!(t["change"]["backout_plan"], "Boot the old kernel");
    let kernel = t["id"].as_str().unwrap_or_default().to_string();
    let out = cli(
        &d,
        &[
            "update",
            &kernel,
            "--risk",
            "high",
            "--backout-plan",
            "Reinstall",
            "--json",
        ],
    );
    let t: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (
            t["change"]["risk"].clone(),
            t["change"]["backout_plan"].clone()
        ),
        (json!("high"), json!("Reinstall"))
    );
    let (success, _, stderr) = ticket(&d, Some(ALICE), &["update", &kernel, "--risk", "extreme"]);
    assert!(!success);
    assert!(
        stderr.contains("--risk") && stderr.contains("low, medium, high"),
        "{stderr}"
    );
}

#[test]
fn an_emergency_change_closes_only_after_its_post_implementation_review() {
    let d = start();
    let id = create(
        &d,
        json!({"kind": "change", "change_type": "emergency", "title": "Patch now",
               "window": open_window()}),
    );
    let review = |token: &str, body: Value| {
        send(
            &d,
            "POST",
            &format!("/api/v1/tickets/{id}/review"),
            &body,
            Some(token),
        )
    };
    ok(&d, CAROL, &id, "authorize", json!({}));
    ok(&d, ALICE, &id, "scheduled", json!({}));
    ok(&d, CAROL, &id, "implement", json!({}));
    // Not yet in review: no review to record.
    let (status, err) = review(ALICE, json!({"outcome": "failed", "notes": "x"}));
    assert_eq!(status, 409, "{err}");
    assert!(
        message(&err).contains(
            "is implement; the post-implementation review is recorded while the change is in review"
        ),
        "{err}"
    );
    ok(&d, CAROL, &id, "review", json!({}));
    // Only the change's authority (alice, its emergency approver) records the review: carol,
    // who implemented it, is refused, and nothing is recorded.
    let (status, err) = review(
        CAROL,
        json!({"outcome": "successful", "notes": "fine by me"}),
    );
    assert_eq!(status, 403, "{err}");
    assert_eq!(
        message(&err),
        format!(
            "only the change authority of {id} records its post-implementation review; authority: alice"
        ),
        "{err}"
    );
    assert_eq!(show(&d, &id)["change"]["review"], Value::Null);

    // Closing without a review record: 422 naming `review`.
    let (status, err) = step_as(
        &d,
        Some(CAROL),
        &id,
        "closed",
        "done",
        json!({"outcome": "failed"}),
    );
    assert_eq!((status, field(&err)), (422, json!("review")), "{err}");
    assert!(
        message(&err)
            .contains("an emergency change closes only after its post-implementation review"),
        "{err}"
    );
    let (status, err) = review(ALICE, json!({"outcome": "failed", "notes": "  "}));
    assert_eq!((status, field(&err)), (422, json!("notes")), "{err}");
    let (status, err) = review(ALICE, json!({"outcome": "fine", "notes": "x"}));
    assert_eq!(status, 400, "{err}");

    // Recorded through the CLI: who, when, outcome, notes.
    cli(
        &d,
        &[
            "review",
            &id,
            "--outcome",
            "failed",
            "--notes",
            "The patch broke TLS; rolled back",
        ],
    );
    let t = show(&d, &id);
    let r = &t["change"]["review"];
    assert_eq!(r["by"], json!({"type": "user", "name": "alice"}), "{t:#}");
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["notes"], "The patch broke TLS; rolled back");
    assert!(
        r["at"]
            .as_str()
            .is_some_and(|a| a.parse::<jiff::Timestamp>().is_ok())
    );
    assert_eq!(
        last_reason(&t),
        "post-implementation review by alice: failed"
    );
    let (status, err) = review(ALICE, json!({"outcome": "successful", "notes": "again"}));
    assert_eq!(status, 409, "{err}");

    let (status, err) = step_as(
        &d,
        Some(CAROL),
        &id,
        "closed",
        "done",
        json!({"outcome": "successful"}),
    );
    assert_eq!((status, field(&err)), (422, json!("outcome")), "{err}");
    // Now it closes; the outcome comes from the review, and the history says which review.
    let (status, t) = step_as(&d, Some(CAROL), &id, "closed", "reviewed", json!({}));
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        (t["state"].clone(), t["change"]["outcome"].clone()),
        (json!("closed"), json!("failed"))
    );
    let reason = last_reason(&show(&d, &id));
    assert!(
        reason.starts_with("reviewed (post-implementation review by alice at ")
            && reason.ends_with(": failed)"),
        "{reason}"
    );

    // A normal change still closes with an outcome alone.
    let normal = create(
        &d,
        json!({"kind": "change", "title": "Tidy", "window": open_window()}),
    );
    for (token, to) in [
        (CAROL, "assess"),
        (CAROL, "authorize"),
        (ALICE, "scheduled"),
        (CAROL, "implement"),
        (CAROL, "review"),
    ] {
        ok(&d, token, &normal, to, json!({}));
    }
    let t = ok(
        &d,
        CAROL,
        &normal,
        "closed",
        json!({"outcome": "successful"}),
    );
    assert_eq!(t["state"], "closed");
}

#[test]
fn standard_changes_are_made_from_the_catalogue_and_pre_authorised() {
    let d = start();
    let (status, list) = get(&d, "/api/v1/changes/templates");
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["templates"][0],
        json!({"id": "certs", "title": "Rotate the TLS certificates", "service": "checkout",
               "risk": "low", "backout_plan": "Put the previous certificates back",
               "authorized_by": "CAB 2026-03-02"})
    );
    assert_eq!(list["templates"][1]["id"], "restart");

    let (status, err) = create_as(
        &d,
        CAROL,
        json!({"kind": "change", "change_type": "standard", "title": "x"}),
    );
    assert_eq!((status, field(&err)), (422, json!("template")), "{err}");
    assert!(
        message(&err).contains(
            "a standard change is made from a standard change template; templates: certs, restart"
        ),
        "{err}"
    );
    let (status, err) = create_as(
        &d,
        CAROL,
        json!({"kind": "change", "change_type": "standard", "template": "nope", "title": "x"}),
    );
    assert_eq!((status, field(&err)), (422, json!("template")), "{err}");
    assert!(
        message(&err)
            .contains("unknown standard change template `nope`; templates: certs, restart"),
        "{err}"
    );
    let (status, err) = create_as(
        &d,
        CAROL,
        json!({"kind": "change", "change_type": "standard", "template": "certs", "title": "x", "risk": "high"}),
    );
    assert_eq!((status, field(&err)), (422, json!("risk")), "{err}");
    let (status, err) = create_as(
        &d,
        CAROL,
        json!({"kind": "change", "template": "certs", "title": "x"}),
    );
    assert_eq!((status, field(&err)), (422, json!("template")), "{err}");

    let id = create(
        &d,
        json!({"kind": "change", "change_type": "standard", "template": "certs",
               "title": "Rotate checkout's certificates", "window": open_window()}),
    );
    let t = show(&d, &id);
    let c = &t["change"];
    assert_eq!(
        (
            c["template"].clone(),
            c["service"].clone(),
            c["risk"].clone(),
            c["backout_plan"].clone()
        ),
        (
            json!("certs"),
            json!("checkout"),
            json!("low"),
            json!("Put the previous certificates back")
        ),
        "{t:#}"
    );
    assert!(
        last_reason(&t)
            .ends_with("; standard change from template `certs`, pre-authorised by CAB 2026-03-02"),
        "{}",
        last_reason(&t)
    );
    // Pre-authorised: straight to scheduled, by anyone working it, no votes.
    let t = ok(&d, CAROL, &id, "scheduled", json!({}));
    assert_eq!(t["state"], "scheduled");
    assert_eq!(t.get("approval"), None, "{t:#}");
    let (status, err) = send(
        &d,
        "PATCH",
        &format!("/api/v1/tickets/{id}"),
        &json!({"risk": "medium"}),
        Some(CAROL),
    );
    assert_eq!((status, field(&err)), (422, json!("risk")), "{err}");

    let (success, out) = change_cli(&d, &["templates"]);
    assert!(success, "{out}");
    assert!(
        out.contains("certs    low     checkout  CAB 2026-03-02  Rotate the TLS certificates"),
        "{out}"
    );
    let out = cli(
        &d,
        &[
            "create",
            "--kind",
            "change",
            "--change-type",
            "standard",
            "--template",
            "restart",
            "--title",
            "Restart web3",
            "--json",
        ],
    );
    let t: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(t["change"]["risk"], "medium", "{t:#}");
}

#[test]
fn the_calendar_lists_overlapping_windows_and_flags_conflicts_on_one_service() {
    let d = start();
    let w = |start: &str, end: &str| json!({"start": start, "end": end});
    let new = |title: &str, service: &str, window: Value| {
        create(
            &d,
            json!({"kind": "change", "title": title, "service": service, "window": window}),
        )
    };
    let disks = new(
        "Disks",
        "db",
        w("2030-03-02T10:00:00Z", "2030-03-02T12:00:00Z"),
    );
    // Starts after the range, but overlaps Disks on the same service.
    let kernel = new(
        "Kernel",
        "db",
        w("2030-03-02T11:30:00Z", "2030-03-02T13:00:00Z"),
    );
    let web = new(
        "Web",
        "web",
        w("2030-03-02T10:00:00Z", "2030-03-02T12:00:00Z"),
    );
    let _later = new(
        "Later",
        "db",
        w("2030-03-09T10:00:00Z", "2030-03-09T12:00:00Z"),
    );
    let canceled = new(
        "Dropped",
        "db",
        w("2030-03-02T10:00:00Z", "2030-03-02T11:00:00Z"),
    );
    ok(&d, CAROL, &canceled, "canceled", json!({}));
    let _unplanned = create(
        &d,
        json!({"kind": "change", "title": "No window", "service": "db"}),
    );

    let (status, cal) = get(
        &d,
        "/api/v1/changes/calendar?from=2030-03-02T09:00:00Z&to=2030-03-02T11:00:00Z",
    );
    assert_eq!(status, 200, "{cal}");
    let shown: Vec<(String, Value)> = cal["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_string(),
                e["conflicts"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [(disks.clone(), json!([kernel])), (web.clone(), json!([]))],
        "{cal:#}"
    );
    assert_eq!(
        cal["changes"][0]["window"],
        w("2030-03-02T10:00:00Z", "2030-03-02T12:00:00Z")
    );
    assert_eq!(cal["changes"][0]["service"], "db");
    assert_eq!(cal["changes"][0]["state"], "new");
    let (_, cal) = get(
        &d,
        "/api/v1/changes/calendar?from=2030-03-02T12:00:00Z&to=2030-03-02T14:00:00Z",
    );
    assert_eq!(cal["changes"][0]["id"], json!(kernel), "{cal:#}");
    assert_eq!(cal["changes"][0]["conflicts"], json!([disks]));

    for (query, names) in [
        ("?to=2030-03-02T11:00:00Z", "`from` is required"),
        (
            "?from=yesterday&to=2030-03-02T11:00:00Z",
            "`from`: \"yesterday\" is not an RFC 3339 time",
        ),
        (
            "?from=2030-03-02T11:00:00Z&to=2030-03-02T10:00:00Z",
            "`to` (2030-03-02T10:00:00Z) must be after `from`",
        ),
        (
            "?from=2030-03-02T09:00:00Z&to=2030-03-02T11:00:00Z&service=db",
            "service",
        ),
    ] {
        let (status, err) = get(&d, &format!("/api/v1/changes/calendar{query}"));
        assert_eq!(status, 400, "{query}: {err}");
        assert!(message(&err).contains(names), "{query}: {err}");
    }

    let (success, out) = change_cli(
        &d,
        &[
            "calendar",
            "--from",
            "2030-03-02T09:00:00Z",
            "--to",
            "2030-03-02T11:00:00Z",
        ],
    );
    assert!(success, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&disks))
        .unwrap_or_default();
    assert!(
        line.contains(&kernel) && line.contains("Disks") && line.contains("db"),
        "{out}"
    );
    let (success, out) = change_cli(
        &d,
        &["calendar", "--from", "soon", "--to", "2030-03-02T11:00:00Z"],
    );
    assert!(!success);
    assert!(
        out.contains("--from: \"soon\" is not an RFC 3339 time"),
        "{out}"
    );
}

#[test]
fn an_incident_opened_during_a_change_window_is_possibly_caused_by_it() {
    let d = start();
    // A standard change to checkout whose window is open now, scheduled: a suspect.
    let certs = create(
        &d,
        json!({"kind": "change", "change_type": "standard", "template": "certs",
               "title": "Rotate checkout's certificates", "window": open_window()}),
    );
    ok(&d, CAROL, &certs, "scheduled", json!({}));
    // A scheduled change to checkout whose window is later: not a suspect.
    let later_change = create(
        &d,
        json!({"kind": "change", "change_type": "standard", "template": "certs",
               "title": "Later rotation", "window": later()}),
    );
    ok(&d, CAROL, &later_change, "scheduled", json!({}));
    // A change to billing being implemented (outside its window, by override): a suspect for
    // billing only.
    let billing = create(
        &d,
        json!({"kind": "change", "title": "Billing schema", "service": "billing", "window": later()}),
    );
    for (token, to, extra) in [
        (CAROL, "assess", json!({})),
        (CAROL, "authorize", json!({})),
        (ALICE, "scheduled", json!({})),
        (
            ALICE,
            "implement",
            json!({"window_override": "the vendor is here today"}),
        ),
    ] {
        ok(&d, token, &billing, to, extra);
    }

    let alert = json!({"source": "prometheus", "status": "firing", "severity": "critical",
                       "summary": "Checkout TLS errors",
                       "labels": {"alertname": "TlsErrors", "service": "checkout"}});
    let (status, answer) = send(&d, "POST", "/api/v1/events", &alert, Some(ALICE));
    assert_eq!(status, 202, "{answer}");
    let inc = answer["ticket"].as_str().unwrap_or_default().to_string();
    let t = show(&d, &inc);
    assert_eq!(
        t["links"],
        json!([{"rel": "possibly_caused_by", "ticket": certs}]),
        "{t:#}"
    );
    let expected = format!(
        "linked: {inc} possibly_caused_by {certs}: opened on service `checkout` while the change was in its window "
    );
    let entry = t["history"]
        .as_array()
        .and_then(|h| {
            h.iter().find(|e| {
                e["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(&expected))
            })
        })
        .cloned();
    let entry = entry.unwrap_or_else(|| panic!("no history entry {expected:?}: {t:#}"));
    assert_eq!(
        entry["actor"],
        json!({"type": "system", "component": "changes"})
    );
    let c = show(&d, &certs);
    assert_eq!(
        c["links"],
        json!([{"rel": "possibly_causes", "ticket": inc}]),
        "{c:#}"
    );
    assert!(last_reason(&c).starts_with(&expected), "{c:#}");
    assert_eq!(show(&d, &later_change).get("links"), None);

    // An incident opened by an agent with custom.service billing: linked to the change being
    // implemented.
    let (status, t) = create_as(
        &d,
        CAROL,
        json!({"kind": "incident", "title": "Invoices fail", "custom": {"service": "billing"}}),
    );
    assert_eq!(status, 201, "{t}");
    assert_eq!(
        t["links"],
        json!([{"rel": "possibly_caused_by", "ticket": billing}]),
        "{t:#}"
    );
    let reason = last_reason(&show(&d, t["id"].as_str().unwrap_or_default()));
    assert!(
        reason.ends_with("while the change was being implemented"),
        "{reason}"
    );

    // Another service: nothing linked.
    let (status, t) = create_as(
        &d,
        CAROL,
        json!({"kind": "incident", "title": "Search slow", "custom": {"service": "search"}}),
    );
    assert_eq!(status, 201, "{t}");
    assert_eq!(t.get("links"), None, "{t:#}");
}

/// Rules that open an incident for every new mail, give incidents about payments their
/// service, and open a watch incident on the payments service whenever a change enters
/// `implement` (in that very event).
const PAYMENTS_RULES: &str = r#"
fn on_mail(mail, ticket) {
    if ticket.is_new { ticket.kind = "incident"; }
}

fn on_ticket(ticket, change) {
    if change.kind == "created" && ticket.kind == "incident" && ticket.title.contains("Payments") {
        ticket.set("service", "payments");
    }
    if ticket.kind == "change" && ticket.state == "implement" && "state" in change.fields {
        ticket.open_ticket("incident", #{ title: `Watch payments during ${ticket.id}`,
                                          custom: #{ service: "payments" } });
    }
}
"#;

/// The tickets `t` links to with `rel`.
fn linked(t: &Value, rel: &str) -> Vec<String> {
    t["links"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|l| l["rel"] == rel)
                .filter_map(|l| l["ticket"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn incidents_a_rule_or_a_mail_opens_during_an_implementation_are_linked_too() {
    let setup = Setup::new();
    let maildir = setup.dir.path().join("Maildir");
    let setup = setup
        .config(&format!(
            "{}\n[mail]\nsettle = \"100ms\"\nrescan_every = \"1s\"\n",
            config()
        ))
        .rules(&[("50-payments.rhai", PAYMENTS_RULES)]);
    let d = setup.start_with(
        &[std::ffi::OsStr::new("--maildir"), maildir.as_os_str()],
        &[],
    );
    let change = create(
        &d,
        json!({"kind": "change", "title": "Payments gateway upgrade", "service": "payments",
               "window": later()}),
    );
    for (token, to, extra) in [
        (CAROL, "assess", json!({})),
        (CAROL, "authorize", json!({})),
        (ALICE, "scheduled", json!({})),
        (
            ALICE,
            "implement",
            json!({"window_override": "the vendor is here today"}),
        ),
    ] {
        ok(&d, token, &change, to, extra);
    }
    // The rule opened the watch incident in the event that moved the change to implement:
    // the change was in implement only in that batch, not yet in the store.
    let c = show(&d, &change);
    let watch = linked(&c, "possibly_causes");
    assert_eq!(watch.len(), 1, "{c:#}");
    let w = show(&d, &watch[0]);
    assert_eq!(
        w["title"],
        format!("Watch payments during {change}"),
        "{w:#}"
    );
    assert_eq!(
        linked(&w, "possibly_caused_by"),
        vec![change.clone()],
        "{w:#}"
    );
    assert!(
        w["history"]
            .as_array()
            .is_some_and(|h| h
                .iter()
                .any(|e| e["reason"].as_str().is_some_and(|r| r.ends_with(
                    "opened on service `payments` while the change was being implemented"
                )))),
        "{w:#}"
    );

    // A mail about payments: the rule gives the incident its service, then it is linked.
    wait_until("the daemon created the Maildir", || {
        maildir.join("new").is_dir()
    });
    let mail = "From: Pat <pat@example.com>\r\nTo: desk@example.com\r\n\
                Subject: Payments page fails\r\nMessage-ID: <payments-1@example.com>\r\n\
                Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n\
                The payments page shows an error.\r\n";
    std::fs::write(maildir.join("tmp").join("payments-1"), mail).expect("write the mail");
    std::fs::rename(
        maildir.join("tmp").join("payments-1"),
        maildir.join("new").join("payments-1"),
    )
    .expect("deliver the mail");
    let mut found = Value::Null;
    wait_until("the mail opened an incident", || {
        let (_, list) = get(&d, "/api/v1/tickets?kind=incident&q=payments+fails");
        found = list["tickets"][0].clone();
        !found.is_null()
    });
    let id = found["id"].as_str().unwrap_or_default().to_string();
    let t = show(&d, &id);
    assert_eq!(t["custom"]["service"], "payments", "{t:#}");
    assert_eq!(
        linked(&t, "possibly_caused_by"),
        vec![change.clone()],
        "{t:#}"
    );
    let c = show(&d, &change);
    assert_eq!(
        linked(&c, "possibly_causes"),
        [watch[0].clone(), id],
        "{c:#}"
    );
}

#[test]
fn check_names_bad_change_authorities_and_templates() {
    let setup = Setup::new().config(
        "[approval.changes.normal]\napprovers = [\"alice\"]\n\
         [approval.changes.normal.risk.high]\napprovers = [\"alice\"]\nrequired = 2\n\
         [approval.changes.normal.risk.severe]\napprovers = [\"bob\"]\n\
         [approval.changes.emergency]\ngroups = [\"cab\"]\n\
         [changes.templates.big]\ntitle = \"Big\"\nrisk = \"high\"\nbackout_plan = \"b\"\nauthorized_by = \"\"\n",
    );
    let config = setup
        .config
        .as_ref()
        .and_then(|p| p.to_str())
        .unwrap_or_default();
    let (success, out) = itsmd(&["check", "--config", config]);
    assert!(!success, "{out}");
    for needle in [
        "approval.changes.normal.risk.high.required = 2 but only 1 approver(s) are configured",
        "approval.changes.normal.risk.severe: unknown risk \"severe\"; expected one of low, medium, high",
        "changes.templates.big.risk = \"high\": a high-risk change is never standard",
        "changes.templates.big.authorized_by must not be empty",
        "approval.changes.emergency.groups: `cab` is not a configured group",
        "approval.changes.emergency.approvers must name at least one approver (or groups with members)",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
}
