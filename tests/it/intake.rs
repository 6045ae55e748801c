//! Alerts in through `POST /api/v1/events`, incidents out.

use serde_json::{Value, json};

use crate::support::{Setup, alert, fixture, groups_config};

#[test]
fn an_accepted_alert_opens_an_incident_with_history() {
    let setup = Setup::new().config(&groups_config(&[("dba", &[])]));
    let d = setup.start();
    let body = alert(
        "firing",
        "Disk full on db01",
        json!({"alertname": "DiskFull", "env": "prod", "team": "dba"}),
    );
    let (status, receipt) = d.post("/api/v1/events", &body);
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["outcome"], "opened");
    assert!(receipt["event_id"].as_u64().is_some());
    let id = receipt["ticket"].as_str().expect("ticket id");
    assert_eq!(id, "INC-000001");

    let t = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(t["state"], "new");
    assert_eq!(t["title"], "Disk full on db01");
    assert_eq!(t["alert"]["count"], 1);
    // The shipped default rule: team label → group, prod → high impact, critical → high urgency.
    assert_eq!(t["group"], "dba");
    assert_eq!(t["impact"], "high");
    assert_eq!(t["urgency"], "high");
    assert_eq!(t["priority"], 1);
    let history = t["history"].as_array().expect("history");
    assert_eq!(
        history[0]["actor"],
        json!({"type": "system", "component": "correlation"})
    );
    assert_eq!(history[0]["event"], receipt["event_id"]);
    let by_rule = history
        .iter()
        .find(|h| h["actor"]["type"] == "rule")
        .expect("rule entry");
    assert_eq!(by_rule["actor"]["file"], "00-defaults.rhai");
    assert!(
        by_rule["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"] == "group" && c["new"] == "dba")
    );
    // The history endpoint serves the same entries.
    assert_eq!(
        &d.get_ok(&format!("/api/v1/tickets/{id}/history")),
        &t["history"]
    );
}

#[test]
fn the_same_alert_twice_updates_one_incident() {
    let d = Setup::new().start();
    let body = alert(
        "firing",
        "CPU hot",
        json!({"alertname": "CpuHot", "instance": "web1"}),
    );
    let (_, first) = d.post("/api/v1/events", &body);
    let (status, second) = d.post("/api/v1/events", &body);
    assert_eq!(status, 202);
    assert_eq!(second["outcome"], "updated");
    assert_eq!(second["ticket"], first["ticket"]);

    let list = d.get_ok("/api/v1/tickets");
    let tickets = list["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 1, "{list}");
    assert_eq!(tickets[0]["alert"]["count"], 2);
    let counts: Vec<_> = d
        .get_ok("/api/v1/tickets/INC-000001/history")
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["changes"].as_array().unwrap().clone())
        .filter(|c| c["field"] == "alert.count")
        .collect();
    assert_eq!(
        counts,
        vec![json!({"field": "alert.count", "old": 1, "new": 2})]
    );
}

#[test]
fn a_resolved_alert_clears_its_incident_and_one_without_incident_is_only_recorded() {
    let d = Setup::new().start();
    let labels = json!({"alertname": "Down", "instance": "a"});
    d.post("/api/v1/events", &alert("firing", "Down", labels.clone()));
    let (status, r) = d.post("/api/v1/events", &alert("resolved", "Down", labels));
    assert_eq!((status, r["outcome"].as_str()), (202, Some("updated")));
    assert_eq!(
        d.get_ok("/api/v1/tickets/INC-000001")["alert"]["status"],
        "resolved"
    );

    let (status, r) = d.post(
        "/api/v1/events",
        &alert("resolved", "Other", json!({"alertname": "Other"})),
    );
    assert_eq!((status, r["outcome"].as_str()), (202, Some("recorded")));
    assert!(r.get("ticket").is_none());
}

#[test]
fn correlation_key_defaults_to_the_prometheus_fingerprint() {
    let vectors: Value =
        serde_json::from_str(&fixture("alertmanager/fingerprint_vectors.json")).unwrap();
    let d = Setup::new().start();
    for v in vectors["vectors"].as_array().unwrap() {
        let (status, r) = d.post("/api/v1/events", &alert("firing", "x", v["labels"].clone()));
        assert_eq!(status, 202, "{r}");
        let t = d.get_ok(&format!(
            "/api/v1/tickets/{}",
            r["ticket"].as_str().unwrap()
        ));
        assert_eq!(
            t["correlation_key"], v["fingerprint"],
            "labels {}",
            v["labels"]
        );
    }
}

