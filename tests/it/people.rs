//! People notifications from rules and operator templates, end to end: a rule's
//! `ticket.notify(group, template, values)` mails every member through the outbox to a real
//! SMTP server (aiosmtpd) in the operator's template; an unknown template fails the rule
//! naming it; a broken template refuses the reload with file:line and the old set stays;
//! `itsmd templates render` previews one; `itsmd rules check` names a literal unknown one; the
//! assignee is mailed an SLA warning, then the breach.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::mail_out::{ADMIN, Received, Sink, call, config};
use crate::support::{BIN, Setup, free_port, wait_until};

const RULE: &str = r#"
fn on_alert(alert, ticket) {
    ticket.group = "network";
    if alert.labels.kind == "disk" {
        ticket.notify("network", "disk_full", #{host: alert.labels.instance});
    }
    if alert.labels.kind == "typo" {
        ticket.add_tag("kept?");
        ticket.notify("network", "disk_ful");
    }
    if alert.labels.kind == "nobody" {
        ticket.notify("carol", "disk_full", "a message");
    }
}
"#;

/// The mail-out test configuration with the `network` group (alice, bob; alice leads),
/// their addresses, no built-in notifications, and `[smtp] templates = DIR`.
fn with_templates(port: u16, dir: &Path) -> String {
    config(port)
        .replace(
            "[groups.operations]\n",
            "[groups.network]\nmembers = [\"alice\", \"bob\"]\nlead = \"alice\"\n",
        )
        .replacen(
            "[smtp.retry]",
            &format!("templates = {:?}\n[smtp.retry]", dir.display().to_string()),
            1,
        )
        + "[smtp.people]\nalice = \"alice@corp.example\"\nbob = \"Bob <bob@corp.example>\"\n[smtp.notify]\nassigned = []\np1_opened = []\n"
        + crate::support::LOOPBACK_EGRESS
}

fn write_templates(dir: &Path, subject: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("disk_full.subject"), subject).unwrap();
    std::fs::write(
        dir.join("disk_full.txt"),
        "Hello {{ name }},\n{{ vars.host }} is full ({{ ticket.title }}, P{{ ticket.priority }}).\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("disk_full.html"),
        "<p>{{ vars.host }}: {{ ticket.title }}</p>\n",
    )
    .unwrap();
}

fn alert(d: &crate::support::Daemon, name: &str, kind: &str) -> Value {
    let body = crate::support::alert(
        "firing",
        "Disk <full>",
        serde_json::json!({"alertname": name, "kind": kind, "instance": "db<1>"}),
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    let (status, v) = call(d, reqwest::Method::POST, "/api/v1/events", Some(body));
    assert_eq!(status, 202, "{v}");
    v
}

fn to(got: &[Received], who: &str, subject_part: &str) -> bool {
    got.iter()
        .any(|m| m.to.contains(who) && m.subject.contains(subject_part))
}

#[test]
fn a_rule_notifies_a_group_with_the_operators_template_and_unknown_names_fail_the_rule() {
    let port = free_port();
    let setup = Setup::new();
    let templates = setup.dir.path().join("templates");
    write_templates(
        &templates,
        "[{{ ticket.id }}] Disk full on {{ vars.host }}\n",
    );
    let setup = setup
        .config(&with_templates(port, &templates))
        .rules(&[("10-notify.rhai", RULE)]);
    let sink = Sink::start(port, &setup.dir.path().join("sent"));
    let d = setup.start();

    let v = alert(&d, "DiskFull", "disk");
    let id = v["ticket"].as_str().unwrap().to_string();
    let got = sink.wait_for(2);
    assert!(
        to(&got, "alice@corp.example", "Disk full on db<1>"),
        "{got:?}"
    );
    assert!(
        to(&got, "bob@corp.example", "Disk full on db<1>"),
        "{got:?}"
    );
    let bob = got.iter().find(|m| m.to.contains("bob")).unwrap();
    assert!(bob.subject.starts_with(&format!("[{id}]")), "{bob:?}");
    assert!(
        bob.body.contains("Hello bob,") && bob.body.contains("db<1> is full (Disk <full>"),
        "{bob:?}"
    );
    assert!(
        bob.html.contains("db&lt;1&gt;: Disk &lt;full&gt;"),
        "{bob:?}"
    );
    assert_eq!(bob.auto_submitted, "auto-generated");
    let rows = call(
        &d,
        reqwest::Method::GET,
        "/api/v1/admin/outbox?dead=true",
        None,
    )
    .1;
    assert_eq!(rows["rows"].as_array().map(Vec::len), Some(0), "{rows}");

    // A template nobody wrote: the rule fails naming it, nothing is sent, the ticket goes
    // to triage without the rule's other decisions.
    let v = alert(&d, "Typo", "typo");
    let typo = v["ticket"].as_str().unwrap().to_string();
    let t = call(
        &d,
        reqwest::Method::GET,
        &format!("/api/v1/tickets/{typo}"),
        None,
    )
    .1;
    assert_eq!(t["group"], "triage", "{t}");
    assert!(!t["tags"].to_string().contains("kept?"), "{t}");
    let history = t["history"].to_string();
    assert!(
        history.contains("template `disk_ful` is not known"),
        "{history}"
    );
    // A person nobody configured fails the same way.
    let v = alert(&d, "Nobody", "nobody");
    let t = call(
        &d,
        reqwest::Method::GET,
        &format!("/api/v1/tickets/{}", v["ticket"].as_str().unwrap()),
        None,
    )
    .1;
    assert!(
        t["history"].to_string().contains("`carol` is neither"),
        "{t}"
    );
    assert_eq!(sink.received().len(), 2, "nothing more was sent");

    // The preview, as the operator runs it.
    let out = Command::new(BIN)
        .args(["templates", "render", "disk_full", &id, "--server"])
        .arg(d.url(""))
        .args(["--token", ADMIN])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("Subject: [{id}] Disk full on")),
        "{text}"
    );
    assert!(
        text.contains("Hello (preview),") && text.contains("<p>"),
        "{text}"
    );
    // The shipped digest and batch templates preview too, listing the ticket's notice.
    for name in ["digest", "batch"] {
        let path = format!("/api/v1/admin/templates/{name}/render?ticket={id}");
        let (status, v) = call(&d, reqwest::Method::GET, &path, None);
        assert_eq!(status, 200, "{name}: {v}");
        assert!(
            v["subject"]
                .as_str()
                .unwrap()
                .starts_with(&format!("[{id}]"))
                && v["text"]
                    .as_str()
                    .unwrap()
                    .contains("A preview of template"),
            "{name}: {v}"
        );
    }
    // A caller mail previews as it is sent: plain text, no HTML part.
    let path = format!("/api/v1/admin/templates/caller_acknowledged/render?ticket={id}");
    let (status, v) = call(&d, reqwest::Method::GET, &path, None);
    assert_eq!(status, 200, "{v}");
    assert!(
        v["html"].is_null() && !v["text"].as_str().unwrap().is_empty(),
        "{v}"
    );
    let (status, v) = call(
        &d,
        reqwest::Method::GET,
        &format!("/api/v1/admin/templates/nope/render?ticket={id}"),
        None,
    );
    assert_eq!(status, 404, "{v}");
    assert!(
        v.to_string().contains("disk_full"),
        "the known ones are listed: {v}"
    );
}

