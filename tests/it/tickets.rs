//! Agents' ticket writes over HTTP: lifecycles, priority, people, comments, links, change and
//! request specifics, and bad input that must be refused with nothing changed.

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, assert_closed_by_housekeeping, groups_config};

/// Sends `body` with `method` (and a bearer token when given); status and parsed body.
pub fn send(
    d: &Daemon,
    method: &str,
    path: &str,
    body: &Value,
    token: Option<&str>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = d.http.request(method, d.url(path)).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().expect("request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn create(d: &Daemon, body: Value) -> Value {
    let (status, t) = send(d, "POST", "/api/v1/tickets", &body, None);
    assert_eq!(status, 201, "{t}");
    t
}

fn step(d: &Daemon, id: &str, to: &str, extra: Value) -> (u16, Value) {
    step_as(d, None, id, to, &format!("test: to {to}"), extra)
}

/// Moves `id` to `to` for `reason` with `extra` body fields, with a token when given.
pub(crate) fn step_as(
    d: &Daemon,
    token: Option<&str>,
    id: &str,
    to: &str,
    reason: &str,
    extra: Value,
) -> (u16, Value) {
    let mut body = json!({"to": to, "reason": reason});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    send(
        d,
        "POST",
        &format!("/api/v1/tickets/{id}/transitions"),
        &body,
        token,
    )
}

/// Transitions taken in order: (target state, extra body fields).
type Path<'a> = Vec<(&'a str, Value)>;

fn id(t: &Value) -> String {
    t["id"].as_str().expect("id").to_string()
}

/// The stored ticket, to compare before and after a refused write.
fn snapshot(d: &Daemon, id: &str) -> Value {
    d.get_ok(&format!("/api/v1/tickets/{id}"))
}

/// A change window that is open now: implementing needs no override.
pub(crate) fn open_window() -> Value {
    let now = jiff::Timestamp::now();
    let hour = jiff::SignedDuration::from_hours(1);
    json!({"start": (now - hour).to_string(), "end": (now + hour * 24).to_string()})
}

/// A window on a fixed day, valid for any test run (in the future: implementing it needs an
/// override).
pub(crate) fn window() -> Value {
    json!({"start": "2030-01-05T22:00:00Z", "end": "2030-01-05T23:00:00Z"})
}

