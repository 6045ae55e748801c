//! The console's speed: the queue page rendered by the real daemon (release build) on a
//! store of 100,000 tickets, and the JavaScript a page ships.
//!
//!   cargo bench --bench console                  # 100,000 tickets, 500 page loads
//!   TICKETS=20000 LOADS=200 cargo bench --bench console
//!
//! The store is filled in process by the engine (alerts open incidents; every tenth stays
//! open, the others are resolved), then the daemon binary serves it; a signed-in client
//! loads `/ui/` (the whole queue page), `/ui/queue` (the part htmx polls) and a ticket page
//! one after another and prints p50, p99 and max per page. The JavaScript is every
//! `<script src>` of the page as sent to a client that takes gzip. Targets: queue page p99
//! ≤ 100 ms, JavaScript ≤ 100 KiB; the bench exits non-zero when one is missed.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use itsmd::clock::SystemClock;
use itsmd::config::Config;
use itsmd::engine;
use itsmd::event::EventBody;
use itsmd::rules::{Limits, Rules};
use itsmd::store::Store;
use itsmd::tickets::{
    Action, Actor, Command as TicketCommand, Resolution, State, TicketId, TransitionRequest,
};

const BIN: &str = env!("CARGO_BIN_EXE_itsmd");
const USER: &str = "bench";
const PASSWORD: &str = "bench passphrase";

fn alert(n: usize) -> EventBody {
    let labels = [
        ("alertname".to_string(), "Bench".to_string()),
        ("instance".to_string(), format!("host-{n}")),
        ("team".to_string(), "operations".to_string()),
    ]
    .into();
    let severity = if n.is_multiple_of(3) {
        "critical"
    } else {
        "warning"
    };
    common::firing(labels, severity, format!("Disk almost full on host-{n}"))
}

fn resolve(id: TicketId) -> EventBody {
    EventBody::Command(TicketCommand {
        by: Actor::User { name: USER.into() },
        action: Action::Transition {
            ticket: id,
            step: TransitionRequest {
                to: State::Resolved,
                reason: "bench".into(),
                hold_reason: None,
                resolution: Some(Resolution::Fixed),
                outcome: None,
                window_override: None,
            },
        },
    })
}

/// Fills `config`'s store through the engine: `tickets` incidents, nine in ten resolved.
async fn fill(config: &Config, tickets: usize) {
    let store: Arc<dyn Store> = itsmd::store::open(&config.store).expect("store");
    let rules = Rules::load(Limits::from(&config.rules), &config.rules.dir).expect("rules");
    let (engine, thread) = engine::start(
        config,
        store.clone(),
        rules,
        Arc::new(SystemClock),
        Arc::new(itsmd::metrics::Metrics::new()),
        tracing::Span::none(),
    )
    .expect("engine");
    let started = Instant::now();
    for chunk in (0..tickets).collect::<Vec<_>>().chunks(1000) {
        engine
            .submit_many(chunk.iter().map(|n| alert(*n)).collect())
            .await
            .expect("alerts");
    }
    let ids: Vec<TicketId> = (1..=tickets as u64)
        .filter(|n| !n.is_multiple_of(10))
        .map(|n| format!("INC-{n:06}").parse().expect("an id"))
        .collect();
    for chunk in ids.chunks(1000) {
        engine
            .submit_many(chunk.iter().map(|id| resolve(*id)).collect())
            .await
            .expect("transitions");
    }
    println!(
        "filled: {tickets} tickets ({} resolved) in {:.1} s, data dir {} MiB",
        ids.len(),
        started.elapsed().as_secs_f64(),
        store.size_on_disk() >> 20
    );
    drop(engine);
    thread.join().await;
}

