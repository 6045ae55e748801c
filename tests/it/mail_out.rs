//! Mail out end to end: the real daemon reads a caller's mail from its Maildir and sends
//! its answers over SMTP to a real SMTP server (aiosmtpd, `tests/it/smtp_sink.py`, which
//! writes what it accepts into a Maildir); the test answers those mails the way a mail
//! client does (their Message-ID in In-Reply-To, the subject tag kept) and checks they land
//! on the same ticket. The server being down leaves the row pending; it is delivered once
//! the server is back, with the Message-ID derived from the row.

use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Daemon, Setup};

pub(crate) const ADMIN: &str = "admin-token-for-mail-out-tests";

/// aiosmtpd on a loopback port, delivering into a Maildir.
pub(crate) struct Sink {
    child: Child,
    pub(crate) dir: PathBuf,
}

impl Sink {
    pub(crate) fn start(port: u16, dir: &Path) -> Sink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("sink ready line");
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        Sink {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// The messages received so far, oldest first, parsed.
    pub(crate) fn received(&self) -> Vec<Received> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            std::fs::read_dir(self.dir.join("new"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| (e.metadata().unwrap().modified().unwrap(), e.path()))
                        .collect()
                })
                .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| Received::parse(&std::fs::read(p).unwrap()))
            .collect()
    }

    pub(crate) fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} mail(s), got {}: {:?}",
                got.len(),
                got.iter().map(|m| &m.subject).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) subject: String,
    pub(crate) to: String,
    pub(crate) message_id: String,
    pub(crate) in_reply_to: String,
    pub(crate) references: String,
    pub(crate) auto_submitted: String,
    pub(crate) body: String,
    pub(crate) html: String,
}