#[test]
fn a_sender_key_wins_over_the_fingerprint() {
    let d = Setup::new().start();
    let mut body: Value = serde_json::from_str(&alert("firing", "x", json!({"a": "1"}))).unwrap();
    body["key"] = json!("backup-job-42");
    d.post("/api/v1/events", &body.to_string());
    body["labels"] = json!({"a": "2"});
    let (_, r) = d.post("/api/v1/events", &body.to_string());
    assert_eq!(r["outcome"], "updated");
    assert_eq!(
        d.get_ok("/api/v1/tickets/INC-000001")["correlation_key"],
        "backup-job-42"
    );
}

#[test]
fn malformed_json_is_refused_with_what_is_wrong_and_nothing_stored() {
    let d = Setup::new().start();
    let (status, body) = d.post("/api/v1/events", r#"{"source": "x", "status": "firing""#);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("EOF while parsing"),
        "{body}"
    );

    let (status, body) = d.post(
        "/api/v1/events",
        r#"{"source":"x","status":"burning","severity":"critical","summary":"s"}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"]["path"], "status");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown variant `burning`"),
        "{body}"
    );

    let (status, body) = d.post(
        "/api/v1/events",
        r#"{"source":"x","status":"firing","severity":"critical","summary":"s","labels":{"port":80}}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"]["path"], "labels.port");

    let (status, body) = d.post(
        "/api/v1/events",
        r#"{"source":"","status":"firing","severity":"","summary":"s"}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_event");
    assert_eq!(
        body["error"]["details"]["problems"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{body}"
    );

    let (status, _) = d.post(
        "/api/v1/events",
        r#"{"source":"x","status":"firing","severity":"c","summary":"s"} trailing"#,
    );
    assert_eq!(status, 400);

    assert_eq!(d.get_ok("/api/v1/tickets")["tickets"], json!([]));
    assert_eq!(d.get_ok("/healthz")["events_processed"], 0);
}

/// itsmd's own event is written by hand: a field it does not take is a typo, refused by name
/// with nothing stored. Prometheus' body gains fields over time: those are ignored.
#[test]
fn unknown_fields_are_refused_by_the_generic_event_and_tolerated_from_prometheus() {
    let d = Setup::new().start();
    let (status, r) = d.post(
        "/api/v1/events",
        r#"{"source":"x","status":"firing","severity":"warning","summary":"s","labelz":{"a":"b"}}"#,
    );
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["error"]["code"], "invalid_json");
    assert_eq!(r["error"]["details"]["path"], "labelz");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown field `labelz`, expected one of `source`, `key`"),
        "{message}"
    );
    assert_eq!(d.get_ok("/healthz")["events_processed"], 0);

    let (status, r) = d.post(
        "/api/v2/alerts",
        r#"[{"labels":{"alertname":"A"},"newerField":{"a":[1,2]}}]"#,
    );
    assert_eq!(status, 202, "{r}");
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let setup = Setup::new().config("[server]\nmax_body_bytes = 4096\n");
    let d = setup.start();
    let big = alert("firing", &"x".repeat(8192), json!({}));
    let (status, body) = d.post("/api/v1/events", &big);
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(d.get_ok("/api/v1/tickets")["tickets"], json!([]));
}

#[test]
fn a_rule_that_throws_keeps_the_event_and_sends_the_ticket_to_triage() {
    let setup = Setup::new()
        .config(&groups_config(&[("dba", &[]), ("network", &[])]))
        .rules(&[
        ("10-route.rhai", "fn on_alert(alert, ticket) { ticket.group = \"network\"; }"),
        (
            "20-broken.rhai",
            "fn on_alert(alert, ticket) {\n    ticket.group = \"dba\";\n    if alert.labels.boom == \"yes\" { throw \"kaboom\"; }\n}",
        ),
    ]);
    let d = setup.start();
    let (status, r) = d.post(
        "/api/v1/events",
        &alert("firing", "x", json!({"boom": "yes"})),
    );
    assert_eq!(status, 202, "{r}");
    let t = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        r["ticket"].as_str().unwrap()
    ));
    assert_eq!(t["group"], "triage");
    let last = t["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"],
        json!({"type": "system", "component": "rules"})
    );
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("20-broken.rhai:3: rule threw: kaboom"),
        "{last}"
    );
    // The failing rule's own decision (group = dba) was dropped; the other rule's stayed.
    assert!(!t["history"].to_string().contains("\"dba\""));
    let log = d.wait_for_log(|v| {
        v["message"] == "Rule failed; its decisions for this event were dropped."
    });
    assert_eq!(log["rule"], "20-broken.rhai");
    assert_eq!(log["line"], 3);

    // Without the trigger the rule works and the ticket is routed.
    let (_, r) = d.post(
        "/api/v1/events",
        &alert("firing", "y", json!({"boom": "no"})),
    );
    let t = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        r["ticket"].as_str().unwrap()
    ));
    assert_eq!(t["group"], "dba");
}

