//! Auth and limits: who may call what, and how the daemon protects itself from its clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{BIN, Setup, alert};

const INGEST: &str = "ingest-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

fn with_tokens(extra: &str) -> Setup {
    Setup::new().config(&format!(
        "{extra}\n[[auth.tokens]]\nname = \"monitoring\"\nrole = \"ingest\"\ntoken = \"{INGEST}\"\n\
         [[auth.tokens]]\nname = \"alice\"\nrole = \"agent\"\ntoken = \"{AGENT}\"\n"
    ))
}

#[test]
fn tokens_and_roles_decide_who_may_call_what() {
    let d = with_tokens("").start();
    let body = alert("firing", "x", json!({"a": "1"}));
    let post = |token: Option<&str>| {
        let mut r = d.http.post(d.url("/api/v1/events")).body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap()
    };
    let r = post(None);
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"itsmd\"");
    assert_eq!(post(Some("wrong-token-0123456789")).status().as_u16(), 401);
    assert_eq!(post(Some(INGEST)).status().as_u16(), 202);
    // Roles are levels: an agent may send events too.
    assert_eq!(post(Some(AGENT)).status().as_u16(), 202);
    // Alertmanager and Grafana can only do basic auth: the token is the password.
    let r = d
        .http
        .post(d.url("/api/v1/events"))
        .basic_auth("am", Some(INGEST))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);

    // Reading tickets needs an agent.
    let r = d
        .http
        .get(d.url("/api/v1/tickets"))
        .bearer_auth(INGEST)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let e: serde_json::Value = r.json().unwrap();
    assert_eq!(
        e["error"]["message"],
        "token `monitoring` has role ingest; this endpoint needs agent"
    );
    let r = d
        .http
        .get(d.url("/api/v1/tickets"))
        .bearer_auth(AGENT)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Health stays open for probes.
    assert_eq!(d.get("/healthz").0, 200);

    let logs = d.logs();
    let text = serde_json::to_string(&logs).unwrap();
    assert!(!text.contains(INGEST) && !text.contains(AGENT) && !text.contains("wrong-token"));
}