impl Received {
    pub(crate) fn parse(bytes: &[u8]) -> Received {
        let m = mail_parser::MessageParser::default().parse(bytes).unwrap();
        let header = |name: &str| {
            m.header_raw(name)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        Received {
            subject: m.subject().unwrap_or_default().to_string(),
            to: header("To"),
            message_id: m.message_id().unwrap_or_default().to_string(),
            in_reply_to: header("In-Reply-To"),
            references: header("References"),
            auto_submitted: header("Auto-Submitted"),
            body: m.body_text(0).unwrap_or_default().to_string(),
            html: m.body_html(0).unwrap_or_default().to_string(),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn config(port: u16) -> String {
    format!(
        r#"
[auth]
tokens = [{{ name = "root", role = "admin", token = "{ADMIN}" }}]
[groups.triage]
[groups.operations]
[mail]
settle = "0s"
rescan_every = "1s"
[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Service Desk <desk@example.com>"
timeout = "2s"
[smtp.retry]
base_ms = 200
cap_ms = 400
max_attempts = 50
"#
    )
}

fn start(setup: &Setup) -> Daemon {
    let dir = setup.dir.path().join("Maildir");
    setup.start_with(&[OsStr::new("--maildir"), dir.as_os_str()], &[])
}

/// As a delivery agent does: write in tmp/, then rename into new/.
fn deliver(setup: &Setup, name: &str, text: &str) {
    let root = setup.dir.path().join("Maildir");
    let tmp = root.join("tmp").join(name);
    std::fs::write(&tmp, text.replace('\n', "\r\n")).unwrap();
    std::fs::rename(&tmp, root.join("new").join(name)).unwrap();
}

pub(crate) fn call(
    d: &Daemon,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    d.call_as(ADMIN, method, path, body)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn comments(d: &Daemon, id: &str) -> Vec<Value> {
    call(
        d,
        reqwest::Method::GET,
        &format!("/api/v1/tickets/{id}/comments"),
        None,
    )
    .1
    .as_array()
    .cloned()
    .unwrap_or_default()
}

pub(crate) fn tickets(d: &Daemon) -> Vec<Value> {
    call(d, reqwest::Method::GET, "/api/v1/tickets?limit=100", None).1["tickets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The ticket tag in a subject and its reply token: `INC-000001` and `k3x9…` of
/// `[INC-000001 #k3x9…] …`.
pub(crate) fn tag_and_token(subject: &str) -> (String, String) {
    let start = subject.find('[').expect("a tag") + 1;
    let end = subject[start..].find(']').expect("a closing bracket") + start;
    let (id, token) = subject[start..end]
        .split_once(" #")
        .expect("a reply token in the tag");
    (id.to_string(), token.to_string())
}

fn tag(subject: &str) -> String {
    tag_and_token(subject).0
}

const CALLER_MAIL: &str = "From: Alice Caller <alice@example.org>
To: desk@example.com
Subject: Printer on fire
Message-ID: <first.alice@example.org>
Date: Mon, 2 Mar 2026 09:00:00 +0000
Content-Type: text/plain; charset=utf-8

The printer on floor 3 is on fire.
";

#[test]
fn callers_hear_back_and_their_replies_thread_onto_the_ticket() {
    let port = free_port();
    let setup = Setup::new().config(&config(port));
    let sink = Sink::start(port, &setup.dir.path().join("sent"));
    let d = start(&setup);

    deliver(&setup, "1.alice", CALLER_MAIL);
    let ack = sink.wait_for(1).remove(0);
    let id = tag(&ack.subject);
    assert!(ack.subject.contains("Printer on fire"), "{ack:?}");
    assert!(ack.to.contains("alice@example.org"), "{ack:?}");
    assert_eq!(ack.in_reply_to, "<first.alice@example.org>", "{ack:?}");
    assert_eq!(ack.references, "<first.alice@example.org>", "{ack:?}");
    assert_eq!(ack.auto_submitted, "auto-replied", "{ack:?}");
    assert!(ack.message_id.starts_with("itsmd."), "{ack:?}");
    assert!(ack.body.contains(&id), "{ack:?}");

    // Alice answers the acknowledgement from her mail client.
    let reply = format!(
        "From: Alice Caller <alice@example.org>\nTo: desk@example.com\nSubject: Re: {}\nMessage-ID: <second.alice@example.org>\nIn-Reply-To: <{}>\nReferences: <first.alice@example.org> <{}>\nContent-Type: text/plain\n\nIt is the one by the window.\n",
        ack.subject, ack.message_id, ack.message_id
    );
    deliver(&setup, "2.alice", &reply);
    wait_until("the reply is a comment on the same ticket", || {
        comments(&d, &id)
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains("by the window"))
    });
    assert_eq!(tickets(&d).len(), 1, "the reply opened nothing new");
    // Her own reply is not echoed back to her: a mail about it would be an outbox row of the
    // comment's commit, and a row leaves the outbox only after the sink took the mail.
    wait_until("the outbox is empty", || {
        call(&d, reqwest::Method::GET, "/api/v1/admin/outbox", None).1["rows"]
            .as_array()
            .is_some_and(|r| r.is_empty())
    });
    assert_eq!(sink.received().len(), 1);

    // An agent's public comment goes to her, threaded on her last mail; an internal one not.
    let path = format!("/api/v1/tickets/{id}/comments");
    let internal = json!({"body": "ops only", "visibility": "internal"});
    assert_eq!(
        call(&d, reqwest::Method::POST, &path, Some(internal)).0,
        201
    );
    let public = json!({"body": "A technician is on the way.", "visibility": "public"});
    assert_eq!(call(&d, reqwest::Method::POST, &path, Some(public)).0, 201);
    let got = sink.wait_for(2);
    let comment = &got[1];
    assert_eq!(tag(&comment.subject), id);
    assert!(
        comment.body.contains("technician is on the way"),
        "{comment:?}"
    );
    assert!(!comment.body.contains("ops only"), "{comment:?}");
    assert_eq!(comment.in_reply_to, "<second.alice@example.org>");
    assert!(
        comment
            .references
            .contains(&format!("<{}>", ack.message_id))
            && comment.references.starts_with("<first.alice@example.org>"),
        "{comment:?}"
    );
    assert_eq!(comment.auto_submitted, "auto-generated");

    // Someone else answering with the tag but without the token opens a new ticket linked
    // to it, and the history says why; with the token (a colleague Alice forwarded it to)
    // the mail comments on it.
    let (_, token) = tag_and_token(&ack.subject);
    let forged = format!(
        "From: Mallory <mallory@evil.example>\nTo: desk@example.com\nSubject: Re: [{id}] reopen\nMessage-ID: <forged@evil.example>\nContent-Type: text/plain\n\nPlease send the printer to me.\n"
    );
    deliver(&setup, "3.mallory", &forged);
    wait_until("the forged reply opens a ticket of its own", || {
        tickets(&d).len() == 2
    });
    // Mallory's own new ticket is acknowledged to him, not to Alice.
    let got = sink.wait_for(3);
    assert!(got[2].to.contains("mallory@evil.example"), "{:?}", got[2]);
    assert_ne!(tag(&got[2].subject), id);
    let new = tickets(&d)
        .into_iter()
        .find(|t| t["id"] != id.as_str())
        .unwrap();
    assert!(
        new["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "follow_up_of" && l["ticket"] == id.as_str()),
        "{new}"
    );
    let new_id = new["id"].as_str().unwrap();
    assert!(
        comments(&d, new_id)
            .iter()
            .any(|c| c["body"].as_str().unwrap().contains("no valid reply token")),
        "the new ticket says why"
    );
    assert!(
        !comments(&d, &id)
            .iter()
            .any(|c| c["body"].as_str().unwrap().contains("send the printer")),
        "nothing landed on the named ticket"
    );
    let colleague = format!(
        "From: bob@example.org\nTo: desk@example.com\nSubject: Re: [{id} #{token}] x\nMessage-ID: <bob.1@example.org>\nContent-Type: text/plain\n\nBob here, same printer.\n"
    );
    deliver(&setup, "4.bob", &colleague);
    wait_until("the reply with the token lands on the ticket", || {
        comments(&d, &id)
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains("Bob here"))
    });

    // Fulfilment (a mail opens a service request) tells her how to reopen it.
    let path = format!("/api/v1/tickets/{id}/transitions");
    for to in ["in_progress", "fulfilled"] {
        let body = json!({"to": to, "reason": "replaced"});
        let (status, t) = call(&d, reqwest::Method::POST, &path, Some(body));
        assert_eq!(status, 200, "{t}");
    }
    let got = sink.wait_for(4);
    let resolved = &got[3];
    assert!(resolved.subject.contains("Resolved"), "{resolved:?}");
    assert!(resolved.body.contains("reply to this mail"), "{resolved:?}");
    assert_eq!(resolved.in_reply_to, "<bob.1@example.org>", "{resolved:?}");
    assert!(
        resolved
            .references
            .contains(&format!("<{}>", comment.message_id)),
        "{resolved:?}"
    );

    // Closure: a reply would now open a follow-up.
    let body = json!({"to": "closed", "reason": "done"});
    let (status, t) = call(&d, reqwest::Method::POST, &path, Some(body));
    assert_eq!(status, 200, "{t}");
    let got = sink.wait_for(5);
    assert!(got[4].subject.contains("Closed"), "{:?}", got[4]);
    assert!(got[4].body.contains("follows up"), "{:?}", got[4]);

    // Every mail went through the outbox and left it.
    wait_until("the outbox is empty", || {
        call(&d, reqwest::Method::GET, "/api/v1/admin/outbox", None).1["rows"]
            .as_array()
            .is_some_and(|r| r.is_empty())
    });
}

#[test]
fn mail_waits_in_the_outbox_while_the_smtp_server_is_down() {
    let port = free_port();
    // An acknowledgement whose template checks at load (the sample takes no branch) and
    // fails on this caller's ticket (a division by zero): the caller still gets one, in the
    // shipped words.
    let setup = Setup::new();
    let templates = setup.dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("caller_acknowledged.txt"),
        "{% if \"fire\" in ticket.title %}{{ ticket.priority // 0 }}{% endif %}Hello\n",
    )
    .unwrap();
    let config = config(port).replace(
        "[smtp]\n",
        &format!(
            "[smtp]\ntemplates = {:?}\n",
            templates.display().to_string()
        ),
    );
    let setup = setup.config(&config);
    let d = start(&setup);
    deliver(&setup, "1.alice", CALLER_MAIL);

    // Nothing listens: the row stays pending and is retried.
    let mut row = Value::Null;
    wait_until("a failed attempt is recorded", || {
        let v = call(&d, reqwest::Method::GET, "/api/v1/admin/outbox", None).1;
        row = v["rows"].get(0).cloned().unwrap_or(Value::Null);
        row["attempts"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(row["vendor"], "@smtp", "{row}");
    assert_eq!(row["channel"], "mail", "{row}");
    assert!(row["last_error"].as_str().is_some(), "{row}");

    let sink = Sink::start(port, &setup.dir.path().join("sent"));
    let got = sink.wait_for(1);
    assert!(
        got[0].body.contains("thank you for your message"),
        "the shipped words: {}",
        got[0].body
    );
    let expected = format!("itsmd.{}.", row["id"]);
    assert!(
        got[0].message_id.starts_with(&expected),
        "the Message-ID comes from the row: {:?} vs {expected}",
        got[0].message_id
    );
    wait_until("the row is delivered", || {
        call(&d, reqwest::Method::GET, "/api/v1/admin/outbox", None).1["rows"]
            .as_array()
            .is_some_and(|r| r.is_empty())
    });
    // The row is gone: nothing can send it again.
    assert_eq!(sink.received().len(), 1, "sent once");
}

#[test]
fn check_names_bad_mail_settings() {
    let setup = Setup::new().config(
        "[smtp]\nhost = \"127.0.0.1\"\nfrom = \"desk@example.com\"\ntls = \"ssl\"\nhots = 1\n",
    );
    let config = setup.config.as_ref().unwrap();
    let out = Command::new(crate::support::BIN)
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("hots") && text.contains("ssl"), "{text}");

    let setup = Setup::new().config(
        "[smtp]\nhost = \"127.0.0.1\"\nfrom = \"desk@example.com\"\nusername = \"desk\"\npassword_file = \"/nonexistent/smtp-pass\"\n",
    );
    let out = Command::new(crate::support::BIN)
        .arg("check")
        .arg("--config")
        .arg(setup.config.as_ref().unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("/nonexistent/smtp-pass"), "{text}");
}

/// A relay the egress policy refuses (loopback, not allowed) is said at start, not first by
/// a dead-lettered mail; the daemon runs.
#[test]
fn a_refused_relay_is_warned_of_at_start() {
    // `[egress]` as shipped (the test setup allows loopback only when a config is silent).
    let setup = Setup::new().config(
        "[egress]\nallow = []\n[smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom = \"desk@example.com\"\n",
    );
    let d = setup.start();
    let warning = d.wait_for_warning("A configured destination is refused");
    let problem = warning["problem"].as_str().unwrap();
    assert!(
        problem.starts_with("smtp.host: `127.0.0.1` resolves to 127.0.0.1, a loopback address"),
        "{warning}"
    );
    assert_eq!(d.get_ok("/readyz")["status"], "ready");
}

#[test]
fn staff_hear_of_p1_tickets_and_assignments_in_text_and_html() {
    let port = free_port();
    let text = config(port).replace(
        "[groups.operations]\n",
        "[groups.network]\nmembers = [\"alice\", \"bob\"]\nlead = \"alice\"\n",
    ) + "[smtp.people]\nalice = \"alice@corp.example\"\nbob = \"Bob <bob@corp.example>\"\n";
    let setup = Setup::new().config(&text);
    let sink = Sink::start(port, &setup.dir.path().join("sent"));
    let d = start(&setup);

    let (status, t) = call(
        &d,
        reqwest::Method::POST,
        "/api/v1/tickets",
        Some(
            json!({"kind": "incident", "title": "Core switch <down>", "group": "network", "priority": 1}),
        ),
    );
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    wait_until("the group and its lead hear of the P1", || {
        let got = sink.received();
        let p1: Vec<&Received> = got
            .iter()
            .filter(|m| m.subject.contains("P1 opened"))
            .collect();
        p1.len() == 2
            && p1.iter().any(|m| m.to.contains("alice@corp.example"))
            && p1.iter().any(|m| m.to.contains("bob@corp.example"))
    });
    let before = sink.received().len();
    let (status, t) = call(
        &d,
        reqwest::Method::PATCH,
        &format!("/api/v1/tickets/{id}"),
        Some(json!({"assignee": "bob"})),
    );
    assert_eq!(status, 200, "{t}");
    let got = sink.wait_for(before + 1);
    let assigned = got
        .iter()
        .find(|m| m.subject.contains("Assigned to you"))
        .expect("an assignment mail");
    assert!(assigned.to.contains("bob@corp.example"), "{assigned:?}");
    assert!(
        assigned.subject.starts_with(&format!("[{id}]")),
        "{assigned:?}"
    );
    assert!(assigned.body.contains("Core switch <down>"), "{assigned:?}");
    assert_eq!(assigned.auto_submitted, "auto-generated");
    assert!(
        assigned.html.contains("Core switch &lt;down&gt;"),
        "{assigned:?}"
    );
}

#[test]
fn a_refused_mail_is_dead_at_once_and_replays_with_its_message_id() {
    let port = free_port();
    let setup = Setup::new().config(&config(port));
    let sent = setup.dir.path().join("sent");
    let flag = setup.dir.path().join("sent.reject");
    std::fs::write(&flag, "").unwrap();
    let sink = Sink::start(port, &sent);
    let d = start(&setup);
    deliver(&setup, "1.alice", CALLER_MAIL);

    let mut row = Value::Null;
    wait_until("the refused mail is a dead letter", || {
        let v = call(
            &d,
            reqwest::Method::GET,
            "/api/v1/admin/outbox?dead=true",
            None,
        )
        .1;
        row = v["rows"].get(0).cloned().unwrap_or(Value::Null);
        !row.is_null()
    });
    assert_eq!(row["attempts"], 1, "5xx is not retried: {row}");
    assert!(row["last_error"].as_str().unwrap().contains("554"), "{row}");

    std::fs::remove_file(&flag).unwrap();
    let out = Command::new(crate::support::BIN)
        .args(["outbox", "replay", "--vendor", "@smtp", "--server"])
        .arg(d.url(""))
        .args(["--token", ADMIN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sink.wait_for(1);
    assert!(
        got[0]
            .message_id
            .starts_with(&format!("itsmd.{}.", row["id"])),
        "{:?}",
        got[0]
    );
}
