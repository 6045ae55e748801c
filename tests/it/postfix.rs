//! Mail end to end through Debian's Postfix: the test's own Postfix instance (a private
//! configuration directory, queue and data directory, `inet_interfaces = loopback-only`, no
//! DNS) delivers `desk@example.com` into the Maildir itsmd's intake watches and
//! `alice@example.org` into a second Maildir, the caller's mailbox. The caller's mail goes in
//! over SMTP, itsmd's acknowledgement comes out through the same Postfix to her mailbox, and
//! her answer to it (In-Reply-To, References, the subject tag with the reply token) goes back
//! through Postfix to the intake and lands on the same ticket.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lettre::Transport;
use lettre::address::Envelope;

use crate::mail_out::{ADMIN, Received, comments, config, tag_and_token, tickets};
use crate::support::{Setup, free_port, wait_until};

const POSTFIX: &str = "/usr/sbin/postfix";

/// A Postfix instance of the test's own, stopped when dropped.
struct Postfix {
    conf: PathBuf,
    root: tempfile::TempDir,
    port: u16,
}

/// The numeric uid and gid of the `postfix` user, which the Debian package creates.
fn postfix_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postfix"])
            .output()
            .expect("id");
        assert!(
            out.status.success(),
            "no postfix user: install Debian's postfix (.ci/run does)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

impl Postfix {
    fn start() -> Postfix {
        assert!(
            Path::new(POSTFIX).exists(),
            "{POSTFIX} is missing: install Debian's postfix (.ci/run does)"
        );
        let root = tempfile::tempdir().expect("tempdir");
        let base = root.path();
        // Postfix's daemons run as the postfix user: they must reach the queue and the
        // mailboxes.
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (uid, gid) = postfix_ids();
        let conf = base.join("conf");
        for dir in ["conf", "queue", "data", "mail", "mail/intake"] {
            std::fs::create_dir_all(base.join(dir)).unwrap();
        }
        let own = |dir: &Path| {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!(
                    "chown {} to postfix: {e} (the test runs Postfix as root, as .ci/run does)",
                    dir.display()
                )
            })
        };
        for dir in ["data", "mail", "mail/intake"] {
            own(&base.join(dir));
        }
        for sub in ["new", "cur", "tmp"] {
            let dir = base.join("mail/intake").join(sub);
            std::fs::create_dir_all(&dir).unwrap();
            own(&dir);
        }
        let port = free_port();
        // The package's master.cf, without chroot (the instance's queue has none of the files
        // a chroot needs) and with smtpd on the test's loopback port instead of port 25.
        let shipped = std::fs::read_to_string("/etc/postfix/master.cf").expect("master.cf");
        let mut master = String::new();
        for line in shipped.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let service = !line.starts_with([' ', '\t', '#']) && f.len() >= 8;
            if service && f[0] == "smtp" && f[1] == "inet" {
                continue;
            }
            if service && f[4] == "y" {
                let mut f = f.clone();
                f[4] = "n";
                master.push_str(&f.join(" "));
            } else {
                master.push_str(line);
            }
            master.push('\n');
        }
        master.push_str(&format!("127.0.0.1:{port} inet n - n - - smtpd\n"));
        std::fs::write(conf.join("master.cf"), master).unwrap();
        let b = base.display();
        let main = format!(
            "compatibility_level = 3.6
queue_directory = {b}/queue
data_directory = {b}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {b}/maillog
maillog_file_prefixes = {b}
myhostname = mx.example.com
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
alias_maps =
alias_database =
virtual_mailbox_domains = example.com, example.org
virtual_mailbox_base = {b}/mail
virtual_mailbox_maps = texthash:{b}/conf/mailboxes
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
"
        );
        std::fs::write(conf.join("main.cf"), main).unwrap();
        std::fs::write(
            conf.join("mailboxes"),
            "desk@example.com intake/\nalice@example.org caller/\n",
        )
        .unwrap();
        let pf = Postfix { conf, root, port };
        let out = pf.control("start");
        assert!(
            out.status.success(),
            "postfix start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            pf.log()
        );
        wait_until("Postfix listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        pf
    }

    fn control(&self, command: &str) -> std::process::Output {
        Command::new(POSTFIX)
            .arg("-c")
            .arg(&self.conf)
            .arg(command)
            .output()
            .expect("run postfix")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("maillog")).unwrap_or_default()
    }

    fn intake(&self) -> PathBuf {
        self.root.path().join("mail/intake")
    }

    /// The caller's mailbox: what Postfix delivered to alice@example.org, oldest first.
    fn caller_mail(&self) -> Vec<Received> {
        let dir = self.root.path().join("mail/caller/new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        // Maildir names start with the delivery's seconds and a counter within them.
        files.sort_by_key(|p| {
            let meta = std::fs::metadata(p).and_then(|m| m.modified());
            (meta.ok(), p.clone())
        });
        files
            .into_iter()
            .map(|p| Received::parse(&std::fs::read(p).unwrap()))
            .collect()
    }

    fn wait_for_caller_mail(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.caller_mail();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} mail(s) in the caller's mailbox, got {}\n{}",
                got.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Submits a message over SMTP, as a mail client does.
    fn submit(&self, from: &str, to: &str, message: &str) {
        let smtp = lettre::SmtpTransport::builder_dangerous("127.0.0.1")
            .port(self.port)
            .build();
        let envelope = Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()])
            .expect("an envelope");
        smtp.send_raw(&envelope, message.replace('\n', "\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("Postfix refused the mail: {e}\n{}", self.log()));
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid_file = self.root.path().join("queue/pid/master.pid");
        let pid: Option<i32> = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let _ = self.control("stop");
        // Wait for the master to go before its directories are removed; abort if it lingers.
        let running = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim().starts_with('Z'))
        };
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if running(pid) {
                let _ = self.control("abort");
            }
        }
    }
}

