//! `GET /api/v1/tickets` as a search: every filter alone and combined, pages, the SLA
//! standings, the 400s that name a bad or unknown parameter, and `itsmd ticket list` flags.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Daemon, Setup};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn config(sla: &str) -> String {
    format!(
        r#"
[groups.triage]
[groups.operations]
[groups.dba]
members = ["ann", "bob"]
[vendors.acme]
url = "http://127.0.0.1:9/hook"
secret = "{SECRET}"
{sla}
"#
    )
}

fn create(d: &Daemon, body: Value) -> Value {
    let (status, t) = d.post("/api/v1/tickets", &body.to_string());
    assert_eq!(status, 201, "{t}");
    t
}

fn post_ok(d: &Daemon, path: &str, body: Value) -> Value {
    let (status, v) = d.post(path, &body.to_string());
    assert!((200..300).contains(&status), "POST {path}: {status} {v}");
    v
}

fn patch(d: &Daemon, id: &str, body: Value) -> Value {
    let r = d
        .http
        .patch(d.url(&format!("/api/v1/tickets/{id}")))
        .json(&body)
        .send()
        .expect("PATCH");
    assert!(r.status().is_success(), "PATCH {id}: {}", r.status());
    r.json().expect("JSON")
}

/// The ids a listing answers, in order.
fn ids(d: &Daemon, query: &str) -> Vec<String> {
    d.get_ok(&format!("/api/v1/tickets?{query}"))["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect()
}

/// A time for a query string.
fn enc(at: &Value) -> String {
    at.as_str().expect("a time").replace('+', "%2B")
}

#[test]
fn every_filter_narrows_the_listing_and_they_combine() {
    let d = Setup::new().config(&config("")).start();
    let a = create(
        &d,
        json!({"kind": "incident", "title": "Replica lag on db02", "description": "Seen on the REPLICA only",
               "group": "dba", "assignee": "ann", "priority": 1, "tags": ["db"]}),
    );
    let b = create(
        &d,
        json!({"kind": "incident", "title": "Mail is slow", "group": "dba", "assignee": "bob",
               "priority": 2, "tags": ["db", "mail"], "custom": {"caller": "Carol@Example.org"}}),
    );
    let c = create(
        &d,
        json!({"kind": "request", "title": "New laptop", "priority": 3}),
    );
    post_ok(
        &d,
        "/api/v1/tickets/REQ-000001/comments",
        json!({"body": "Please make it a ThinkPad"}),
    );
    patch(
        &d,
        "REQ-000001",
        json!({"vendor": "acme", "reason": "theirs"}),
    );
    create(
        &d,
        json!({"kind": "incident", "title": "Printer jam", "priority": 4}),
    );

    assert_eq!(ids(&d, "assignee=ann"), ["INC-000001"]);
    assert_eq!(ids(&d, "priority=2"), ["INC-000002"]);
    assert_eq!(ids(&d, "tag=db"), ["INC-000001", "INC-000002"]);
    assert_eq!(ids(&d, "vendor=acme"), ["REQ-000001"]);
    assert_eq!(ids(&d, "caller=carol%40example.org"), ["INC-000002"]);
    // Full text: title, description and comments, any case.
    assert_eq!(ids(&d, "q=thinkpad"), ["REQ-000001"]);
    assert_eq!(ids(&d, "q=replica"), ["INC-000001"]);
    assert_eq!(ids(&d, "q=SLOW"), ["INC-000002"]);
    assert!(ids(&d, "q=nowhere").is_empty());
    // Combined: all must match.
    assert_eq!(ids(&d, "tag=db&assignee=bob"), ["INC-000002"]);
    assert!(ids(&d, "tag=db&kind=request").is_empty());
    assert_eq!(ids(&d, "group=dba&state=new&q=lag"), ["INC-000001"]);
    // Times: at or after `…_after`, strictly before `…_before`.
    let at_b = enc(&b["created_at"]);
    assert_eq!(
        ids(&d, &format!("created_after={at_b}")),
        ["INC-000002", "INC-000003", "REQ-000001"]
    );
    assert_eq!(ids(&d, &format!("created_before={at_b}")), ["INC-000001"]);
    assert_eq!(
        ids(
            &d,
            &format!(
                "created_after={}&created_before={at_b}",
                enc(&a["created_at"])
            )
        ),
        ["INC-000001"]
    );
    let touched = patch(
        &d,
        "INC-000001",
        json!({"title": "Replica lag on db02 (again)"}),
    );
    let at = enc(&touched["updated_at"]);
    assert_eq!(ids(&d, &format!("updated_after={at}")), ["INC-000001"]);
    assert_eq!(
        ids(&d, &format!("updated_before={at}&kind=incident")),
        ["INC-000002", "INC-000003"]
    );
    assert_eq!(c["id"], "REQ-000001");
    // Pages of a filtered listing.
    let first = d.get_ok("/api/v1/tickets?tag=db&limit=1");
    assert_eq!(first["tickets"][0]["id"], "INC-000001");
    assert_eq!(first["next"], "INC-000001");
    let second = d.get_ok("/api/v1/tickets?tag=db&limit=1&after=INC-000001");
    assert_eq!(second["tickets"][0]["id"], "INC-000002");
    assert!(second.get("next").is_none(), "{second}");
}

#[test]
fn listings_sort_by_priority_creation_or_last_change_and_page_in_that_order() {
    let d = Setup::new().start();
    for (title, priority) in [("b", 3), ("a", 1), ("c", 5), ("d", 1)] {
        create(
            &d,
            json!({"kind": "incident", "title": title, "priority": priority}),
        );
    }
    // Ties keep id order.
    assert_eq!(
        ids(&d, "sort=priority"),
        ["INC-000002", "INC-000004", "INC-000001", "INC-000003"]
    );
    assert_eq!(
        ids(&d, "sort=-priority"),
        ["INC-000003", "INC-000001", "INC-000002", "INC-000004"]
    );
    assert_eq!(
        ids(&d, "sort=-created"),
        ["INC-000004", "INC-000003", "INC-000002", "INC-000001"]
    );
    patch(&d, "INC-000002", json!({"title": "a, again"}));
    assert_eq!(
        ids(&d, "sort=-updated&priority=1"),
        ["INC-000002", "INC-000004"]
    );
    // Pages follow the order.
    let first = d.get_ok("/api/v1/tickets?sort=priority&limit=3");
    assert_eq!(first["next"], "INC-000001");
    assert_eq!(
        ids(&d, "sort=priority&limit=3&after=INC-000001"),
        ["INC-000003"]
    );
    let (status, body) = d.get("/api/v1/tickets?sort=priority&after=INC-000009");
    assert_eq!(status, 400, "{body}");
    let (status, body) = d.get("/api/v1/tickets?sort=title");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`sort`: unknown sort \"title\"; expected one of created, updated, priority"),
        "{body}"
    );
    // `open` is a class of states in rules, not a state: the answer lists the states.
    let (status, body) = d.get("/api/v1/tickets?state=open");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`state`: unknown state \"open\"; expected one of new, "),
        "{body}"
    );
    let (ok, out, err) = list(&d, &["--sort", "-priority", "--limit", "1"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("INC-000003") && out.contains("More: --after INC-000003"),
        "{out}"
    );
}

