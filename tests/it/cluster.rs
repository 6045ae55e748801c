//! Several nodes, one writer: three `itsmd serve` processes on one PostgreSQL database
//! (`[cluster] enabled`). Intake on every node, a SIGKILLed leader replaced within the lease,
//! a SIGSTOPped leader fenced, and every acknowledged alert processed exactly once. Needs
//! `ITSMD_TEST_PG_URL` like `postgres.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use itsmd::store::Shared;
use serde_json::{Value, json};

use itsmd::vendors::signing::DEFAULT_TOLERANCE;
use itsmd::vendors::{ReceivedHeaders, Secret, verify};

use crate::postgres::database;
use crate::receiver::{Received, Receiver, Reply};
use crate::support::{Daemon, Setup, alert};

const KEYS: usize = 6;

fn node(url: &str, name: &str) -> (Setup, Daemon) {
    let setup = Setup::new().config(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
         [cluster]\nenabled = true\nnode = \"{name}\"\nlease_ms = 3000\nrenew_ms = 500\n"
    ));
    let d = setup.start();
    (setup, d)
}

fn role(d: &Daemon) -> String {
    let (status, body) = d.get("/healthz");
    assert_eq!(status, 200, "{body}");
    body["role"].as_str().unwrap_or_default().to_string()
}

/// Polls `f` every 20 ms until it gives a value or `within` has passed.
fn poll<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which of `nodes` leads, once exactly one does.
fn leader(nodes: &[&Daemon], within: Duration) -> usize {
    poll(within, "exactly one leader", || {
        let leaders: Vec<usize> = (0..nodes.len())
            .filter(|&i| role(nodes[i]) == "leader")
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    })
}

/// Sends one alert per key to `d`; counts what was tried and what was acknowledged.
fn round(d: &Daemon, tried: &mut [u32], acked: &mut [u32]) {
    for k in 0..KEYS {
        tried[k] += 1;
        let (status, body) = d.post(
            "/api/v1/events",
            &alert(
                "firing",
                &format!("Cluster k{k}"),
                json!({"alertname": "Cluster", "instance": format!("k{k}")}),
            ),
        );
        assert_eq!(status, 202, "{body}");
        let outcome = body["outcome"].as_str().unwrap_or_default();
        assert!(
            ["opened", "updated", "queued", "seen"].contains(&outcome),
            "{body}"
        );
        acked[k] += 1;
    }
}

/// Every ticket titled "Cluster kN": key → [alert count of each].
fn tickets(d: &Daemon) -> BTreeMap<String, Vec<u64>> {
    let list = d.get_ok("/api/v1/tickets?limit=1000");
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in list["tickets"].as_array().cloned().unwrap_or_default() {
        let id = t["id"].as_str().unwrap_or_default().to_string();
        let full: Value = d.get_ok(&format!("/api/v1/tickets/{id}"));
        let title = full["title"].as_str().unwrap_or_default().to_string();
        if let Some(key) = title.strip_prefix("Cluster ") {
            out.entry(key.to_string())
                .or_default()
                .push(full["alert"]["count"].as_u64().unwrap_or(0));
        }
    }
    out
}

fn view(nodes: &[(Setup, Daemon)]) -> Vec<&Daemon> {
    nodes.iter().map(|(_, d)| d).collect()
}