#[test]
fn every_kind_walks_its_lifecycle_and_refuses_what_it_does_not_allow() {
    // The anonymous user of an open API is the change authority here (tests/it/changes.rs
    // covers the votes); the windows are in the future, so implementing overrides them.
    let d = Setup::new()
        .config(&format!(
            "[approval.changes.normal]\napprovers = [\"anonymous\"]\n\
             [approval.changes.emergency]\napprovers = [\"anonymous\"]\n{CERTS}",
        ))
        .start();
    // (create body, path of (to, extra fields)), one per flow, reopen and re-analysis included.
    let walks: Vec<(Value, Path)> = vec![
        (
            json!({"kind": "incident", "title": "mail down"}),
            vec![
                ("in_progress", json!({})),
                ("on_hold", json!({"hold_reason": "awaiting_vendor"})),
                ("in_progress", json!({})),
                ("resolved", json!({"resolution": "fixed"})),
                ("in_progress", json!({})),
                ("resolved", json!({"resolution": "workaround"})),
                ("closed", json!({})),
            ],
        ),
        (
            json!({"kind": "request", "title": "new laptop"}),
            vec![
                ("in_progress", json!({})),
                ("on_hold", json!({"hold_reason": "awaiting_caller"})),
                ("in_progress", json!({})),
                ("fulfilled", json!({})),
                ("in_progress", json!({})),
                ("fulfilled", json!({})),
                ("closed", json!({})),
            ],
        ),
        (
            json!({"kind": "problem", "title": "disks fill up"}),
            vec![
                ("assess", json!({})),
                ("root_cause_analysis", json!({})),
                ("known_error", json!({})),
                ("fix_in_progress", json!({})),
                ("root_cause_analysis", json!({})),
                ("resolved", json!({"resolution": "risk_accepted"})),
                ("closed", json!({})),
            ],
        ),
        (
            json!({"kind": "change", "title": "upgrade db", "window": window()}),
            vec![
                ("assess", json!({})),
                ("authorize", json!({})),
                ("scheduled", json!({})),
                (
                    "implement",
                    json!({"window_override": "the vendor came early"}),
                ),
                ("review", json!({})),
                ("closed", json!({"outcome": "successful"})),
            ],
        ),
        (
            json!({"kind": "change", "change_type": "emergency", "title": "patch now", "window": window()}),
            vec![
                ("authorize", json!({})),
                ("scheduled", json!({})),
                ("implement", json!({})),
                ("review", json!({})),
            ],
        ),
        (
            json!({"kind": "change", "change_type": "standard", "template": "certs", "title": "rotate certs", "window": open_window()}),
            vec![
                ("scheduled", json!({})),
                ("implement", json!({})),
                ("review", json!({})),
                ("closed", json!({"outcome": "successful_with_issues"})),
            ],
        ),
        (
            json!({"kind": "incident", "title": "false alarm"}),
            vec![("in_progress", json!({})), ("canceled", json!({}))],
        ),
        (
            json!({"kind": "change", "title": "risky", "window": window()}),
            vec![
                ("assess", json!({})),
                ("authorize", json!({})),
                ("rejected", json!({})),
            ],
        ),
    ];
    for (body, path) in walks {
        let t = create(&d, body.clone());
        let id = id(&t);
        assert_eq!(t["state"], "new");
        for (to, extra) in path {
            let (status, t) = step(&d, &id, to, extra);
            assert_eq!(status, 200, "{body} → {to}: {t}");
            assert_eq!(t["state"], to, "{t}");
        }
        let history = d.get_ok(&format!("/api/v1/tickets/{id}/history"));
        let last = history.as_array().unwrap().last().unwrap();
        assert_eq!(last["actor"], json!({"type": "user", "name": "anonymous"}));
        assert!(
            last["reason"].as_str().unwrap().starts_with("test: to"),
            "{last}"
        );
    }

    // Disallowed: 409 with the allowed targets, and the ticket untouched.
    let refused: Vec<(Value, Path, &str, Vec<&str>)> = vec![
        (
            json!({"kind": "incident", "title": "x"}),
            vec![],
            "closed",
            vec!["in_progress", "resolved", "canceled"],
        ),
        (
            json!({"kind": "request", "title": "x"}),
            vec![],
            "fulfilled",
            vec!["awaiting_approval", "in_progress", "canceled"],
        ),
        (
            json!({"kind": "problem", "title": "x"}),
            vec![],
            "resolved",
            vec!["assess"],
        ),
        (
            json!({"kind": "change", "change_type": "standard", "template": "certs", "title": "x"}),
            vec![],
            "assess",
            vec!["scheduled", "canceled"],
        ),
        (
            json!({"kind": "change", "change_type": "emergency", "title": "x"}),
            vec![],
            "assess",
            vec!["authorize", "canceled"],
        ),
        (
            json!({"kind": "change", "change_type": "standard", "template": "certs", "title": "x", "window": open_window()}),
            vec![
                ("scheduled", json!({})),
                ("implement", json!({})),
                ("review", json!({})),
            ],
            "canceled",
            vec!["closed"],
        ),
        (
            json!({"kind": "incident", "title": "x"}),
            vec![("canceled", json!({}))],
            "in_progress",
            vec![],
        ),
    ];
    for (body, path, to, allowed) in refused {
        let id = id(&create(&d, body.clone()));
        for (via, extra) in path {
            assert_eq!(step(&d, &id, via, extra).0, 200);
        }
        let before = snapshot(&d, &id);
        let (status, err) = step(&d, &id, to, json!({}));
        assert_eq!(status, 409, "{body} → {to}: {err}");
        assert_eq!(err["error"]["code"], "illegal_transition");
        assert_eq!(err["error"]["details"]["allowed"], json!(allowed), "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(to),
            "{err}"
        );
        assert_eq!(snapshot(&d, &id), before);
    }
}