#[test]
fn a_mail_answered_through_postfix_threads_back_into_its_ticket() {
    let postfix = Postfix::start();
    let setup = Setup::new().config(&config(postfix.port));
    let intake = postfix.intake();
    let d = setup.start_with(&[OsStr::new("--maildir"), intake.as_os_str()], &[]);

    postfix.submit(
        "alice@example.org",
        "desk@example.com",
        "From: Alice Caller <alice@example.org>
To: Service Desk <desk@example.com>
Subject: Printer on fire
Message-ID: <first.alice@example.org>
Date: Mon, 2 Mar 2026 09:00:00 +0000
Content-Type: text/plain; charset=utf-8

The printer on floor 3 is on fire.
",
    );
    wait_until("the mail opens a ticket", || tickets(&d).len() == 1);

    // itsmd's acknowledgement reached her mailbox through Postfix.
    let ack = postfix.wait_for_caller_mail(1).remove(0);
    let (id, token) = tag_and_token(&ack.subject);
    assert_eq!(tickets(&d)[0]["id"], id.as_str(), "{ack:?}");
    assert!(ack.subject.contains("Printer on fire"), "{ack:?}");
    assert_eq!(ack.in_reply_to, "<first.alice@example.org>", "{ack:?}");
    assert_eq!(ack.auto_submitted, "auto-replied", "{ack:?}");
    assert!(ack.message_id.starts_with("itsmd."), "{ack:?}");
    assert!(
        postfix
            .log()
            .contains("to=<alice@example.org>, relay=virtual"),
        "{}",
        postfix.log()
    );

    // She answers it from her mail client, through Postfix.
    postfix.submit(
        "alice@example.org",
        "desk@example.com",
        &format!(
            "From: Alice Caller <alice@example.org>
To: Service Desk <desk@example.com>
Subject: Re: {}
Message-ID: <second.alice@example.org>
In-Reply-To: <{}>
References: <first.alice@example.org> <{}>
Content-Type: text/plain

It is the one by the window.
",
            ack.subject, ack.message_id, ack.message_id
        ),
    );
    wait_until("her answer is a comment on the same ticket", || {
        comments(&d, &id)
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains("by the window"))
    });
    assert_eq!(tickets(&d).len(), 1, "the answer opened nothing new");
    assert!(token.len() >= 16, "{token}");

    // An agent's public comment goes out threaded on her answer, through Postfix again.
    let path = format!("/api/v1/tickets/{id}/comments");
    let public = serde_json::json!({"body": "A technician is on the way.", "visibility": "public"});
    let (status, body) = d.call_as(ADMIN, reqwest::Method::POST, &path, Some(public));
    assert_eq!(status, 201, "{body}");
    let got = postfix.wait_for_caller_mail(2);
    let comment = got
        .iter()
        .find(|m| m.body.contains("technician is on the way"))
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(tag_and_token(&comment.subject).0, id);
    assert_eq!(
        comment.in_reply_to, "<second.alice@example.org>",
        "{comment:?}"
    );
    assert!(
        comment.references.starts_with("<first.alice@example.org>")
            && comment
                .references
                .contains(&format!("<{}>", ack.message_id)),
        "{comment:?}"
    );
}
