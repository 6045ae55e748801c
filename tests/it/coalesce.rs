//! Coalescing with a window (`[smtp] coalesce`), end to end: the first notification to a
//! person goes at once; those that follow within the window wait as one batch row in the
//! person's queue, survive a restart of the daemon, and reach the SMTP server (aiosmtpd) as
//! one mail listing them all when the window ends.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mail_out::{Sink, call, config};
use crate::support::{Setup, free_port, wait_until};

/// Long enough that three API calls fit in it on a loaded machine, short enough to wait for.
const WINDOW_SECS: u64 = 8;

fn coalescing(port: u16) -> String {
    config(port)
        .replace(
            "[groups.operations]\n",
            "[groups.network]\nmembers = [\"bob\"]\n",
        )
        .replacen(
            "[smtp.retry]",
            &format!("coalesce = \"{WINDOW_SECS}s\"\n[smtp.retry]"),
            1,
        )
        + "[smtp.people]\nbob = \"Bob <bob@corp.example>\"\n[smtp.notify]\nassigned = [\"assignee\"]\np1_opened = []\n"
}

fn outbox(d: &crate::support::Daemon) -> Vec<Value> {
    call(d, reqwest::Method::GET, "/api/v1/admin/outbox", None).1["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn assign_new(d: &crate::support::Daemon, title: &str) -> String {
    let body = json!({"kind": "incident", "title": title, "group": "network", "assignee": "bob"});
    let (status, t) = call(d, reqwest::Method::POST, "/api/v1/tickets", Some(body));
    assert_eq!(status, 201, "{t}");
    t["id"].as_str().unwrap().to_string()
}

#[test]
fn notifications_within_the_window_become_one_mail_that_survives_a_restart() {
    let port = free_port();
    let setup = Setup::new().config(&coalescing(port));
    let sink = Sink::start(port, &setup.dir.path().join("sent"));
    let d = setup.start();

    let started = Instant::now();
    let first = assign_new(&d, "Switch down");
    let got = sink.wait_for(1);
    assert!(got[0].subject.contains(&first), "{got:?}");
    let second = assign_new(&d, "Router flapping");
    let third = assign_new(&d, "Link <saturated>");
    assert!(
        started.elapsed() < Duration::from_secs(WINDOW_SECS),
        "the machine is too slow for the window"
    );

    // One batch row in bob's queue, due when the window ends; nothing else waits (once the
    // first mail's delivery is recorded).
    wait_until("the first mail's row is done", || {
        outbox(&d).iter().all(|r| r["vendor"] != "@smtp")
    });
    let rows = outbox(&d);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let batch = &rows[0];
    assert_eq!(batch["vendor"], "@smtp/bob", "{batch}");
    assert_eq!(batch["type"], "mail.batch", "{batch}");
    assert_eq!(batch["attempts"], 0, "{batch}");
    assert!(batch["next_at"].as_str().is_some(), "{batch}");
    assert_eq!(
        sink.received().len(),
        1,
        "the batch is not sent before its time"
    );

    // It is durable: a restart keeps it, and it goes when due.
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
    let d = setup.start();
    let got = sink.wait_for(2);
    let mail = &got[1];
    assert!(mail.to.contains("bob@corp.example"), "{mail:?}");
    assert!(mail.subject.contains("(and 1 more)"), "{mail:?}");
    for id in [&second, &third] {
        assert!(mail.body.contains(id.as_str()), "{id} in {mail:?}");
    }
    assert!(!mail.body.contains(&first), "{mail:?}");
    assert!(mail.html.contains("Link &lt;saturated&gt;"), "{mail:?}");
    let expected = format!("itsmd.{}.", batch["id"]);
    assert!(
        mail.message_id.starts_with(&expected),
        "{mail:?} vs {expected}"
    );
    wait_until("the outbox is empty", || outbox(&d).is_empty());
    assert_eq!(
        sink.received().len(),
        2,
        "two mails for three notifications"
    );
}