#[test]
fn bad_input_is_refused_naming_the_problem_and_changes_nothing() {
    let d = Setup::new()
        .config(&groups_config(&[("dba", &["ann"]), ("web", &["bob"])]))
        .start();
    let post = |body: Value| send(&d, "POST", "/api/v1/tickets", &body, None);

    let (status, err) = post(json!({"kind": "ticket", "title": "x"}));
    assert_eq!(status, 400, "{err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`kind`") && msg.contains("unknown variant `ticket`"),
        "{msg}"
    );

    let (status, err) = post(json!({"kind": "incident", "title": "x", "group": "nobody"}));
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["details"]["field"], "group");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown group `nobody`"),
        "{err}"
    );

    let (status, err) =
        post(json!({"kind": "incident", "title": "x", "group": "dba", "assignee": "bob"}));
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["details"]["field"], "assignee");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`bob` is not a member of group `dba`")
    );

    // Every problem at once.
    let (status, err) =
        post(json!({"kind": "incident", "title": " ", "priority": 9, "window": window()}));
    assert_eq!(status, 422, "{err}");
    let fields: Vec<_> = err["error"]["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].clone())
        .collect();
    assert_eq!(
        fields,
        vec![json!("title"), json!("priority"), json!("window")]
    );

    let (status, err) = post(json!({"kind": "incident", "title": "x", "asignee": "ann"}));
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `asignee`"),
        "{err}"
    );
    // Inside a field's object too: a window's misspelt end is not dropped.
    let (status, err) = post(json!({"kind": "change", "title": "x", "window": {
        "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z", "ends": "x"}}));
    assert_eq!(status, 400, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("window") && message.contains("unknown field `ends`"),
        "{err}"
    );

    // Nothing was created, and no ticket number was used up.
    assert_eq!(d.get_ok("/api/v1/tickets")["tickets"], json!([]));
    let t = create(
        &d,
        json!({"kind": "incident", "title": "ok", "group": "dba", "assignee": "ann"}),
    );
    assert_eq!(t["id"], "INC-000001");
    let id = id(&t);
    let before = snapshot(&d, &id);

    let path = format!("/api/v1/tickets/{id}/transitions");
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"to": "sideways", "reason": "r"}),
            400,
            "unknown variant `sideways`",
        ),
        (json!({"to": "in_progress"}), 400, "missing field `reason`"),
        (
            json!({"to": "in_progress", "reason": "  "}),
            422,
            "a transition needs a reason",
        ),
        (
            json!({"to": "in_progress", "reason": "r", "hold_reason": "awaiting_caller"}),
            422,
            "only goes with a transition to on_hold",
        ),
        (
            json!({"to": "resolved", "reason": "r"}),
            422,
            "needs a resolution code: one of fixed",
        ),
        (
            json!({"to": "resolved", "reason": "r", "resolution": "risk_accepted"}),
            422,
            "resolution risk_accepted does not fit",
        ),
        (
            json!({"to": "resolved", "reason": "r", "resolution": "duplicate"}),
            422,
            "needs a duplicate_of link",
        ),
    ];
    for (body, status, needle) in cases {
        let (got, err) = send(&d, "POST", &path, &body, None);
        assert_eq!(got, status, "{body}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
        assert_eq!(snapshot(&d, &id), before, "{body} changed the ticket");
    }
    let (status, _) = step(&d, "INC-000999", "in_progress", json!({}));
    assert_eq!(status, 404);
    let (status, err) = send(
        &d,
        "PATCH",
        &format!("/api/v1/tickets/{id}"),
        &json!({"assignee": "bob"}),
        None,
    );
    assert_eq!(
        (status, err["error"]["details"]["field"].clone()),
        (422, json!("assignee")),
        "{err}"
    );
    let (status, err) = send(
        &d,
        "PATCH",
        &format!("/api/v1/tickets/{id}"),
        &json!({"group": "ghosts"}),
        None,
    );
    assert_eq!(status, 422, "{err}");
    let (status, _) = send(
        &d,
        "PATCH",
        &format!("/api/v1/tickets/{id}"),
        &json!({}),
        None,
    );
    assert_eq!(status, 422);
    assert_eq!(snapshot(&d, &id), before);
}

