//! `GET /api/v1/reports` over HTTP and `itsmd report`: figures credited to the group and agent
//! that held the ticket at the event (not where it is now), the CSV and table formats, and the
//! 400s that name a bad format or an unknown parameter. The exact figures of a known history
//! are checked in `src/reports/tests.rs` on a pinned clock.

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, itsmd};

const CONFIG: &str = r#"
[groups.triage]
[groups.dba]
members = ["ann", "bob"]
[groups.operations]
members = ["olga"]
"#;

fn ok(d: &Daemon, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = d
        .http
        .request(method, d.url(path))
        .json(&body)
        .send()
        .expect("request");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().expect("JSON")
}

fn rows<'a>(report: &'a Value, section: &str, by: &str) -> Vec<(&'a str, u64)> {
    report[section]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|r| r["by"] == by)
        .map(|r| (r["value"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect()
}

#[test]
fn figures_go_to_whoever_held_the_ticket_and_come_as_json_csv_and_tables() {
    let d = Setup::new().config(CONFIG).start();
    let post = reqwest::Method::POST;
    let t = ok(
        &d,
        post.clone(),
        "/api/v1/tickets",
        json!({"kind": "incident", "title": "Replica lag", "group": "dba", "assignee": "ann", "priority": 2}),
    );
    let id = t["id"].as_str().unwrap();
    let step = format!("/api/v1/tickets/{id}/transitions");
    ok(
        &d,
        post.clone(),
        &step,
        json!({"to": "in_progress", "reason": "on it"}),
    );
    ok(
        &d,
        reqwest::Method::PATCH,
        &format!("/api/v1/tickets/{id}"),
        json!({"group": "operations", "assignee": "olga", "reason": "theirs"}),
    );
    ok(
        &d,
        post,
        &step,
        json!({"to": "resolved", "reason": "fixed it", "resolution": "fixed"}),
    );

    let r = d.get_ok("/api/v1/reports?last=1d");
    // Acknowledged by ann in dba; resolved by olga in operations, where it is now.
    assert_eq!(rows(&r, "mtta", "group"), [("dba", 1)], "{r}");
    assert_eq!(rows(&r, "mtta", "agent"), [("ann", 1)], "{r}");
    assert_eq!(rows(&r, "mttr", "group"), [("operations", 1)], "{r}");
    assert_eq!(rows(&r, "mttr", "agent"), [("olga", 1)], "{r}");
    assert_eq!(r["volume"][0]["count"], 1, "{r}");
    assert_eq!(r["trends"][0]["opened"], 1, "{r}");
    assert_eq!(r["trends"][0]["period"], "day", "{r}");

    let resp = d
        .http
        .get(d.url("/api/v1/reports/mtta?last=1d&format=csv"))
        .send()
        .expect("csv");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    let csv = resp.text().unwrap();
    assert!(
        csv.starts_with("section,by,value,count,mean_secs,median_secs\r\n"),
        "{csv}"
    );
    assert!(csv.contains("\r\nmtta,agent,ann,1,"), "{csv}");
    assert!(!csv.contains("mttr"), "only the section asked for: {csv}");

    let server = d.url("");
    let (done, text) = itsmd(&[
        "report", "mttr", "--last", "1d", "--format", "csv", "--server", &server,
    ]);
    assert!(done, "{text}");
    assert!(text.contains("mttr,group,operations,1,"), "{text}");
    let (done, text) = itsmd(&["report", "--last", "1d", "--server", &server]);
    assert!(done, "{text}");
    assert!(text.contains("Trends") && text.contains("olga"), "{text}");
    let (done, text) = itsmd(&["report", "sla", "--format", "json", "--server", &server]);
    assert!(done, "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
    // A section asked for is there when it has no rows, and no other is.
    let (done, text) = itsmd(&[
        "report", "breaches", "--last", "1d", "--format", "json", "--server", &server,
    ]);
    assert!(done, "{text}");
    let breaches: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(breaches["breaches"], json!([]), "{text}");
    assert!(breaches.get("mtta").is_none(), "{text}");

    let (status, body) = d.get("/api/v1/reports?format=xml");
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("`format`"), "{body}");
    let (status, body) = d.get("/api/v1/reports?window=7d");
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("window"), "{body}");
}