#[test]
fn three_nodes_fail_over_within_the_lease_fence_a_paused_leader_and_process_each_alert_once() {
    let url = database("cluster");
    let mut nodes: Vec<(Setup, Daemon)> = ["a", "b", "c"].iter().map(|n| node(&url, n)).collect();
    let (mut tried, mut acked) = (vec![0u32; KEYS], vec![0u32; KEYS]);

    let first = leader(&view(&nodes), Duration::from_secs(15));
    for (_, d) in &nodes {
        round(d, &mut tried, &mut acked);
    }

    // SIGKILL the leader: another takes the lead within the lease.
    let (_setup, killed) = nodes.remove(first);
    killed.kill();
    let killed_at = Instant::now();
    let second = leader(&view(&nodes), Duration::from_secs(10));
    let failover = killed_at.elapsed();
    println!("failover after SIGKILL took {failover:?}");
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    for (_, d) in &nodes {
        round(d, &mut tried, &mut acked);
    }

    // SIGSTOP the leader: the other node takes over; the paused one, resumed, is fenced
    // (its lease token is stale) and steps down without writing.
    let other = 1 - second;
    nodes[second].1.signal(libc::SIGSTOP);
    let stopped_at = Instant::now();
    poll(Duration::from_secs(10), "the other node to lead", || {
        (role(&nodes[other].1) == "leader").then_some(())
    });
    println!("takeover after SIGSTOP took {:?}", stopped_at.elapsed());
    round(&nodes[other].1, &mut tried, &mut acked);
    nodes[second].1.signal(libc::SIGCONT);
    poll(
        Duration::from_secs(10),
        "the resumed node to follow",
        || (role(&nodes[second].1) == "follower").then_some(()),
    );
    assert_eq!(role(&nodes[other].1), "leader");
    println!(
        "resumed node: fenced batches {}, lease changes {}",
        nodes[second].1.metric("itsmd_fenced_batches_total"),
        nodes[second].1.metric("itsmd_lease_changes_total")
    );
    for (_, d) in &nodes {
        round(d, &mut tried, &mut acked);
    }

    // Every acknowledged alert processed exactly once: one ticket per key, and each
    // ticket counts at least the acknowledged sends and at most the tried ones.
    let reader = &nodes[0].1;
    let seen = poll(Duration::from_secs(15), "every alert processed", || {
        let t = tickets(reader);
        let done = (0..KEYS).all(|k| {
            t.get(&format!("k{k}"))
                .is_some_and(|counts| counts.iter().sum::<u64>() >= u64::from(acked[k]))
        });
        done.then_some(t)
    });
    for k in 0..KEYS {
        let counts = &seen[&format!("k{k}")];
        assert_eq!(counts.len(), 1, "k{k}: one ticket per key: {seen:?}");
        assert!(
            counts[0] <= u64::from(tried[k]),
            "k{k}: {counts:?} > tried {}",
            tried[k]
        );
    }
    for (_, d) in nodes {
        assert_eq!(d.terminate().code(), Some(0));
    }
}

#[test]
fn a_stale_lease_token_cannot_commit() {
    let url = database("fence");
    let config = itsmd::config::StoreConfig {
        backend: itsmd::config::StoreBackend::Postgres,
        url: Some(url),
        ..Default::default()
    };
    let a = itsmd::store::open_shared(&config).unwrap();
    let b = itsmd::store::open_shared(&config).unwrap();
    let first = a.take_lease("a", 300).unwrap();
    assert!(first.mine);
    assert!(!b.take_lease("b", 300).unwrap().mine, "a holds it");
    let second = poll(Duration::from_secs(5), "b to take the lease", || {
        let l = b.take_lease("b", 60_000).unwrap();
        l.mine.then_some(l)
    });
    assert_eq!(second.token, first.token + 1);
    let ids = a.push(vec![vec![1, 2, 3]], 10).unwrap();
    let mut batch = itsmd::store::WriteBatch::default();
    batch.put(itsmd::store::Tree::Meta, b"fenced".to_vec(), b"x".to_vec());
    let refused = a
        .commit_fenced(batch, first.token, vec![(ids[0], vec![9])])
        .unwrap_err();
    assert!(
        matches!(refused, itsmd::store::StoreError::Fenced { .. }),
        "{refused}"
    );
    assert!(
        a.answers(ids.clone()).unwrap().is_empty(),
        "nothing answered"
    );
    assert!(
        !a.take_lease("a", 300).unwrap().mine,
        "a does not get it back"
    );
    b.commit_fenced(
        itsmd::store::WriteBatch::default(),
        second.token,
        vec![(ids[0], vec![9])],
    )
    .unwrap();
    assert_eq!(a.answers(ids).unwrap().len(), 1);
}

