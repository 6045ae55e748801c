//! Mail intake end to end: real MIME messages delivered into a temp Maildir of the real
//! daemon, both the way delivery agents do it (write in tmp/, rename into new/) and by
//! writing straight into new/; tickets, threading, loop protection and quarantine are read
//! back over HTTP and from the Maildir; a crash between commit and the move to cur/ is a real
//! abort of the daemon at that point.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Daemon, Setup};

const CONFIG: &str = r#"
[groups.triage]
[groups.operations]
[mail]
settle = "300ms"
rescan_every = "1s"
max_message_bytes = 8192
max_attachment_bytes = 64
"#;

fn eml(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A Maildir in the test's temp dir that does not exist yet: the daemon creates it.
fn maildir(setup: &Setup) -> PathBuf {
    setup.dir.path().join("Maildir")
}

fn start(setup: &Setup, env: &[(&str, &str)]) -> Daemon {
    let dir = maildir(setup);
    setup.start_with(&[OsStr::new("--maildir"), dir.as_os_str()], env)
}

/// As a delivery agent does: write in tmp/, then rename into new/.
fn deliver(root: &Path, name: &str, bytes: &[u8]) {
    let tmp = root.join("tmp").join(name);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, root.join("new").join(name)).unwrap();
}

/// Straight into new/, in two writes with a pause between them: a reader that did not wait
/// for the file to settle would take half a message.
fn write_directly(root: &Path, name: &str, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::File::create(root.join("new").join(name)).unwrap();
    let half = bytes.len() / 2;
    f.write_all(&bytes[..half]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    f.write_all(&bytes[half..]).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tickets(d: &Daemon) -> Vec<Value> {
    d.get_ok("/api/v1/tickets?limit=1000")["tickets"]
        .as_array()
        .unwrap()
        .clone()
}

fn by_title(d: &Daemon, title: &str) -> Value {
    tickets(d)
        .into_iter()
        .find(|t| t["title"] == title)
        .unwrap_or_else(|| panic!("no ticket titled {title:?}: {:?}", tickets(d)))
}

fn comments(d: &Daemon, id: &Value) -> Vec<Value> {
    let id = id.as_str().unwrap();
    d.get_ok(&format!("/api/v1/tickets/{id}/comments"))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn real_mime_mail_opens_tickets_and_broken_input_is_quarantined() {
    let setup = Setup::new().config(CONFIG);
    let d = start(&setup, &[]);
    let root = maildir(&setup);
    for sub in ["new", "cur", "tmp", "quarantine"] {
        assert!(root.join(sub).is_dir(), "{sub}/ created");
    }
    // A delivery still being written in tmp/ is never read.
    std::fs::write(root.join("tmp/0.unfinished"), eml("koi8r.eml")).unwrap();

    deliver(&root, "1.printer", &eml("multipart-qp-latin1.eml"));
    write_directly(&root, "2.vpn", &eml("html-only.eml"));
    deliver(&root, "3.invoice", &eml("attachments.eml"));
    deliver(&root, "4.koi8", &eml("koi8r.eml"));
    write_directly(&root, "5.jp", &eml("iso2022jp.eml"));
    deliver(&root, "6.nomid", &eml("no-message-id.eml"));
    deliver(&root, "7.nomid-again", &eml("no-message-id.eml"));
    deliver(&root, "8.ooo", &eml("autoreply.eml"));
    write_directly(&root, "9.garbage", &eml("garbage.bin"));
    let mut big = eml("no-message-id.eml");
    big.extend(std::iter::repeat_n(b'x', 9000));
    deliver(&root, "10.big", &big);

    wait_until("new/ is empty", || names(&root.join("new")).is_empty());
    assert_eq!(
        names(&root.join("cur")),
        [
            "1.printer:2,S",
            "2.vpn:2,S",
            "3.invoice:2,S",
            "4.koi8:2,S",
            "5.jp:2,S",
            "6.nomid:2,S",
            "7.nomid-again:2,S",
            "8.ooo:2,S"
        ]
    );
    assert_eq!(
        names(&root.join("quarantine")),
        ["10.big", "10.big.reason", "9.garbage", "9.garbage.reason"]
    );
    let reason = std::fs::read_to_string(root.join("quarantine/9.garbage.reason")).unwrap();
    assert!(reason.starts_with("reason: unparseable\n"), "{reason}");
    let reason = std::fs::read_to_string(root.join("quarantine/10.big.reason")).unwrap();
    assert!(reason.contains("reason: oversized\ndetail: 9"), "{reason}");
    assert_eq!(names(&root.join("tmp")), ["0.unfinished"]);

    // Six tickets: the second copy of the mail without Message-ID and the autoreply open none.
    assert_eq!(tickets(&d).len(), 6, "{:#?}", tickets(&d));
    let printer = by_title(&d, "Drucker im 3. Stock defekt – bitte um Hilfe");
    assert!(
        printer["id"].as_str().unwrap().starts_with("REQ-"),
        "a request"
    );
    assert_eq!(
        printer["custom"]["caller"],
        "Jörg Müller <joerg@example.com>"
    );
    assert!(
        printer["description"]
            .as_str()
            .unwrap()
            .contains("druckt nur noch weiße Seiten. Könnt ihr helfen?")
    );
    let vpn = by_title(&d, "VPN outage");
    assert!(
        vpn["id"].as_str().unwrap().starts_with("INC-"),
        "written to incident@: the shipped rule makes it an incident"
    );
    let text = vpn["description"].as_str().unwrap();
    assert!(
        text.contains("Since 08:00 nobody can connect to the VPN & the portal.")
            && !text.contains('<'),
        "HTML-only mail, written in two halves, read whole: {text:?}"
    );
    let invoice = by_title(&d, "Invoice question");
    assert_eq!(
        invoice["description"],
        "The invoice costs 100 € – see attached.\n\nAttachments:\n\
         - report.pdf (application/pdf, 31 bytes)\n\
         - Bildschirmfoto über.png (image/png, 100 bytes)"
    );
    by_title(&d, "Не работает почта");
    by_title(&d, "印刷できません");
    by_title(&d, "Password reset please");
    assert!(
        tickets(&d)
            .iter()
            .all(|t| t["comments"].as_u64().unwrap_or(0) == 0),
        "the autoreply threaded nowhere"
    );

    for (series, value) in [
        (
            r#"itsmd_mails_quarantined_total{reason="unparseable"}"#,
            1.0,
        ),
        (r#"itsmd_mails_quarantined_total{reason="oversized"}"#, 1.0),
        (
            r#"itsmd_mails_suppressed_total{reason="auto_submitted"}"#,
            1.0,
        ),
        (r#"itsmd_mails_processed_total{outcome="opened"}"#, 6.0),
        (r#"itsmd_mails_processed_total{outcome="seen"}"#, 1.0),
        (r#"itsmd_mails_processed_total{outcome="suppressed"}"#, 1.0),
    ] {
        assert_eq!(d.metric(series), value, "{series}");
    }
    assert_eq!(names(&root.join("tmp")), ["0.unfinished"], "still unread");
}

#[test]
fn replies_thread_onto_their_ticket_reopen_it_and_follow_up_a_closed_one() {
    let setup = Setup::new().config(CONFIG);
    let d = start(&setup, &[]);
    let root = maildir(&setup);
    deliver(&root, "1", &eml("html-only.eml"));
    wait_until("the incident is open", || tickets(&d).len() == 1);
    let inc = by_title(&d, "VPN outage")["id"].clone();
    let id = inc.as_str().unwrap().to_string();

    let reply = |n: &str, headers: &str, subject: &str, body: &str| {
        format!(
            "From: Dave Ops <dave@example.com>\nTo: incident@example.com\nSubject: {subject}\n\
             Message-ID: <{n}@example.com>\nDate: Mon, 05 Jan 2026 09:00:00 +0000\n{headers}\n{body}\n"
        )
        .into_bytes()
    };
    deliver(
        &root,
        "2",
        &reply(
            "r2",
            "In-Reply-To: <vpn-1@example.com>\n",
            "Re: VPN outage",
            "Still down.",
        ),
    );
    wait_until("the reply is a comment", || comments(&d, &inc).len() == 1);
    let c = &comments(&d, &inc)[0];
    assert_eq!(c["body"], "Still down.");
    assert_eq!(c["visibility"], "public");
    assert_eq!(
        c["author"],
        json!({"type": "caller", "address": "Dave Ops <dave@example.com>"})
    );

    let (status, body) = d.post(
        &format!("/api/v1/tickets/{id}/transitions"),
        r#"{"to": "resolved", "reason": "VPN concentrator restarted", "resolution": "fixed"}"#,
    );
    assert_eq!(status, 200, "{body}");
    deliver(
        &root,
        "3",
        &reply("r3", "", &format!("Re: [{id}] VPN outage"), "Broken again."),
    );
    wait_until("the incident is reopened", || {
        d.get_ok(&format!("/api/v1/tickets/{id}"))["state"] == "in_progress"
    });
    let history = d.get_ok(&format!("/api/v1/tickets/{id}/history"));
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "caller replied by mail"),
        "{history:#}"
    );

    for (to, extra) in [("resolved", r#", "resolution": "fixed""#), ("closed", "")] {
        let (status, body) = d.post(
            &format!("/api/v1/tickets/{id}/transitions"),
            &format!(r#"{{"to": "{to}", "reason": "done"{extra}}}"#),
        );
        assert_eq!(status, 200, "{body}");
    }
    deliver(
        &root,
        "4",
        &reply(
            "r4",
            "References: <vpn-1@example.com> <r3@example.com>\n",
            "Re: VPN outage",
            "Once more.",
        ),
    );
    wait_until("a follow-up is open", || tickets(&d).len() == 2);
    let follow = tickets(&d).into_iter().find(|t| t["id"] != inc).unwrap();
    assert_eq!(
        follow["links"],
        json!([{"rel": "follow_up_of", "ticket": id}])
    );
    assert_eq!(follow["state"], "new");
    let old = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(old["state"], "closed");
    assert_eq!(
        old["links"],
        json!([{"rel": "followed_up_by", "ticket": follow["id"]}])
    );
}

#[test]
fn a_crash_between_commit_and_move_creates_no_duplicate() {
    let setup = Setup::new().config(CONFIG);
    let root = maildir(&setup);
    let d = start(&setup, &[("ITSMD_FAILPOINT", "mail-after-commit")]);
    deliver(&root, "1.printer", &eml("multipart-qp-latin1.eml"));
    let status = d.wait();
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "aborted at the failpoint: {status:?}"
    );
    assert_eq!(
        names(&root.join("new")),
        ["1.printer"],
        "committed but not moved"
    );
    assert!(names(&root.join("cur")).is_empty());

    let d = start(&setup, &[]);
    wait_until("the mail moved to cur/", || {
        names(&root.join("cur")) == ["1.printer:2,S"]
    });
    assert!(names(&root.join("new")).is_empty());
    assert_eq!(tickets(&d).len(), 1, "{:#?}", tickets(&d));
    // The restart recognised the committed mail instead of processing it again.
    assert_eq!(
        d.metric(r#"itsmd_mails_processed_total{outcome="seen"}"#),
        1.0
    );
    assert_eq!(
        d.metric(r#"itsmd_mails_processed_total{outcome="opened"}"#),
        0.0
    );
}
