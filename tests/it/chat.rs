//! Chat notifications end to end: the real daemon posts people notifications to loopback
//! receivers in the documented shapes of Slack (`text` + `blocks`), Microsoft Teams (a
//! message with an Adaptive Card attachment) and Matrix (`PUT …/rooms/{room}/send/
//! m.room.message/{txnId}` with a bearer token), through the outbox: a failed Matrix send is
//! retried with the same transaction id. No `[smtp]`: chat works without mail.

use std::time::Duration;

use serde_json::{Value, json};

use crate::receiver::{Receiver, Reply};
use crate::support::Setup;

const ADMIN: &str = "admin-token-for-chat-tests";

fn config(slack: &str, teams: &str, matrix: &str, token: &std::path::Path) -> String {
    format!(
        r#"
[auth]
tokens = [{{ name = "root", role = "admin", token = "{ADMIN}" }}]
[groups.triage]
[groups.network]
members = ["alice", "bob"]
lead = "alice"
[chat.ops-slack]
format = "slack"
url = "{slack}"
groups = ["network"]
[chat.alice-teams]
format = "teams"
url = "{teams}"
people = ["alice"]
[chat.ops-matrix]
format = "matrix"
url = "{matrix}"
room = "!ops:example.org"
token_file = "{}"
groups = ["network"]
[chat.ops-matrix.retry]
base_ms = 100
cap_ms = 200
"#,
        token.display()
    )
}

fn body(r: &crate::receiver::Received) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