/// The leader reads its next batch past the rows of the one still committing, and a row
/// is pending until it is answered, whoever reads.
#[test]
fn the_inbox_is_read_past_the_batch_in_flight_and_answered_rows_leave_it() {
    let config = itsmd::config::StoreConfig {
        backend: itsmd::config::StoreBackend::Postgres,
        url: Some(database("pending")),
        ..Default::default()
    };
    let a = itsmd::store::open_shared(&config).unwrap();
    let lease = a.take_lease("a", 60_000).unwrap();
    let ids = a.push(vec![vec![1], vec![2], vec![3]], 10).unwrap();
    let pending = |after: i64, limit: usize| -> Vec<i64> {
        a.pending(after, limit)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    assert_eq!(pending(0, 10), ids);
    assert_eq!(pending(0, 2), ids[..2]);
    assert_eq!(pending(ids[0], 10), ids[1..], "past the first, in flight");
    assert!(pending(ids[2], 10).is_empty());
    a.commit_fenced(
        itsmd::store::WriteBatch::default(),
        lease.token,
        vec![(ids[0], vec![9])],
    )
    .unwrap();
    assert_eq!(pending(0, 10), ids[1..], "the answered row left the inbox");
}

/// Every ticket is assigned to the vendor (`ticket.assigned`, once per ticket); every alert
/// also notifies it (`ticket.notified`, one outbox message per processed alert).
const VENDOR_RULES: &str = r#"
fn on_alert(alert, ticket) {
    if ticket.is_new {
        ticket.title = alert.summary;
        ticket.vendor = "acme";
    }
    ticket.notify("acme");
}

fn on_mail(mail, ticket) {
    if ticket.is_new {
        ticket.vendor = "acme";
    }
}
"#;

/// A node with its own Maildir (in its setup's folder), on a short lease, sending webhooks
/// to the vendor `acme` at `vendor`.
fn mail_node(url: &str, name: &str, vendor: &str) -> Setup {
    Setup::new()
        .rules(&[("50-cluster.rhai", VENDOR_RULES)])
        .config(&format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
             [cluster]\nenabled = true\nnode = \"{name}\"\nlease_ms = 2000\nrenew_ms = 500\n\
             [mail]\nsettle = \"100ms\"\nrescan_every = \"1s\"\n\
             [vendors.acme]\nurl = \"{vendor}\"\nsecret = \"{VENDOR_SECRET}\"\ntimeout = \"2s\"\n\
             retry = {{ max_attempts = 50, base_ms = 10, cap_ms = 200, max_retry_after_ms = 1000 }}\n"
        ))
}

const VENDOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// The vendor fails now and then (retried with the same webhook-id) and is sometimes slow,
/// so kills also land while deliveries are in flight; then it answers 200.
fn vendor_script(rng: &mut fastrand::Rng) -> Vec<Reply> {
    (0..120)
        .map(|_| match rng.u8(0..4) {
            0 => Reply::Status(503),
            1 => Reply::Hang(Duration::from_millis(100)),
            _ => Reply::Status(200),
        })
        .collect()
}