#[test]
fn the_sla_filter_finds_breached_at_risk_and_paused_tickets() {
    let sla = r#"
[[sla.policies]]
name = "fast"
kinds = ["incident"]
priorities = [1]
response = "1h"
resolution = "2s"
[[sla.policies]]
name = "warned"
kinds = ["incident"]
priorities = [2]
response = "1h"
resolution = "100s"
warnings = [1]
[[sla.policies]]
name = "slow"
response = "1d"
resolution = "5d"
"#;
    let d = Setup::new().config(&config(sla)).start();
    create(
        &d,
        json!({"kind": "incident", "title": "breaches", "priority": 1}),
    );
    create(
        &d,
        json!({"kind": "incident", "title": "warned", "priority": 2}),
    );
    create(
        &d,
        json!({"kind": "incident", "title": "waits", "priority": 3}),
    );
    for (to, extra) in [
        ("in_progress", json!({})),
        ("on_hold", json!({"hold_reason": "awaiting_caller"})),
    ] {
        let mut body = json!({"to": to, "reason": "test"});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        post_ok(&d, "/api/v1/tickets/INC-000003/transitions", body);
    }
    assert_eq!(ids(&d, "sla=paused"), ["INC-000003"]);
    // 2 s to the first one's breach; the second is warned after 1 s and breaches at 100 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids(&d, "sla=breached") != ["INC-000001"] || ids(&d, "sla=at_risk") != ["INC-000002"] {
        assert!(Instant::now() < deadline, "no breach and warning");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ids(&d, "sla=paused&kind=incident"), ["INC-000003"]);
}