#[test]
fn a_p1_reaches_slack_teams_and_matrix_in_their_shapes_and_matrix_retries_idempotently() {
    let slack = Receiver::start(vec![]);
    let teams = Receiver::start(vec![]);
    let matrix = Receiver::start(vec![Reply::Status(502)]);
    let setup = Setup::new();
    let token = setup.dir.path().join("matrix.token");
    std::fs::write(&token, "syt_secret_token\n").unwrap();
    // The Matrix base URL is the homeserver's: the receiver's root.
    let base = matrix.url.trim_end_matches("/hook").to_string();
    let setup = setup.config(&config(&slack.url, &teams.url, &base, &token));
    let d = setup.start();

    let (status, t) = d.call_as(
        ADMIN,
        reqwest::Method::POST,
        "/api/v1/tickets",
        Some(json!({"kind": "incident", "title": "Core switch <down>", "group": "network", "priority": 1})),
    );
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();

    let got = slack.wait_for(1, Duration::from_secs(20));
    let s = body(&got[0]);
    assert_eq!(got[0].method, "POST");
    assert!(s["text"].as_str().unwrap().contains(&id), "{s}");
    assert_eq!(s["blocks"][0]["type"], "section", "{s}");
    assert_eq!(s["blocks"][0]["text"]["type"], "mrkdwn", "{s}");
    assert!(
        s["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("Core switch &lt;down&gt;"),
        "{s}"
    );

    let got = teams.wait_for(1, Duration::from_secs(20));
    let m = body(&got[0]);
    assert_eq!(m["type"], "message", "{m}");
    let card = &m["attachments"][0];
    assert_eq!(
        card["contentType"], "application/vnd.microsoft.card.adaptive",
        "{m}"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard", "{m}");
    assert!(
        card["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .contains(&id),
        "{m}"
    );

    let got = matrix.wait_for(2, Duration::from_secs(20));
    assert_eq!(got[0].answered, 502);
    for r in &got {
        assert_eq!(r.method, "PUT");
        assert_eq!(r.authorization, "Bearer syt_secret_token");
        assert!(
            r.path
                .starts_with("/_matrix/client/v3/rooms/!ops:example.org/send/m.room.message/")
                || r.path.starts_with(
                    "/_matrix/client/v3/rooms/%21ops%3Aexample.org/send/m.room.message/"
                ),
            "{}",
            r.path
        );
    }
    assert_eq!(got[0].path, got[1].path, "the retry has the same txnId");
    let mx = body(&got[1]);
    assert_eq!(mx["msgtype"], "m.text", "{mx}");
    assert_eq!(mx["format"], "org.matrix.custom.html", "{mx}");
    assert!(
        mx["body"].as_str().unwrap().contains("Core switch <down>"),
        "{mx}"
    );
    assert!(
        mx["formatted_body"]
            .as_str()
            .unwrap()
            .contains("Core switch &lt;down&gt;"),
        "{mx}"
    );
    // Delivered: nothing pending; the token is in no row.
    crate::support::wait_until("the outbox is empty", || {
        let v = d
            .call_as(ADMIN, reqwest::Method::GET, "/api/v1/admin/outbox", None)
            .1;
        v["rows"].as_array().is_some_and(Vec::is_empty)
    });
    let dump = setup.dir.path().join("dump.jsonl");
    let (ok, out) = d.export_to(&dump, ADMIN);
    assert!(ok, "{out}");
    assert!(
        !std::fs::read_to_string(&dump)
            .unwrap()
            .contains("syt_secret_token")
    );
    // Only one message each: bob's own channel is not configured, alice's got one.
    assert_eq!(slack.received().len(), 1);
    assert_eq!(teams.received().len(), 1);
}

/// `HH:MM` in UTC, `minutes` from now.
fn utc_in(minutes: i64) -> String {
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_mins(minutes))
        .unwrap();
    at.strftime("%H:%M").to_string()
}

#[test]
fn a_personal_channel_keeps_quiet_hours_and_a_page_brings_what_it_held() {
    let slack = Receiver::start(vec![]);
    let teams = Receiver::start(vec![]);
    // Alice's quiet hours are now; quiet hours are `[smtp.quiet]`'s (no people to mail).
    let config = format!(
        r#"
[auth]
tokens = [{{ name = "root", role = "admin", token = "{ADMIN}" }}]
[groups.triage]
[groups.network]
members = ["alice", "bob"]
[chat.ops-slack]
format = "slack"
url = "{}"
groups = ["network"]
[chat.alice-teams]
format = "teams"
url = "{}"
people = ["alice"]
[smtp]
host = "127.0.0.1"
from = "desk@example.com"
[smtp.quiet.alice]
time_zone = "UTC"
from = "{}"
until = "{}"
"#,
        slack.url,
        teams.url,
        utc_in(-60),
        utc_in(60)
    );
    let setup = Setup::new().config(&config);
    let d = setup.start();
    let (status, t) = d.call_as(
        ADMIN,
        reqwest::Method::POST,
        "/api/v1/tickets",
        Some(json!({"kind": "incident", "title": "Link flapping", "group": "network", "priority": 3})),
    );
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();

    // The group's channel hears of the new ticket at once; alice's own channel waits.
    let got = slack.wait_for(1, Duration::from_secs(20));
    assert!(body(&got[0])["text"].as_str().unwrap().contains(&id));
    let outbox = || {
        d.call_as(ADMIN, reqwest::Method::GET, "/api/v1/admin/outbox", None)
            .1["rows"]
            .as_array()
            .cloned()
            .unwrap()
    };
    crate::support::wait_until("the group channel's row is done", || {
        outbox().iter().all(|r| r["vendor"] != "@chat/ops-slack")
    });
    let rows = outbox();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["vendor"], "@chat/alice-teams", "{rows:?}");
    assert_eq!(rows[0]["attempts"], 0, "{rows:?}");
    let due: jiff::Timestamp = rows[0]["next_at"].as_str().unwrap().parse().unwrap();
    assert!(
        due > jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_mins(50))
            .unwrap(),
        "held until her window ends: {due}"
    );
    assert!(teams.received().is_empty());

    // Raised to priority 1: she is paged, and the held message goes first.
    let (status, t) = d.call_as(
        ADMIN,
        reqwest::Method::PATCH,
        &format!("/api/v1/tickets/{id}"),
        Some(json!({"priority": 1})),
    );
    assert_eq!(status, 200, "{t}");
    let got = teams.wait_for(2, Duration::from_secs(20));
    let first = body(&got[0])["attachments"][0]["content"]["body"][0]["text"].to_string();
    let second = body(&got[1])["attachments"][0]["content"]["body"][0]["text"].to_string();
    assert!(first.contains("New in network"), "{first}");
    assert!(second.contains("P1 opened"), "{second}");
}