#[test]
fn on_hold_records_the_reason_and_leaving_clears_it() {
    let d = Setup::new().start();
    let id = id(&create(&d, json!({"kind": "incident", "title": "x"})));
    step(&d, &id, "in_progress", json!({}));
    let (status, err) = step(&d, &id, "on_hold", json!({}));
    assert_eq!(status, 422);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("awaiting_caller, awaiting_vendor, awaiting_change, awaiting_problem")
    );
    let (_, t) = step(
        &d,
        &id,
        "on_hold",
        json!({"hold_reason": "awaiting_change"}),
    );
    assert_eq!(t["hold_reason"], "awaiting_change");
    let (_, t) = step(&d, &id, "resolved", json!({"resolution": "fixed"}));
    assert!(t.get("hold_reason").is_none(), "{t}");
    assert_eq!(t["resolution"], "fixed");
    // Reopening clears the resolution and records the reason.
    let (_, t) = send(
        &d,
        "POST",
        &format!("/api/v1/tickets/{id}/transitions"),
        &json!({"to": "in_progress", "reason": "caller says still broken"}),
        None,
    );
    assert!(t.get("resolution").is_none(), "{t}");
    let history = d.get_ok(&format!("/api/v1/tickets/{id}/history"));
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(last["reason"], "caller says still broken");
    assert!(
        last["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"] == "state" && c["old"] == "resolved" && c["new"] == "in_progress"),
        "{last}"
    );
}

#[test]
fn priority_comes_from_the_configured_matrix_and_a_manual_override_is_recorded() {
    let config = format!(
        "{}[priority.matrix]\nhigh = [1, 1, 2]\nmedium = [2, 3, 4]\nlow = [3, 4, 5]\n",
        groups_config(&[])
    );
    let d = Setup::new().config(&config).start();
    let t = create(
        &d,
        json!({"kind": "incident", "title": "x", "impact": "high", "urgency": "medium"}),
    );
    assert_eq!(t["priority"], 1, "the configured matrix, not the default");
    let id = id(&t);
    let history = d.get_ok(&format!("/api/v1/tickets/{id}/history"));
    let reason = history[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("priority 1 = matrix[impact high][urgency medium] (matrix high=[1,1,2] medium=[2,3,4] low=[3,4,5])"),
        "{reason}"
    );
    let patch = |body: Value| send(&d, "PATCH", &format!("/api/v1/tickets/{id}"), &body, None);
    let (_, t) = patch(json!({"urgency": "low"}));
    assert_eq!(t["priority"], 2);
    let (_, t) = patch(json!({"priority": 5, "reason": "customer agreed it can wait"}));
    assert_eq!(
        (t["priority"].clone(), t["priority_override"].clone()),
        (json!(5), json!(true))
    );
    let (_, t) = patch(json!({"impact": "low"}));
    assert_eq!(t["priority"], 5, "an override stands until cleared");
    let (status, err) = patch(json!({"priority": 0}));
    assert_eq!(status, 422, "{err}");
    let (_, t) = patch(json!({"priority": null}));
    assert_eq!(t["priority"], 5, "low/low from the matrix");
    assert!(t.get("priority_override").is_none());
    let history = d.get_ok(&format!("/api/v1/tickets/{id}/history"));
    let over = history
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h["reason"]
                .as_str()
                .unwrap_or("")
                .contains("manual priority override 5")
        })
        .expect("override entry");
    assert!(
        over["reason"]
            .as_str()
            .unwrap()
            .starts_with("customer agreed it can wait")
    );
}

#[test]
fn assignees_come_from_the_ticket_group_and_moving_groups_unassigns() {
    let d = Setup::new()
        .config(&groups_config(&[("dba", &["ann"]), ("web", &["bob"])]))
        .start();
    let t = create(&d, json!({"kind": "incident", "title": "x"}));
    assert_eq!(t["group"], "triage", "unrouted tickets go to triage");
    let id = id(&t);
    let patch = |body: Value| send(&d, "PATCH", &format!("/api/v1/tickets/{id}"), &body, None);
    let (status, t) = patch(json!({"group": "dba", "assignee": "ann"}));
    assert_eq!((status, t["assignee"].clone()), (200, json!("ann")), "{t}");
    let (_, t) = patch(json!({"group": "web"}));
    assert!(t.get("assignee").is_none(), "{t}");
    let history = d.get_ok(&format!("/api/v1/tickets/{id}/history"));
    assert!(
        history
            .to_string()
            .contains("unassigned `ann`: not a member of group `web`")
    );
    let (status, t) = patch(json!({"assignee": "bob"}));
    assert_eq!((status, t["assignee"].clone()), (200, json!("bob")));
    let (_, t) = patch(json!({"assignee": null}));
    assert!(t.get("assignee").is_none());
}