#[test]
fn a_broken_template_refuses_the_reload_with_its_line_and_the_old_set_stays() {
    let port = free_port();
    let setup = Setup::new();
    let templates = setup.dir.path().join("templates");
    write_templates(&templates, "[{{ ticket.id }}] Old subject\n");
    let setup = setup
        .config(&with_templates(port, &templates))
        .rules(&[("10-notify.rhai", RULE)]);
    let sink = Sink::start(port, &setup.dir.path().join("sent"));
    let d = setup.start();

    std::fs::write(
        templates.join("disk_full.subject"),
        "[{{ ticket.id }}] New subject\n{% if %}\n",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let line = d.wait_for_log(|l| {
        l["problem"]
            .as_str()
            .is_some_and(|p| p.contains("disk_full.subject:2:"))
    });
    assert!(
        line["problem"].as_str().unwrap().contains("syntax error"),
        "{line}"
    );
    alert(&d, "DiskFull", "disk");
    let got = sink.wait_for(2);
    assert!(
        got.iter().all(|m| m.subject.contains("Old subject")),
        "{got:?}"
    );

    // Fixed, the reload takes it.
    std::fs::write(
        templates.join("disk_full.subject"),
        "[{{ ticket.id }}] New subject\n",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for_log(|l| l["message"] == "Reloaded.");
    alert(&d, "DiskFull2", "disk");
    wait_until("the new subject is used", || {
        sink.received()
            .iter()
            .filter(|m| m.subject.contains("New subject"))
            .count()
            == 2
    });
}

#[test]
fn check_names_a_broken_template_and_rules_check_a_literal_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    write_templates(
        &templates,
        "[{{ ticket.id }}] {{ ticket.title | nosuchfilter }}\n",
    );
    let cfg = dir.path().join("itsmd.toml");
    std::fs::write(&cfg, with_templates(2525, &templates)).unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("10-notify.rhai"), RULE).unwrap();
    let (ok, out) = crate::support::itsmd(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("disk_full.subject:1:") && out.contains("nosuchfilter"),
        "{out}"
    );

    write_templates(&templates, "[{{ ticket.id }}] fine\n");
    let (ok, out) = crate::support::itsmd(&[
        "check",
        "--config",
        cfg.to_str().unwrap(),
        "--rules-dir",
        rules.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("10-notify.rhai:9:") && out.contains("`disk_ful`"),
        "{out}"
    );
}

#[test]
fn the_assignee_hears_of_an_sla_warning_then_of_the_breach() {
    let port = free_port();
    let cfg = config(port).replace(
        "[groups.operations]\n",
        "[groups.network]\nmembers = [\"bob\"]\n[[sla.policies]]\nname = \"fast\"\nkinds = [\"incident\"]\nresolution = \"4s\"\nwarnings = [50]\n",
    ) + "[smtp.people]\nbob = \"Bob <bob@corp.example>\"\n[smtp.notify]\nassigned = []\np1_opened = []\nsla_warning = [\"assignee\"]\nsla_breached = [\"assignee\"]\n";
    let setup = Setup::new().config(&cfg);
    let sink = Sink::start(port, &setup.dir.path().join("sent"));
    let d = setup.start();
    let body = serde_json::json!({"kind": "incident", "title": "Slow <VPN>", "group": "network", "assignee": "bob"});
    let (status, t) = call(&d, reqwest::Method::POST, "/api/v1/tickets", Some(body));
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap();
    let got = sink.wait_for(2);
    assert!(
        got.iter().all(|m| m.to.contains("bob@corp.example")),
        "{got:?}"
    );
    assert_eq!(
        got[0].subject,
        format!("[{id}] SLA warning (resolution): Slow <VPN>"),
        "{got:?}"
    );
    assert!(got[0].body.contains("is near"), "{got:?}");
    // The breach escalates too: one digest of both.
    assert!(
        got[1]
            .subject
            .starts_with(&format!("[{id}] SLA breached (resolution): Slow <VPN>")),
        "{got:?}"
    );
}
