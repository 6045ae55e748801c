//! Vendor webhooks end to end: the real daemon sends signed webhooks to a scripted local
//! receiver (failures, 429 + Retry-After, hangs, 410, redirects), survives a crash in the
//! middle of a delivery, lists and replays dead letters, and takes signed callbacks.

use std::time::{Duration, Instant};

use itsmd::vendors::signing::DEFAULT_TOLERANCE;
use itsmd::vendors::{ReceivedHeaders, Secret, sign, verify};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::receiver::{Receiver, Reply};
use crate::support::{BIN, Daemon, Setup};

pub(crate) const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ADMIN: &str = "admin-token-for-vendor-tests";

/// A daemon with an admin token and vendor `acme` posting to `url`; `extra` is appended to
/// the vendor's table (before its sub-tables).
pub(crate) fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
[auth]
tokens = [{{ name = "root", role = "admin", token = "{ADMIN}" }}]
[groups.triage]
[groups.operations]
[vendors.acme]
url = "{url}"
secret = "{SECRET}"
previous_secret = "{OLD_SECRET}"
{extra}
[vendors.acme.status_map]
acknowledged = "in_progress"
resolved = {{ to = "resolved", resolution = "fixed" }}
closed = "closed"
"#
    )
}

/// Fast retries for tests: milliseconds, not minutes.
const FAST: &str = r#"timeout = "300ms"
retry = { max_attempts = 6, base_ms = 20, cap_ms = 100, max_retry_after_ms = 5000 }"#;

pub(crate) fn call(
    d: &Daemon,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    d.call_as(ADMIN, method, path, body)
}

/// Opens an incident and assigns it to acme; returns its id.
pub(crate) fn assigned_incident(d: &Daemon) -> String {
    let (status, t) = call(
        d,
        reqwest::Method::POST,
        "/api/v1/tickets",
        Some(json!({"kind": "incident", "title": "Storage array degraded"})),
    );
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let (status, t) = call(
        d,
        reqwest::Method::PATCH,
        &format!("/api/v1/tickets/{id}"),
        Some(json!({"vendor": "acme"})),
    );
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["vendor"], "acme");
    id
}