/// Checks what the vendor received against the tickets: every request signed, the same body
/// on every delivery of one webhook-id (retries, and re-sends by the next leader after a
/// failover), each message made once (one webhook-id per type, ticket and event), each
/// ticket assigned once, and one notification per processed alert. Returns (messages,
/// deliveries beyond the first per webhook-id).
fn assert_vendor_saw_each_message_once(
    received: &[Received],
    titles: &BTreeMap<String, String>,
    alerts: &BTreeMap<String, u64>,
) -> (usize, usize) {
    let secret = Secret::parse(VENDOR_SECRET, "test").unwrap();
    let mut by_id: BTreeMap<&str, &Received> = BTreeMap::new();
    for r in received {
        let at = jiff::Timestamp::from_second(r.timestamp.parse().unwrap()).unwrap();
        let headers = ReceivedHeaders {
            id: Some(&r.id),
            timestamp: Some(&r.timestamp),
            signature: Some(&r.signature),
        };
        verify(
            std::slice::from_ref(&secret),
            &headers,
            r.body.as_bytes(),
            at,
            DEFAULT_TOLERANCE,
        )
        .unwrap_or_else(|e| panic!("not signed: {e}: {r:?}"));
    }
    for r in received {
        let first = by_id.entry(&r.id).or_insert(r);
        assert_eq!(
            first.body, r.body,
            "{}: every delivery sends the same body",
            r.id
        );
    }
    for id in by_id.keys() {
        assert!(
            received
                .iter()
                .any(|r| r.id == *id && (200..300).contains(&r.answered)),
            "{id} was delivered (answered 2xx at least once)"
        );
    }
    let mut made: BTreeMap<(String, String, u64), &str> = BTreeMap::new();
    let mut assigned: BTreeMap<String, usize> = BTreeMap::new();
    let mut notified: BTreeMap<String, u64> = BTreeMap::new();
    for (id, r) in &by_id {
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let kind = body["type"].as_str().unwrap().to_string();
        let ticket = body["data"]["ticket"]["id"].as_str().unwrap().to_string();
        let event = body["data"]["event"].as_u64().unwrap();
        assert_eq!(
            titles.get(&ticket).map(String::as_str),
            body["data"]["ticket"]["title"].as_str(),
            "{id} is about a ticket as stored: {body}"
        );
        match kind.as_str() {
            "ticket.assigned" => *assigned.entry(ticket.clone()).or_default() += 1,
            "ticket.notified" => *notified.entry(ticket.clone()).or_default() += 1,
            other => panic!("only assignments and notifications are made, not {other}"),
        }
        if let Some(other) = made.insert((kind.clone(), ticket.clone(), event), id) {
            panic!("{kind} about {ticket} for event {event} made twice: {other} and {id}");
        }
    }
    let every: Vec<&String> = titles.keys().collect();
    assert_eq!(
        assigned.keys().collect::<Vec<_>>(),
        every,
        "every ticket assigned to the vendor"
    );
    assert!(
        assigned.values().all(|n| *n == 1),
        "each ticket assigned once: {assigned:?}"
    );
    for (ticket, count) in alerts {
        assert_eq!(
            notified.get(ticket).copied().unwrap_or(0),
            *count,
            "{ticket}: one notification per processed alert"
        );
    }
    assert_eq!(
        notified.keys().collect::<Vec<_>>(),
        alerts.keys().collect::<Vec<_>>(),
        "notifications only about alert tickets"
    );
    (by_id.len(), received.len() - by_id.len())
}

fn start_mail_node(setup: &Setup) -> Daemon {
    let maildir = setup.dir.path().join("Maildir");
    setup.start_with(
        &[std::ffi::OsStr::new("--maildir"), maildir.as_os_str()],
        &[],
    )
}

/// Delivers mail number `n` into `setup`'s Maildir as a delivery agent does (tmp/, then new/).
fn deliver_mail(setup: &Setup, n: usize) {
    let root = setup.dir.path().join("Maildir");
    let text = format!(
        "From: caller{n}@example.com\r\nTo: help@example.com\r\nSubject: Cluster mail {n}\r\n\
         Message-ID: <cluster-{n}@example.com>\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\n\
         Content-Type: text/plain\r\n\r\nPlease help ({n}).\r\n"
    );
    let name = format!("{n}.cluster");
    std::fs::write(root.join("tmp").join(&name), text).unwrap();
    std::fs::rename(root.join("tmp").join(&name), root.join("new").join(&name)).unwrap();
}

