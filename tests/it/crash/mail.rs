//! The crash test's mail case: people notifications queued behind a slow SMTP server when
//! the daemon is SIGKILLed. After the restart every notification of a committed ticket is
//! sent at least once, every copy of one with the same Message-ID, and none is about a
//! ticket that was never committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::mail_out::{ADMIN, Sink, call, config};
use crate::support::{Setup, free_port, wait_until};

#[test]
fn notifications_queued_at_a_sigkill_are_all_sent_once_committed_with_stable_message_ids() {
    let port = free_port();
    let text = config(port).replace(
        "[groups.operations]\n",
        "[groups.network]\nmembers = [\"alice\", \"bob\"]\n",
    ) + "[smtp.people]\nalice = \"alice@corp.example\"\nbob = \"bob@corp.example\"\n";
    let setup = Setup::new().config(&text);
    let sent = setup.dir.path().join("sent");
    let slow = setup.dir.path().join("sent.slow");
    std::fs::write(&slow, "0.3").unwrap();
    let sink = Sink::start(port, &sent);
    let d = setup.start();

    // Tickets are opened as fast as the daemon takes them; each owes alice and bob a mail.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = d.url("/api/v1/tickets");
    let load = {
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let answer = http
                    .post(&url)
                    .bearer_auth(ADMIN)
                    .json(&json!({"kind": "incident", "title": format!("Crash {n}"), "group": "network"}))
                    .timeout(Duration::from_secs(5))
                    .send();
                match answer {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let v: serde_json::Value = r.json().unwrap_or_default();
                        if let Some(id) = v["id"].as_str() {
                            acked.lock().unwrap().push(id.to_string());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    };
    wait_until("tickets are acknowledged and mail is queued", || {
        acked.lock().unwrap().len() >= 20 && !sink.received().is_empty()
    });
    d.kill();
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let before = sink.received().len();
    assert!(
        before < acked.len() * 2,
        "mail was still queued at the kill ({before} of {} sent)",
        acked.len() * 2
    );

    std::fs::remove_file(&slow).unwrap();
    let d = setup.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = call(&d, reqwest::Method::GET, "/api/v1/admin/outbox", None).1;
        let dead = call(
            &d,
            reqwest::Method::GET,
            "/api/v1/admin/outbox?dead=true",
            None,
        )
        .1;
        let empty = |v: &serde_json::Value| v["rows"].as_array().is_some_and(Vec::is_empty);
        if empty(&pending) && empty(&dead) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox did not drain: {pending} {dead}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every copy of one notification has one Message-ID; every ticket mailed about exists.
    let mut ids: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for m in sink.received() {
        let start = m.subject.find('[').unwrap() + 1;
        let end = m.subject.find(']').unwrap();
        let ticket = m.subject[start..end].to_string();
        ids.entry((ticket, m.to.clone()))
            .or_default()
            .insert(m.message_id.clone());
    }
    for ((ticket, to), set) in &ids {
        assert_eq!(
            set.len(),
            1,
            "{ticket} to {to} went out with several Message-IDs: {set:?}"
        );
        let (status, _) = call(
            &d,
            reqwest::Method::GET,
            &format!("/api/v1/tickets/{ticket}"),
            None,
        );
        assert_eq!(
            status, 200,
            "mail about {ticket}, which was never committed"
        );
    }
    for ticket in &acked {
        for to in ["alice@corp.example", "bob@corp.example"] {
            assert!(
                ids.keys().any(|(t, r)| t == ticket && r.contains(to)),
                "{ticket} was acknowledged but {to} never heard of it"
            );
        }
    }
    println!(
        "crash mail: {} tickets acknowledged, {before} mails before the kill, {} after",
        acked.len(),
        sink.received().len()
    );
}