fn outbox(d: &Daemon, dead: bool) -> Value {
    let (status, v) = call(
        d,
        reqwest::Method::GET,
        &format!("/api/v1/admin/outbox?dead={dead}"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v
}

/// Polls `pred` on the outbox listing until it holds (at most 10 s).
fn wait_outbox(d: &Daemon, dead: bool, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = outbox(d, dead);
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "outbox never matched: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rows(v: &Value) -> &Vec<Value> {
    v["rows"].as_array().expect("rows")
}

/// Asserts a received webhook is signed by both the new and the rotating-out secret.
fn assert_signed(r: &crate::receiver::Received) {
    let headers = ReceivedHeaders {
        id: Some(&r.id),
        timestamp: Some(&r.timestamp),
        signature: Some(&r.signature),
    };
    let at = Timestamp::from_second(r.timestamp.parse().unwrap()).unwrap();
    for secret in [SECRET, OLD_SECRET] {
        let s = Secret::parse(secret, "test").unwrap();
        verify(&[s], &headers, r.body.as_bytes(), at, DEFAULT_TOLERANCE)
            .unwrap_or_else(|e| panic!("not signed by {secret}: {e}"));
    }
    assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
}

fn cli(d: &Daemon, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .args(["--server", &d.url(""), "--token", ADMIN])
        .output()
        .expect("run itsmd");
    assert!(
        out.status.success(),
        "itsmd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn webhooks_are_signed_retried_with_backoff_honour_retry_after_and_time_out() {
    let receiver = Receiver::start(vec![
        Reply::Status(500),
        Reply::Status(503),
        Reply::RetryAfter(1),
        Reply::Hang(Duration::from_secs(3)),
    ]);
    let setup = Setup::new().config(&config(&receiver.url, FAST));
    let d = setup.start();
    assigned_incident(&d);

    let got = receiver.wait_for(5, Duration::from_secs(15));
    assert_eq!(
        got.len(),
        5,
        "delivered on the fifth attempt, then nothing more"
    );
    let first = &got[0];
    assert!(first.id.starts_with("msg_"), "{}", first.id);
    for r in &got {
        assert_eq!(r.id, first.id, "the webhook-id is stable across retries");
        assert_eq!(r.body, first.body, "every attempt sends the same payload");
        assert_signed(r);
    }
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["type"], "ticket.assigned");
    assert_eq!(body["data"]["ticket"]["vendor"], "acme");
    assert!(first.body.len() < 20_000);

    let gap = |i: usize| got[i + 1].at.duration_since(got[i].at);
    assert!(
        gap(2) >= Duration::from_millis(950),
        "Retry-After 1 s honoured: {:?}",
        gap(2)
    );
    assert!(
        gap(3) >= Duration::from_millis(290),
        "the hang counted after the timeout: {:?}",
        gap(3)
    );

    wait_outbox(&d, false, |v| rows(v).is_empty());
    let metrics = d.metrics();
    for line in [
        r#"itsmd_webhook_deliveries_total{vendor="acme",result="delivered"} 1"#,
        r#"itsmd_webhook_deliveries_total{vendor="acme",result="retry"} 4"#,
        r#"itsmd_webhook_failures_total{vendor="acme",result="status_5xx"} 2"#,
        r#"itsmd_webhook_failures_total{vendor="acme",result="status_429"} 1"#,
        r#"itsmd_webhook_failures_total{vendor="acme",result="timeout"} 1"#,
        "itsmd_outbox_pending 0",
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
}

#[test]
fn dead_letters_are_listed_and_replayed_and_410_disables_the_vendor() {
    let receiver = Receiver::start(vec![Reply::Status(500), Reply::Status(502)]);
    let extra = r#"timeout = "2s"
retry = { max_attempts = 2, base_ms = 20, cap_ms = 50 }"#;
    let setup = Setup::new().config(&config(&receiver.url, extra));
    let d = setup.start();
    let id = assigned_incident(&d);

    let dead = wait_outbox(&d, true, |v| rows(v).len() == 1);
    let row = &rows(&dead)[0];
    assert_eq!(row["attempts"], 2);
    assert_eq!(row["ticket"], id.as_str());
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("gave up after 2"),
        "{row}"
    );
    let listed = cli(&d, &["outbox", "list", "--dead"]);
    assert!(
        listed.contains("ticket.assigned") && listed.contains("HTTP 502"),
        "{listed}"
    );

    let row_id = row["id"].as_u64().unwrap().to_string();
    let said = cli(&d, &["outbox", "replay", &row_id]);
    assert!(said.contains("sent again"), "{said}");
    let got = receiver.wait_for(3, Duration::from_secs(10));
    assert_eq!(got[2].id, got[0].id, "a replay keeps the webhook-id");
    wait_outbox(&d, false, |v| rows(v).is_empty());
    assert!(rows(&outbox(&d, true)).is_empty());

    // A redirect is not followed: dead at once, one request.
    receiver.script(vec![Reply::Redirect]);
    let comment = json!({"body": "customer impact confirmed", "visibility": "public"});
    let path = format!("/api/v1/tickets/{id}/comments");
    assert_eq!(
        call(&d, reqwest::Method::POST, &path, Some(comment.clone())).0,
        201
    );
    let dead = wait_outbox(&d, true, |v| rows(v).len() == 1);
    assert!(
        rows(&dead)[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed")
    );
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter().all(|r| r.path == "/hook"),
        "the redirect was not followed"
    );

    // 410 Gone disables the vendor: later messages are held, not sent.
    receiver.script(vec![Reply::Status(410)]);
    assert_eq!(
        call(&d, reqwest::Method::POST, &path, Some(comment.clone())).0,
        201
    );
    let v = wait_outbox(&d, false, |v| {
        !v["vendors"]["acme"]["disabled_at"].is_null()
    });
    assert_eq!(rows(&v).len(), 1);
    assert_eq!(call(&d, reqwest::Method::POST, &path, Some(comment)).0, 201);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        receiver.received().len(),
        5,
        "nothing is sent to a disabled vendor"
    );
    assert!(cli(&d, &["outbox", "list"]).contains("Vendor acme is disabled"));

    let said = cli(&d, &["outbox", "replay", "--vendor", "acme"]);
    assert!(said.contains("1 dead and 2 pending"), "{said}");
    let got = receiver.wait_for(8, Duration::from_secs(10));
    let comments: Vec<String> = got[5..]
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["data"]["comment"]["body"].to_string()
        })
        .collect();
    assert_eq!(comments.len(), 3, "{comments:?}");
    wait_outbox(&d, false, |v| {
        rows(v).is_empty() && v["vendors"]["acme"]["disabled_at"].is_null()
    });
    assert!(rows(&outbox(&d, true)).is_empty());
}