#[test]
fn repeated_kills_at_random_points_and_a_pause_lose_nothing_and_do_nothing_twice() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let url = database("kills");
    let seed = std::env::var("ITSMD_CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("seed {seed} (ITSMD_CLUSTER_SEED={seed} replays the kill points)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let vendor = Receiver::start(vendor_script(&mut rng));
    let setups: Vec<Setup> = ["a", "b", "c"]
        .iter()
        .map(|n| mail_node(&url, n, &vendor.url))
        .collect();
    let mut nodes: Vec<Option<Daemon>> = setups.iter().map(|s| Some(start_mail_node(s))).collect();
    let addrs: Arc<Mutex<Vec<std::net::SocketAddr>>> =
        Arc::new(Mutex::new(nodes.iter().flatten().map(|d| d.addr).collect()));

    // Alerts into all three nodes, round-robin, all the time: what was tried and acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (addrs, stop) = (addrs.clone(), stop.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let (mut tried, mut acked) = (vec![0u64; KEYS], vec![0u64; KEYS]);
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let k = i % KEYS;
                let addr = {
                    let a = addrs.lock().unwrap();
                    a[i % a.len()]
                };
                i += 1;
                tried[k] += 1;
                let sent = http
                    .post(format!("http://{addr}/api/v1/events"))
                    .header("content-type", "application/json")
                    .body(alert(
                        "firing",
                        &format!("Cluster k{k}"),
                        json!({"alertname": "Cluster", "instance": format!("k{k}")}),
                    ))
                    .send();
                if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                    acked[k] += 1;
                } else {
                    // Refused or cut off by a kill: not acknowledged; back off a little.
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            (tried, acked)
        })
    };

    let mut mails = 0;
    let mut failovers = Vec::new();
    for round in 0..3 {
        for s in &setups {
            deliver_mail(s, mails);
            mails += 1;
        }
        let view: Vec<&Daemon> = nodes.iter().flatten().collect();
        let lead = leader(&view, Duration::from_secs(15));
        let lead_addr = view[lead].addr;
        let i = nodes
            .iter()
            .position(|d| d.as_ref().is_some_and(|d| d.addr == lead_addr))
            .unwrap();
        // A random point: somewhere in the stream of batches.
        std::thread::sleep(Duration::from_millis(rng.u64(50..800)));
        nodes[i].take().unwrap().kill();
        let killed_at = Instant::now();
        let view: Vec<&Daemon> = nodes.iter().flatten().collect();
        leader(&view, Duration::from_secs(10));
        failovers.push(killed_at.elapsed());
        println!(
            "kill {round}: node {i} killed, new leader after {:?}",
            killed_at.elapsed()
        );
        nodes[i] = Some(start_mail_node(&setups[i]));
        *addrs.lock().unwrap() = nodes.iter().flatten().map(|d| d.addr).collect();
    }

    // SIGSTOP the leader: another takes over; the resumed one must not write (fenced).
    let view: Vec<&Daemon> = nodes.iter().flatten().collect();
    let paused = leader(&view, Duration::from_secs(15));
    view[paused].signal(libc::SIGSTOP);
    let live: Vec<&Daemon> = (0..3).filter(|&j| j != paused).map(|j| view[j]).collect();
    *addrs.lock().unwrap() = live.iter().map(|d| d.addr).collect();
    leader(&live, Duration::from_secs(10));
    for s in &setups {
        deliver_mail(s, mails);
        mails += 1;
    }
    std::thread::sleep(Duration::from_millis(rng.u64(100..600)));
    view[paused].signal(libc::SIGCONT);
    poll(
        Duration::from_secs(10),
        "the resumed node to follow",
        || (role(view[paused]) == "follower").then_some(()),
    );
    *addrs.lock().unwrap() = view.iter().map(|d| d.addr).collect();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (tried, acked) = sender.join().unwrap();
    println!("failovers {failovers:?}; alerts acked {acked:?} of tried {tried:?}; mails {mails}");
    assert!(
        acked.iter().sum::<u64>() > 0,
        "some alerts were acknowledged"
    );

    // Exactly once: one ticket per key counting every acknowledged alert and no more than
    // were tried; one ticket per mail.
    let reader = view[0];
    let seen = poll(
        Duration::from_secs(20),
        "every alert and mail processed",
        || {
            let t = tickets(reader);
            let alerts_done = (0..KEYS).all(|k| {
                t.get(&format!("k{k}"))
                    .is_some_and(|c| c.iter().sum::<u64>() >= acked[k])
            });
            let list = reader.get_ok("/api/v1/tickets?limit=1000");
            let titles: Vec<String> = list["tickets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|t| t["title"].as_str().map(str::to_string))
                .collect();
            let mails_done = (0..mails).all(|n| titles.contains(&format!("Cluster mail {n}")));
            (alerts_done && mails_done).then_some((t, titles))
        },
    );
    let (by_key, titles) = seen;
    for k in 0..KEYS {
        let counts = &by_key[&format!("k{k}")];
        assert_eq!(counts.len(), 1, "k{k}: one ticket per key: {by_key:?}");
        assert!(
            counts[0] <= tried[k],
            "k{k}: {counts:?} > tried {}",
            tried[k]
        );
    }
    for n in 0..mails {
        let title = format!("Cluster mail {n}");
        let copies = titles.iter().filter(|t| **t == title).count();
        assert_eq!(copies, 1, "{title}: one ticket per mail");
    }
    // Every node's Maildir is done: each mail moved to cur/.
    for s in &setups {
        let new = s.dir.path().join("Maildir/new");
        poll(Duration::from_secs(10), "new/ to empty", || {
            (std::fs::read_dir(&new).unwrap().count() == 0).then_some(())
        });
    }
    // Every outbox message delivered, each with one webhook-id whichever leader sent it.
    poll(Duration::from_secs(30), "the outbox to drain", || {
        ["false", "true"]
            .iter()
            .all(|dead| {
                let rows = reader.get_ok(&format!("/api/v1/admin/outbox?dead={dead}"));
                rows["rows"].as_array().is_some_and(|r| r.is_empty())
            })
            .then_some(())
    });
    let (mut titles, mut alerts) = (BTreeMap::new(), BTreeMap::new());
    let list = reader.get_ok("/api/v1/tickets?limit=1000");
    for t in list["tickets"].as_array().cloned().unwrap_or_default() {
        let id = t["id"].as_str().unwrap_or_default().to_string();
        let full = reader.get_ok(&format!("/api/v1/tickets/{id}"));
        let title = full["title"].as_str().unwrap_or_default().to_string();
        if title.starts_with("Cluster k") {
            alerts.insert(id.clone(), full["alert"]["count"].as_u64().unwrap_or(0));
        }
        titles.insert(id, title);
    }
    let (messages, again) =
        assert_vendor_saw_each_message_once(&vendor.received(), &titles, &alerts);
    println!("vendor: {messages} messages, {again} deliveries again with the same webhook-id");
    assert_eq!(
        messages as u64,
        titles.len() as u64 + alerts.values().sum::<u64>(),
        "one assignment per ticket and one notification per alert"
    );
    for d in nodes.into_iter().flatten() {
        assert_eq!(d.terminate().code(), Some(0));
    }
}