#[test]
fn a_rule_routing_to_an_unknown_group_sends_the_ticket_to_triage() {
    let d = Setup::new()
        .rules(&[(
            "10-route.rhai",
            "fn on_alert(alert, ticket) { ticket.group = \"nope\"; }",
        )])
        .start();
    let (status, r) = d.post(
        "/api/v1/events",
        &crate::support::alert("firing", "x", json!({})),
    );
    assert_eq!(status, 202, "{r}");
    let t = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        r["ticket"].as_str().unwrap()
    ));
    assert_eq!(t["group"], "triage");
    assert!(
        t["history"]
            .to_string()
            .contains("group `nope` is not configured; routed to `triage`"),
        "{t}"
    );
}

#[test]
fn comments_are_listed_public_and_internal_and_each_is_in_the_history() {
    let d = Setup::new().start();
    let id = id(&create(&d, json!({"kind": "request", "title": "x"})));
    let path = format!("/api/v1/tickets/{id}/comments");
    let (status, t) = send(
        &d,
        "POST",
        &path,
        &json!({"body": "We are on it.", "visibility": "public"}),
        None,
    );
    assert_eq!((status, t["comments"].clone()), (201, json!(1)), "{t}");
    let (status, _) = send(
        &d,
        "POST",
        &path,
        &json!({"body": "Vendor ticket 123"}),
        None,
    );
    assert_eq!(status, 201);
    let (status, err) = send(&d, "POST", &path, &json!({"body": ""}), None);
    assert_eq!(
        (status, err["error"]["details"]["field"].clone()),
        (422, json!("body"))
    );
    let (status, _) = send(
        &d,
        "POST",
        &path,
        &json!({"body": "x", "visibility": "secret"}),
        None,
    );
    assert_eq!(status, 400);

    let all = d.get_ok(&path);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0]["seq"].clone(), all[0]["visibility"].clone()),
        (json!(1), json!("public"))
    );
    assert_eq!(
        (all[1]["body"].clone(), all[1]["visibility"].clone()),
        (json!("Vendor ticket 123"), json!("internal"))
    );
    assert_eq!(
        all[1]["author"],
        json!({"type": "user", "name": "anonymous"})
    );
    let public = d.get_ok(&format!("{path}?visibility=public"));
    assert_eq!(public.as_array().unwrap().len(), 1);
    let history = d.get_ok(&format!("/api/v1/tickets/{id}/history"));
    let reasons: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["reason"].clone())
        .collect();
    assert!(
        reasons.contains(&json!("public comment #1"))
            && reasons.contains(&json!("internal comment #2")),
        "{reasons:?}"
    );
}