#[test]
fn a_delivery_cut_off_by_a_crash_is_sent_again_with_the_same_webhook_id() {
    let receiver = Receiver::start(vec![Reply::Hang(Duration::from_secs(60))]);
    let setup = Setup::new().config(&config(&receiver.url, r#"timeout = "30s""#));
    let d = setup.start();
    assigned_incident(&d);
    let first = receiver.wait_for(1, Duration::from_secs(10))[0].clone();
    d.kill();

    let d = setup.start();
    let got = receiver.wait_for(2, Duration::from_secs(10));
    assert_eq!(got[1].id, first.id, "same webhook-id after the restart");
    assert_eq!(got[1].body, first.body);
    assert_signed(&got[1]);
    wait_outbox(&d, false, |v| rows(v).is_empty());
    assert!(rows(&outbox(&d, true)).is_empty());
}

/// POSTs a callback body signed with `secret` at `at`.
fn callback(d: &Daemon, secret: &str, id: &str, at: Timestamp, body: &Value) -> (u16, Value) {
    let text = body.to_string();
    let key = Secret::parse(secret, "test").unwrap();
    let signed = sign(&[key], id, at, text.as_bytes()).unwrap();
    let mut req = d
        .http
        .post(d.url("/api/v1/vendors/acme/callback"))
        .header("content-type", "application/json")
        .body(text);
    for (name, value) in signed.pairs() {
        req = req.header(name, value);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn callbacks_are_verified_deduplicated_mapped_and_all_or_nothing() {
    let receiver = Receiver::start(vec![]);
    let setup = Setup::new().config(&config(&receiver.url, FAST));
    let d = setup.start();
    let id = assigned_incident(&d);
    let ticket = |d: &Daemon| {
        call(
            d,
            reqwest::Method::GET,
            &format!("/api/v1/tickets/{id}"),
            None,
        )
        .1
    };
    let now = Timestamp::now();
    let ack = json!({"ticket": id, "reference": "ACME-4711", "status": "acknowledged",
                     "comment": "Engineer dispatched", "eta": "2h"});

    // No bearer token needed, but the signature must be right.
    let before = ticket(&d);
    let (status, body) = callback(
        &d,
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "cb_1",
        now,
        &ack,
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_signature");
    let stale = now - SignedDuration::from_mins(10);
    let (status, body) = callback(&d, SECRET, "cb_1", stale, &ack);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("away from now"),
        "{body}"
    );
    assert_eq!(ticket(&d), before, "a refused callback changes nothing");

    let (status, body) = callback(&d, OLD_SECRET, "cb_1", now, &ack);
    assert_eq!(
        status, 200,
        "the rotating-out secret still verifies: {body}"
    );
    assert_eq!(body["duplicate"], false);
    let t = ticket(&d);
    assert_eq!(t["state"], "in_progress");
    assert_eq!(t["vendor_ref"], "ACME-4711");
    assert_eq!(t["comments"], 1);
    let (_, history) = call(
        &d,
        reqwest::Method::GET,
        &format!("/api/v1/tickets/{id}/history"),
        None,
    );
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"],
        json!({"type": "vendor", "name": "acme"}),
        "{last}"
    );

    let (status, body) = callback(&d, SECRET, "cb_1", now, &ack);
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)), "{body}");
    assert_eq!(
        ticket(&d)["comments"],
        1,
        "a duplicate webhook-id is applied once"
    );

    let before = ticket(&d);
    let close = json!({"ticket": id, "status": "closed", "comment": "closing"});
    let (status, body) = callback(&d, SECRET, "cb_2", now, &close);
    assert_eq!(status, 409, "in_progress → closed is illegal: {body}");
    assert_eq!(ticket(&d), before, "nothing of a refused callback is kept");

    let done = json!({"ticket": id, "status": "resolved"});
    assert_eq!(callback(&d, SECRET, "cb_3", now, &done).0, 200);
    let t = ticket(&d);
    assert_eq!(
        (t["state"].as_str(), t["resolution"].as_str()),
        (Some("resolved"), Some("fixed"))
    );

    let metrics = d.metrics();
    for line in [
        r#"itsmd_vendor_callbacks_total{vendor="acme",result="bad_signature"} 2"#,
        r#"itsmd_vendor_callbacks_total{vendor="acme",result="applied"} 2"#,
        r#"itsmd_vendor_callbacks_total{vendor="acme",result="duplicate"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
}