#[test]
fn a_leader_commit_tells_every_node_s_intake_the_highest_inbox_id_it_answered() {
    let url = database("answered");
    let config = itsmd::config::StoreConfig {
        backend: itsmd::config::StoreBackend::Postgres,
        url: Some(url),
        ..Default::default()
    };
    let leader = itsmd::store::open_shared(&config).unwrap();
    let intake = itsmd::store::open_shared(&config).unwrap();
    let (told, heard) = std::sync::mpsc::channel();
    intake
        .on_answers(Box::new(move |upto| told.send(upto).is_ok()))
        .unwrap();
    // First the listener says "anything may have been answered" (it was not listening).
    assert_eq!(heard.recv_timeout(Duration::from_secs(10)).unwrap(), None);
    let lease = leader.take_lease("a", 60_000).unwrap();
    let ids = intake.push(vec![vec![1], vec![2], vec![3]], 10).unwrap();
    assert!(
        heard.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing answered yet"
    );
    leader
        .commit_fenced(
            itsmd::store::WriteBatch::default(),
            lease.token,
            vec![(ids[0], vec![9]), (ids[1], vec![9])],
        )
        .unwrap();
    assert_eq!(
        heard.recv_timeout(Duration::from_secs(10)).unwrap(),
        Some(ids[1]),
        "the batch's highest inbox id"
    );
    // A fenced batch answers nothing, so it tells nothing.
    let stale = leader.take_lease("b", 60_000).unwrap();
    assert!(!stale.mine);
    let refused = leader.commit_fenced(
        itsmd::store::WriteBatch::default(),
        lease.token - 1,
        vec![(ids[2], vec![9])],
    );
    assert!(refused.is_err());
    assert!(heard.recv_timeout(Duration::from_millis(300)).is_err());
}