/// The daemon on `data` at a free port, killed when dropped.
struct Daemon {
    child: std::process::Child,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &std::path::Path, config: &std::path::Path) -> Daemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .arg("--rules-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("itsmd serve");
    let d = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{}/readyz", d.url))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the daemon did not get ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

/// Adds the bench user and signs in: the session cookie.
fn sign_in(d: &Daemon, http: &reqwest::blocking::Client) -> String {
    let mut child = Command::new(BIN)
        .args(["user", "add", USER, "--role", "agent", "--server", &d.url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("itsmd user add");
    writeln!(child.stdin.take().expect("stdin"), "{PASSWORD}").expect("the password");
    assert!(child.wait().expect("user add").success());
    let page = http
        .get(format!("{}/ui/login", d.url))
        .send()
        .expect("the sign-in page");
    let cookie = |r: &reqwest::blocking::Response, name: &str| -> String {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .expect("the cookie")
            .to_string()
    };
    let login = cookie(&page, "itsmd_login_csrf");
    let csrf = login.split_once('=').expect("a value").1.to_string();
    let r = http
        .post(format!("{}/ui/login", d.url))
        .header("cookie", login)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", USER),
            ("password", PASSWORD),
        ])
        .send()
        .expect("sign in");
    assert_eq!(r.status().as_u16(), 303, "signed in");
    cookie(&r, "itsmd_session")
}

/// Loads `path` `loads` times; prints and returns p50, p99, max in ms.
fn measure(
    d: &Daemon,
    http: &reqwest::blocking::Client,
    session: &str,
    path: &str,
    loads: usize,
) -> (f64, f64, f64) {
    let get = || {
        let r = http
            .get(format!("{}{path}", d.url))
            .header("cookie", session)
            .send()
            .expect("a page");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.bytes().expect("the page").len()
    };
    for _ in 0..10 {
        get();
    }
    let mut ms = Vec::with_capacity(loads);
    let mut bytes = 0;
    for _ in 0..loads {
        let t = Instant::now();
        bytes = get();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    let (p50, p99, max) = (at(0.50), at(0.99), ms[ms.len() - 1]);
    println!(
        "{path}: {loads} loads, {bytes} bytes: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    (p50, p99, max)
}

/// Every `<script src>` of the page, as sent to a client that takes gzip: total bytes.
fn javascript(d: &Daemon, http: &reqwest::blocking::Client, session: &str) -> usize {
    let page = http
        .get(format!("{}/ui/", d.url))
        .header("cookie", session)
        .send()
        .and_then(|r| r.text())
        .expect("the queue page");
    let mut total = 0;
    for src in page
        .split("<script src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
    {
        let r = http
            .get(format!("{}{src}", d.url))
            .header("accept-encoding", "gzip")
            .send()
            .expect("a script");
        let encoding = r
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity")
            .to_string();
        let n = r.bytes().expect("the script").len();
        println!("script {src}: {n} bytes ({encoding})");
        total += n;
    }
    total
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tickets = common::env("TICKETS", 100_000);
    let loads = common::env("LOADS", 500);
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("itsmd.toml");
    let text = format!("[groups.triage]\n[groups.operations]\nmembers = [\"{USER}\"]\n");
    std::fs::write(&config_path, &text).expect("the configuration");
    let mut config = itsmd::config::parse(&text, "bench").expect("the configuration");
    config.store.data_dir = dir.path().join("data");
    config.rules.dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    fill(&config, tickets).await;

    let data = config.store.data_dir.clone();
    let missed = tokio::task::spawn_blocking(move || {
        let d = serve(&data, &config_path);
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client");
        let session = sign_in(&d, &http);
        let (_, queue_p99, _) = measure(&d, &http, &session, "/ui/", loads);
        measure(&d, &http, &session, "/ui/queue", loads);
        let open = format!("/ui/tickets/INC-{:06}", tickets.max(10) / 10 * 10);
        measure(&d, &http, &session, &open, loads);
        let js = javascript(&d, &http, &session);
        println!(
            "JavaScript shipped: {js} bytes ({:.1} KiB)",
            js as f64 / 1024.0
        );
        let mut missed = Vec::new();
        if queue_p99 > 100.0 {
            missed.push(format!("queue page p99 {queue_p99:.1} ms > 100 ms"));
        }
        if js > 100 * 1024 {
            missed.push(format!("JavaScript {js} bytes > 100 KiB"));
        }
        missed
    })
    .await
    .expect("the measurements");
    if missed.is_empty() {
        println!("Targets met: queue page p99 ≤ 100 ms, JavaScript ≤ 100 KiB.");
    } else {
        eprintln!("Targets missed: {}", missed.join("; "));
        std::process::exit(1);
    }
}