#[test]
fn links_join_the_right_kinds_and_resolving_a_parent_resolves_its_open_children() {
    let d = Setup::new().start();
    let parent = id(&create(
        &d,
        json!({"kind": "incident", "title": "site down"}),
    ));
    let kids: Vec<String> = (0..3)
        .map(|i| {
            id(&create(
                &d,
                json!({"kind": "incident", "title": format!("user {i}")}),
            ))
        })
        .collect();
    let problem = id(&create(&d, json!({"kind": "problem", "title": "root"})));
    let link = |from: &str, rel: &str, to: &str| {
        send(
            &d,
            "POST",
            &format!("/api/v1/tickets/{from}/links"),
            &json!({"rel": rel, "ticket": to}),
            None,
        )
    };
    for k in &kids {
        assert_eq!(link(&parent, "parent_of", k).0, 201);
    }
    let (status, t) = link(&parent, "caused_by", &problem);
    assert_eq!(status, 201, "{t}");
    assert!(
        t["links"]
            .as_array()
            .unwrap()
            .contains(&json!({"rel": "caused_by", "ticket": problem}))
    );
    let p = snapshot(&d, &problem);
    assert!(
        p["links"]
            .as_array()
            .unwrap()
            .contains(&json!({"rel": "causes", "ticket": parent}))
    );

    let (status, err) = link(&problem, "caused_by", &parent);
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("caused_by cannot link problem to incident")
    );
    assert_eq!(
        link(&parent, "caused_by", &problem).0,
        409,
        "already linked"
    );
    assert_eq!(link(&kids[0], "parent_of", &parent).0, 409, "a cycle");
    assert_eq!(link(&parent, "parent_of", &parent).0, 422, "itself");
    assert_eq!(link(&parent, "parent_of", "INC-000999").0, 404);

    // One child is already resolved and keeps its own resolution.
    step(
        &d,
        &kids[2],
        "resolved",
        json!({"resolution": "user_error"}),
    );
    let (status, _) = step(&d, &parent, "resolved", json!({"resolution": "fixed"}));
    assert_eq!(status, 200);
    for k in &kids[..2] {
        let t = snapshot(&d, k);
        assert_eq!(
            (t["state"].clone(), t["resolution"].clone()),
            (json!("resolved"), json!("fixed")),
            "{t}"
        );
        let last = t["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last["reason"],
            format!("resolved with parent {parent}: test: to resolved")
        );
    }
    assert_eq!(snapshot(&d, &kids[2])["resolution"], "user_error");
}

#[test]
fn a_problem_closes_as_duplicate_only_with_its_link() {
    let d = Setup::new().start();
    let original = id(&create(&d, json!({"kind": "problem", "title": "a"})));
    let dup = id(&create(&d, json!({"kind": "problem", "title": "a again"})));
    step(&d, &dup, "assess", json!({}));
    let (status, err) = step(&d, &dup, "closed", json!({"resolution": "duplicate"}));
    assert_eq!(status, 422, "{err}");
    let (status, _) = send(
        &d,
        "POST",
        &format!("/api/v1/tickets/{dup}/links"),
        &json!({"rel": "duplicate_of", "ticket": original}),
        None,
    );
    assert_eq!(status, 201);
    let (status, t) = step(&d, &dup, "closed", json!({"resolution": "duplicate"}));
    assert_eq!(
        (status, t["resolution"].clone()),
        (200, json!("duplicate")),
        "{t}"
    );
}

#[test]
fn a_change_needs_its_window_before_scheduling_and_its_outcome_before_closing() {
    let d = Setup::new().config(CERTS).start();
    let t = create(
        &d,
        json!({"kind": "change", "change_type": "standard", "template": "certs", "title": "certs"}),
    );
    assert_eq!(t["change"]["type"], "standard");
    assert_eq!(t["change"].get("window"), None);
    let id = id(&t);
    let (status, err) = step(&d, &id, "scheduled", json!({}));
    assert_eq!(
        (status, err["error"]["details"]["field"].clone()),
        (422, json!("window")),
        "{err}"
    );
    let patch = |body: Value| send(&d, "PATCH", &format!("/api/v1/tickets/{id}"), &body, None);
    let (status, err) =
        patch(json!({"window": {"start": "2030-01-05T23:00:00Z", "end": "2030-01-05T22:00:00Z"}}));
    assert_eq!(status, 422, "{err}");
    let (status, _) = patch(json!({"window": open_window()}));
    assert_eq!(status, 200);
    for to in ["scheduled", "implement", "review"] {
        assert_eq!(step(&d, &id, to, json!({})).0, 200);
    }
    let (status, err) = patch(json!({"change_type": "normal"}));
    assert_eq!(status, 422, "{err}");
    let (status, err) = step(&d, &id, "closed", json!({}));
    assert_eq!(status, 422);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("review outcome: one of successful")
    );
    let (_, t) = step(&d, &id, "closed", json!({"outcome": "successful"}));
    assert_eq!(t["change"]["outcome"], "successful");
    let (status, err) = patch(json!({"title": "late edit"}));
    assert_eq!(status, 409, "{err}");
}

/// A standard change template, `certs`, for the tests that walk standard changes.
pub(crate) const CERTS: &str = r#"
[changes.templates.certs]
title = "Rotate the TLS certificates"
risk = "low"
backout_plan = "Put the previous certificates back"
authorized_by = "CAB 2026-03-02"
"#;