#[test]
fn a_rule_that_loops_forever_costs_its_budget_and_loses_nothing() {
    let setup = Setup::new()
        .rules(&[(
            "10-loop.rhai",
            "fn on_alert(alert, ticket) { ticket.group = \"x\"; loop {} }",
        )])
        .config("[rules]\ntime_budget_ms = 50\nmax_operations = 1000000000\n");
    let d = setup.start();
    let (status, r) = d.post("/api/v1/events", &alert("firing", "x", json!({})));
    assert_eq!(status, 202, "{r}");
    let t = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        r["ticket"].as_str().unwrap()
    ));
    assert_eq!(t["group"], "triage");
    assert!(
        t["history"]
            .to_string()
            .contains("time budget of 50 ms exceeded"),
        "{t}"
    );
}

#[test]
fn listing_filters_and_pages() {
    let d = Setup::new()
        .config(&groups_config(&[("dba", &[]), ("web", &[])]))
        .start();
    for i in 0..5 {
        let team = if i % 2 == 0 { "dba" } else { "web" };
        d.post(
            "/api/v1/events",
            &alert("firing", "x", json!({"i": i.to_string(), "team": team})),
        );
    }
    let page = d.get_ok("/api/v1/tickets?limit=2");
    let ids: Vec<_> = page["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("INC-000001"), json!("INC-000002")]);
    assert_eq!(page["next"], "INC-000002");
    let page = d.get_ok("/api/v1/tickets?limit=2&after=INC-000004");
    assert_eq!(page["tickets"].as_array().unwrap().len(), 1);
    assert!(page.get("next").is_none());

    let dba = d.get_ok("/api/v1/tickets?group=dba");
    assert_eq!(dba["tickets"].as_array().unwrap().len(), 3);
    let dba_new = d.get_ok("/api/v1/tickets?group=dba&state=new&kind=incident&limit=2");
    assert_eq!(dba_new["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(dba_new["next"], "INC-000003");
    assert_eq!(
        d.get_ok("/api/v1/tickets?state=closed")["tickets"],
        json!([])
    );

    let (status, body) = d.get("/api/v1/tickets?state=bogus&kind=thing&limit=0");
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"]["problems"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{body}"
    );
    // Every listing's `limit` is checked alike, naming its range and what was sent, and an
    // unknown parameter is named, not ignored.
    for (path, max) in [
        ("/api/v1/tickets", 1000),
        ("/api/v1/tickets/INC-000001/alerts", 1000),
        ("/api/v1/admin/outbox", 500),
    ] {
        for bad in ["-1", "0", "abc", "100000"] {
            let (status, body) = d.get(&format!("{path}?limit={bad}"));
            assert_eq!(status, 400, "{path}?limit={bad}: {body}");
            assert_eq!(
                body["error"]["details"]["problems"],
                json!([format!(
                    "`limit` must be a whole number from 1 to {max}, got \"{bad}\""
                )]),
                "{path}"
            );
        }
        let (status, body) = d.get(&format!("{path}?limit={max}&foo=1"));
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown field `foo`")),
            "{path}: {body}"
        );
    }
    // A route without query parameters refuses one, naming it, and changes nothing.
    let (status, body) = d.get("/api/v1/tickets/INC-000001?history=false");
    assert_eq!(
        (status, body["error"]["details"]["problems"].clone()),
        (
            400,
            json!(["/api/v1/tickets/INC-000001 takes no query parameters; got `history`"])
        ),
        "{body}"
    );
    let (status, body) = d.post(
        "/api/v1/tickets/INC-000001/comments?visibility=internal",
        r#"{"body": "meant to be internal"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(d.get_ok("/api/v1/tickets/INC-000001/comments"), json!([]));
    let (status, body) = d.get("/api/v1/tickets/INC-000999");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = d.get("/api/v1/tickets/nonsense");
    assert_eq!(status, 400);
    let (status, body) = d.get("/api/v1/nothing-here");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}