#[test]
fn an_open_api_on_a_network_address_is_refused() {
    let setup = Setup::new().config("[server]\nlisten = \"0.0.0.0:0\"\n");
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(setup.config.as_ref().unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a loopback address and [auth] has no tokens"),
        "{err}"
    );
    // With a token the same address is fine.
    let setup = Setup::new().config(&format!(
        "[server]\nlisten = \"0.0.0.0:0\"\n[[auth.tokens]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"{AGENT}\"\n"
    ));
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(setup.config.as_ref().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ingest_over_the_rate_limit_gets_429_with_retry_after() {
    let d = with_tokens("[server]\ningest_rate_per_sec = 1\ningest_burst = 2\n").start();
    let send = |token: &str, i: u32| {
        d.http
            .post(d.url("/api/v1/events"))
            .bearer_auth(token)
            .body(alert("firing", "x", json!({"i": i.to_string()})))
            .send()
            .unwrap()
    };
    let standing = |r: &reqwest::blocking::Response| {
        let h = |name: &str| r.headers()[name].to_str().unwrap().to_string();
        (
            h("ratelimit-limit"),
            h("ratelimit-remaining"),
            h("ratelimit-reset"),
        )
    };
    let first = send(INGEST, 1);
    assert_eq!(first.status().as_u16(), 202);
    assert_eq!(standing(&first), ("2".into(), "1".into(), "1".into()));
    let second = send(INGEST, 2);
    assert_eq!(second.status().as_u16(), 202);
    assert_eq!(second.headers()["ratelimit-remaining"], "0");
    let r = send(INGEST, 3);
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["ratelimit-limit"], "2");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let reset: u64 = r.headers()["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&reset), "reset {reset}");
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["error"]["code"],
        "rate_limited"
    );
    // Another token has its own bucket.
    let other = send(AGENT, 4);
    assert_eq!(other.status().as_u16(), 202);
    assert_eq!(other.headers()["ratelimit-remaining"], "1");
    // Refusals are counted by caller.
    assert_eq!(
        d.metric(r#"itsmd_rate_limited_total{caller="monitoring"}"#),
        1.0
    );
    assert_eq!(d.metric(r#"itsmd_rate_limited_total{caller="alice"}"#), 0.0);
}

fn slow_rule(ms: u64) -> String {
    format!(
        "fn on_alert(alert, ticket) {{ let t = timestamp(); while t.elapsed * 1000.0 < {ms}.0 {{ }} }}"
    )
}

const SLOW_LIMITS: &str = "[rules]\ntime_budget_ms = 10000\nmax_operations = 10000000000\n";

#[test]
fn past_the_concurrency_limit_requests_are_shed_with_503() {
    let rule = slow_rule(1000);
    let setup = Setup::new()
        .rules(&[("10-slow.rhai", &rule)])
        .config(&format!(
            "[server]\nmax_concurrent_requests = 1\n{SLOW_LIMITS}"
        ));
    let d = std::sync::Arc::new(setup.start());
    let first = {
        let d = d.clone();
        std::thread::spawn(move || {
            d.post("/api/v1/events", &alert("firing", "x", json!({"i": "1"})))
                .0
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let r = d
        .http
        .post(d.url("/api/v1/events"))
        .body(alert("firing", "x", json!({"i": "2"})))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["error"]["code"],
        "overloaded"
    );
    // Probes are not shed.
    assert_eq!(d.get("/healthz").0, 200);
    assert_eq!(first.join().unwrap(), 202);
}

#[test]
fn a_request_over_its_time_limit_gets_503_and_its_event_is_still_kept() {
    let rule = slow_rule(2500);
    let setup = Setup::new()
        .rules(&[("10-slow.rhai", &rule)])
        .config(&format!(
            "[server]\nrequest_timeout_secs = 1\n{SLOW_LIMITS}"
        ));
    let d = setup.start();
    let (status, body) = d.post("/api/v1/events", &alert("firing", "x", json!({"i": "1"})));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    // The engine still commits it: a retry by the sender would find the same incident.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if d.get("/api/v1/tickets/INC-000001").0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the timed-out event was lost");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    let d = Setup::new()
        .config("[server]\nheader_timeout_secs = 1\n")
        .start();
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The server answers 408 or just closes; either way the read ends well before 10 s.
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the slow client was not cut off"
    );
    // A normal client is unaffected.
    assert_eq!(d.get("/healthz").0, 200);
}

#[test]
fn a_pagerduty_routing_key_is_an_ingest_token() {
    let d = with_tokens("").start();
    let event = |key: &str| {
        json!({
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": "disk-db01",
            "payload": {"summary": "Disk full", "source": "db01", "severity": "critical"}
        })
        .to_string()
    };
    let (status, body) = d.post("/v2/enqueue", &event("not-a-token-0123456789"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "invalid event");
    let (status, body) = d.post("/v2/enqueue", &event(INGEST));
    assert_eq!(status, 202, "{body}");
    let t: serde_json::Value = d
        .http
        .get(d.url("/api/v1/tickets/INC-000001"))
        .bearer_auth(AGENT)
        .send()
        .unwrap()
        .json()
        .unwrap();
    // The token's name is recorded as the source, never the token.
    assert_eq!(t["alert"]["source"], "monitoring");
    assert!(!t.to_string().contains(INGEST));
}

#[test]
fn pagerduty_events_are_rate_limited_per_routing_key() {
    let d = with_tokens("[server]\ningest_rate_per_sec = 1\ningest_burst = 2\n").start();
    let event = |n: u32| {
        json!({
            "routing_key": INGEST,
            "event_action": "trigger",
            "dedup_key": format!("k{n}"),
            "payload": {"summary": "s", "source": "h", "severity": "info"}
        })
        .to_string()
    };
    let send = |n: u32| {
        d.http
            .post(d.url("/v2/enqueue"))
            .body(event(n))
            .send()
            .unwrap()
    };
    let first = send(1);
    assert_eq!(first.status().as_u16(), 202);
    assert_eq!(first.headers()["ratelimit-limit"], "2");
    assert_eq!(first.headers()["ratelimit-remaining"], "1");
    assert_eq!(d.post("/v2/enqueue", &event(2)).0, 202);
    let r = send(3);
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    assert!(r.headers().contains_key("ratelimit-reset"));
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["status"],
        "throttle event"
    );
    // The routing key is the ingest token: counted under that token's name.
    assert_eq!(
        d.metric(r#"itsmd_rate_limited_total{caller="monitoring"}"#),
        1.0
    );
}