#[test]
fn unknown_parameters_and_bad_values_are_refused_by_name() {
    let d = Setup::new().start();
    for (query, says) in [
        ("asignee=bob", "unknown field `asignee`"),
        ("priority=9", "`priority` must be 1..=5"),
        ("priority=high", "`priority`"),
        ("sla=late", "expected one of breached, at_risk, paused"),
        (
            "created_after=yesterday",
            "`created_after`: \"yesterday\" is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)",
        ),
        ("updated_before=2026-13-01", "`updated_before`"),
        ("limit=lots", "`limit`"),
        ("q=", "`q` must not be empty"),
        ("state=open", "`state`"),
    ] {
        let (status, body) = d.get(&format!("/api/v1/tickets?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {message}");
        // A query string that does not even parse lists its problem like the others.
        let problems = body["error"]["details"]["problems"].as_array();
        assert!(
            problems.is_some_and(|p| p.iter().any(|p| p.as_str().unwrap_or("").contains(says))),
            "{query}: {body}"
        );
    }
    // Every problem at once.
    let (status, body) = d.get("/api/v1/tickets?priority=0&sla=late&created_before=x");
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"]["problems"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{body}"
    );
}

/// `itsmd ticket list ARGS` against `d`, without a token.
fn list(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    crate::ticket_cli::ticket(d, None, &all)
}

#[test]
fn ticket_list_takes_the_same_filters() {
    let d = Setup::new().config(&config("")).start();
    create(
        &d,
        json!({"kind": "incident", "title": "Replica lag", "group": "dba", "assignee": "ann", "tags": ["db"]}),
    );
    create(
        &d,
        json!({"kind": "incident", "title": "Mail is slow", "priority": 2}),
    );
    let (ok, out, err) = list(&d, &["--assignee", "ann", "--tag", "db", "--q", "LAG"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("INC-000001") && !out.contains("INC-000002"),
        "{out}"
    );
    let (ok, out, err) = list(
        &d,
        &["--priority", "2", "--created-after", "2020-01-01T00:00:00Z"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("INC-000002") && !out.contains("INC-000001"),
        "{out}"
    );
    // Checked before anything is sent, with the allowed values.
    let (ok, _, err) = list(&d, &["--sla", "late"]);
    assert!(!ok);
    assert!(err.contains("breached") && err.contains("at_risk"), "{err}");
    let (ok, _, err) = list(&d, &["--priority", "7"]);
    assert!(!ok);
    assert!(err.contains("--priority"), "{err}");
    // The server's message for a bad time.
    let (ok, _, err) = list(&d, &["--updated-after", "soon"]);
    assert!(!ok);
    assert!(
        err.contains("400") && err.contains("`updated_after`"),
        "{err}"
    );
}