/// Request approvers alice and bob (2 of 2), and agent tokens for alice, bob and carol.
pub(crate) const APPROVERS: &str = r#"
[approval]
approvers = ["alice", "bob"]
required = 2

[[auth.tokens]]
name = "alice"
role = "agent"
token = "alice-token-0123456789"

[[auth.tokens]]
name = "bob"
role = "agent"
token = "bob-token-0123456789ab"

[[auth.tokens]]
name = "carol"
role = "agent"
token = "carol-token-0123456789"
"#;

#[test]
fn a_request_needs_n_of_m_approvals_and_one_rejection_rejects() {
    let d = Setup::new()
        .config(&format!("{}{APPROVERS}", groups_config(&[])))
        .start();
    let as_ = |token: &str, id: &str, to: &str| {
        send(
            &d,
            "POST",
            &format!("/api/v1/tickets/{id}/transitions"),
            &json!({"to": to, "reason": "ok"}),
            Some(token),
        )
    };
    let new = |token: &str| {
        let (status, t) = send(
            &d,
            "POST",
            "/api/v1/tickets",
            &json!({"kind": "request", "title": "db access"}),
            Some(token),
        );
        assert_eq!(status, 201, "{t}");
        id(&t)
    };
    let req = new("carol-token-0123456789");
    let (_, t) = as_("carol-token-0123456789", &req, "awaiting_approval");
    assert_eq!(t["approval"]["required"], 2);
    let (status, err) = as_("carol-token-0123456789", &req, "approved");
    assert_eq!(status, 403, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`carol` is not an approver")
    );
    let (status, t) = as_("alice-token-0123456789", &req, "approved");
    assert_eq!(
        (status, t["state"].clone()),
        (200, json!("awaiting_approval")),
        "{t}"
    );
    assert_eq!(t["approval"]["approved_by"], json!(["alice"]));
    assert_eq!(
        as_("alice-token-0123456789", &req, "approved").0,
        409,
        "one vote each"
    );
    let (_, t) = as_("bob-token-0123456789ab", &req, "approved");
    assert_eq!(t["state"], "approved");
    assert_eq!(as_("carol-token-0123456789", &req, "in_progress").0, 200);

    let other = new("carol-token-0123456789");
    as_("carol-token-0123456789", &other, "awaiting_approval");
    let (_, t) = as_("bob-token-0123456789ab", &other, "rejected");
    assert_eq!(
        (t["state"].clone(), t["approval"]["rejected_by"].clone()),
        (json!("rejected"), json!("bob"))
    );
    let (_, history) = send(
        &d,
        "GET",
        &format!("/api/v1/tickets/{other}/history"),
        &Value::Null,
        Some("alice-token-0123456789"),
    );
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], json!({"type": "user", "name": "bob"}));
}

#[test]
fn without_approvers_a_request_cannot_go_for_approval() {
    let d = Setup::new().start();
    let id = id(&create(&d, json!({"kind": "request", "title": "x"})));
    let (status, err) = step(&d, &id, "awaiting_approval", json!({}));
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no approvers are configured")
    );
}

#[test]
fn resolved_incidents_and_fulfilled_requests_close_themselves() {
    let config = format!(
        "{}[lifecycle]\nincident_close_after = \"1s\"\nrequest_close_after = \"1s\"\nsweep_every = \"100ms\"\n",
        groups_config(&[])
    );
    let d = Setup::new().config(&config).start();
    let inc = id(&create(&d, json!({"kind": "incident", "title": "x"})));
    let req = id(&create(&d, json!({"kind": "request", "title": "y"})));
    let open = id(&create(
        &d,
        json!({"kind": "incident", "title": "still open"}),
    ));
    step(&d, &inc, "resolved", json!({"resolution": "fixed"}));
    step(&d, &req, "in_progress", json!({}));
    step(&d, &req, "fulfilled", json!({}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    for id in [&inc, &req] {
        loop {
            let t = snapshot(&d, id);
            if t["state"] == "closed" {
                assert_closed_by_housekeeping(&t, "1s");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{id} did not close: {t}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    assert_eq!(snapshot(&d, &open)["state"], "new");
}
