//! Change enablement: a normal or emergency change leaves `authorize` only with the votes of
//! its change authority (`[approval.changes.TYPE]`, N of M, the requests' mechanism), and
//! `implement` outside the planned window is refused unless the change is an emergency or
//! one of its approvers overrides it with a reason, which the history keeps.

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, groups_config};
use crate::tickets::{APPROVERS, open_window, send, step_as, window as later};

/// The tokens of [`APPROVERS`], and the change authorities: alice and bob (2 of 2) for normal
/// changes, carol for emergencies.
fn config() -> String {
    format!(
        "{APPROVERS}
[approval.changes.normal]
approvers = [\"alice\", \"bob\"]
required = 2

[approval.changes.emergency]
approvers = [\"carol\"]
"
    )
}

/// The token of `who`, as [`APPROVERS`] configures it.
fn token(who: &str) -> String {
    match who {
        "bob" => "bob-token-0123456789ab".into(),
        _ => format!("{who}-token-0123456789"),
    }
}

fn create(d: &Daemon, body: Value) -> String {
    let (status, t) = send(d, "POST", "/api/v1/tickets", &body, Some(&token("carol")));
    assert_eq!(status, 201, "{t}");
    t["id"].as_str().expect("id").to_string()
}

/// `who` moves `id` to `to` with `extra` fields; status and answer.
fn step(d: &Daemon, who: &str, id: &str, to: &str, extra: Value) -> (u16, Value) {
    let reason = format!("{who}: {to}");
    step_as(d, Some(&token(who)), id, to, &reason, extra)
}

fn ok(d: &Daemon, who: &str, id: &str, to: &str, extra: Value) -> Value {
    let (status, t) = step(d, who, id, to, extra);
    assert_eq!(status, 200, "{who} → {to}: {t}");
    t
}

fn last_reason(d: &Daemon, id: &str) -> String {
    let (_, history) = send(
        d,
        "GET",
        &format!("/api/v1/tickets/{id}/history"),
        &Value::Null,
        Some(&token("alice")),
    );
    history
        .as_array()
        .and_then(|h| h.last())
        .and_then(|e| e["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_normal_change_is_scheduled_only_once_its_authority_voted() {
    let d = Setup::new().config(&config()).start();
    let id = create(
        &d,
        json!({"kind": "change", "title": "Bigger disks", "window": open_window()}),
    );
    ok(&d, "carol", &id, "assess", json!({}));
    let t = ok(&d, "carol", &id, "authorize", json!({}));
    assert_eq!(
        t["approval"],
        json!({"required": 2, "approvers": ["alice", "bob"], "approved_by": []})
    );
    // Not of the authority: refused, naming who is.
    let (status, err) = step(&d, "carol", &id, "scheduled", json!({}));
    assert_eq!(status, 403, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`carol` is not an approver of CHG-000001; approvers: alice, bob"),
        "{err}"
    );
    // One vote of two: recorded, still waiting.
    let t = ok(&d, "alice", &id, "scheduled", json!({}));
    assert_eq!(t["state"], "authorize");
    assert_eq!(t["approval"]["approved_by"], json!(["alice"]));
    assert_eq!(
        last_reason(&d, &id),
        "alice: scheduled (authorization 1 of 2, by alice)"
    );
    let (status, err) = step(&d, "alice", &id, "scheduled", json!({}));
    assert_eq!(status, 409, "{err}");
    let t = ok(&d, "bob", &id, "scheduled", json!({}));
    assert_eq!(t["state"], "scheduled");
    assert_eq!(
        last_reason(&d, &id),
        "bob: scheduled (authorization 2 of 2, by bob)"
    );
    // Inside its window: anyone working it implements it.
    let t = ok(&d, "carol", &id, "implement", json!({}));
    assert_eq!(t["state"], "implement");

    // One rejection rejects.
    let other = create(
        &d,
        json!({"kind": "change", "title": "Risky", "window": later()}),
    );
    ok(&d, "carol", &other, "assess", json!({}));
    ok(&d, "carol", &other, "authorize", json!({}));
    let t = ok(&d, "bob", &other, "rejected", json!({}));
    assert_eq!(t["state"], "rejected");
    assert_eq!(t["approval"]["rejected_by"], "bob");
}

#[test]
fn without_a_change_authority_a_change_cannot_be_sent_for_authorization() {
    let d = Setup::new().start();
    let (status, t) = send(
        &d,
        "POST",
        "/api/v1/tickets",
        &json!({"kind": "change", "title": "x", "window": later()}),
        None,
    );
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().expect("id");
    let to = |to: &str| {
        send(
            &d,
            "POST",
            &format!("/api/v1/tickets/{id}/transitions"),
            &json!({"to": to, "reason": "test"}),
            None,
        )
    };
    assert_eq!(to("assess").0, 200);
    let (status, err) = to("authorize");
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no approvers are configured ([approval.changes.normal] approvers)"),
        "{err}"
    );
}

#[test]
fn implement_outside_the_window_needs_an_emergency_or_an_approvers_override() {
    let d = Setup::new().config(&config()).start();
    let id = create(
        &d,
        json!({"kind": "change", "title": "Later", "window": later()}),
    );
    for (who, to) in [
        ("carol", "assess"),
        ("carol", "authorize"),
        ("alice", "scheduled"),
        ("bob", "scheduled"),
    ] {
        ok(&d, who, &id, to, json!({}));
    }
    let (status, err) = step(&d, "alice", &id, "implement", json!({}));
    assert_eq!(status, 409, "{err}");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "CHG-000001 is outside its window 2030-01-05T22:00:00Z .. 2030-01-05T23:00:00Z"
        ) && message.contains("window_override"),
        "{err}"
    );
    let (status, err) = step(
        &d,
        "carol",
        &id,
        "implement",
        json!({"window_override": "I want to"}),
    );
    assert_eq!(status, 403, "{err}");
    let t = ok(
        &d,
        "alice",
        &id,
        "implement",
        json!({"window_override": "the datacentre moved our slot"}),
    );
    assert_eq!(t["state"], "implement");
    assert_eq!(
        last_reason(&d, &id),
        "alice: implement (outside its window 2030-01-05T22:00:00Z .. 2030-01-05T23:00:00Z, \
         overridden by alice: the datacentre moved our slot)"
    );

    // An emergency change goes ahead at once, and the history says it was outside.
    let urgent = create(
        &d,
        json!({"kind": "change", "change_type": "emergency", "title": "Patch now", "window": later()}),
    );
    ok(&d, "carol", &urgent, "authorize", json!({}));
    ok(&d, "carol", &urgent, "scheduled", json!({}));
    ok(&d, "bob", &urgent, "implement", json!({}));
    assert!(
        last_reason(&d, &urgent).ends_with(
            "(outside its window 2030-01-05T22:00:00Z .. 2030-01-05T23:00:00Z: emergency change)"
        ),
        "{}",
        last_reason(&d, &urgent)
    );
}

#[test]
fn who_authorises_a_normal_change_depends_on_its_risk() {
    // alice alone for normal changes; for high-risk ones alice and the CAB group's members
    // (bob, carol), 2 of 3.
    let d = Setup::new()
        .config(&format!(
            "{APPROVERS}{}
[approval.changes.normal]
approvers = [\"alice\"]

[approval.changes.normal.risk.high]
approvers = [\"alice\"]
groups = [\"cab\"]
required = 2
",
            groups_config(&[("cab", &["bob", "carol"])])
        ))
        .start();
    let unassessed = create(
        &d,
        json!({"kind": "change", "title": "x", "window": later()}),
    );
    ok(&d, "carol", &unassessed, "assess", json!({}));
    let (status, err) = step(&d, "carol", &unassessed, "authorize", json!({}));
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["details"]["field"], "risk", "{err}");

    let low = create(
        &d,
        json!({"kind": "change", "title": "Small", "risk": "low", "window": later()}),
    );
    ok(&d, "carol", &low, "assess", json!({}));
    let t = ok(&d, "carol", &low, "authorize", json!({}));
    assert_eq!(t["approval"]["approvers"], json!(["alice"]));
    assert_eq!(
        last_reason(&d, &low),
        "carol: authorize (change authority [approval.changes.normal]: 1 of alice)"
    );
    assert_eq!(
        ok(&d, "alice", &low, "scheduled", json!({}))["state"],
        "scheduled"
    );

    let high = create(
        &d,
        json!({"kind": "change", "title": "Big", "risk": "high", "window": later()}),
    );
    ok(&d, "carol", &high, "assess", json!({}));
    let t = ok(&d, "carol", &high, "authorize", json!({}));
    assert_eq!(
        t["approval"],
        json!({"required": 2, "approvers": ["alice", "bob", "carol"], "approved_by": []})
    );
    assert_eq!(
        last_reason(&d, &high),
        "carol: authorize (change authority [approval.changes.normal.risk.high]: 2 of alice, bob, carol)"
    );
    assert_eq!(
        ok(&d, "alice", &high, "scheduled", json!({}))["state"],
        "authorize"
    );
    assert_eq!(
        ok(&d, "carol", &high, "scheduled", json!({}))["state"],
        "scheduled"
    );
}
