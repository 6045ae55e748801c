//! Hostile conditions and input (issue #21): a store left behind by a start on a full disk,
//! dumps that are cut off or tampered with, browser-origin requests, oversized fields.

use std::process::Command;

use serde_json::json;

use crate::support::{BIN, Setup, alert};

/// Runs the `itsmd` binary; returns success, stdout and stderr.
fn itsmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run itsmd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_store_left_with_an_empty_generating_snapshot_opens_and_keeps_its_data() {
    let setup = Setup::new();
    let d = setup.start();
    for i in 0..5 {
        let (status, body) = d.post(
            "/api/v1/events",
            &alert("firing", &format!("disk {i}"), json!({"i": i.to_string()})),
        );
        assert_eq!(status, 202, "{body}");
    }
    let before = d.get_ok("/api/v1/tickets?limit=100");
    assert!(d.terminate().success());

    // What sled 0.34.7 leaves when a snapshot write hits a full disk: an empty
    // `snap.<LSN>.generating`, named so that it sorts after the last complete snapshot.
    let data = setup.data_dir();
    let last = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("snap.") && !n.ends_with(".generating"))
        .max()
        .unwrap_or_else(|| "snap.0000000000000000".into());
    let leftover = data.join(format!("{last}.generating"));
    std::fs::write(&leftover, b"").unwrap();

    let d = setup.start();
    assert_eq!(d.get_ok("/api/v1/tickets?limit=100"), before);
    let warning = d.wait_for_log(|v| {
        v["fields"]["message"]
            .as_str()
            .or(v["message"].as_str())
            .is_some_and(|m| m.starts_with("Removed an incomplete snapshot"))
    });
    assert!(warning.to_string().contains(".generating"), "{warning}");
    assert!(!leftover.exists());
    assert!(d.terminate().success());

    // Offline verification: counts per tree, every record decodes.
    let (ok, out, err) = itsmd(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("tickets "), "{out}");
    assert!(out.contains("OK: "), "{out}");
}

#[test]
fn a_store_that_cannot_be_opened_says_what_to_do() {
    let setup = Setup::new();
    let data = setup.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    // A damaged store: sled's config file is garbage.
    std::fs::write(data.join("conf"), b"\x00\x01garbage").unwrap();
    std::fs::write(data.join("db"), b"not a sled log").unwrap();
    let (ok, out, err) = itsmd(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.contains("itsmd check --data-dir"), "{err}");
    assert!(err.contains("itsmd import"), "{err}");
}

const ADMIN: &str = "admin-token-0123456789";

/// A daemon with an admin token and a few tickets, exported with `itsmd export`: the setup,
/// the dump's path and its text.
fn exported() -> (Setup, std::path::PathBuf, String) {
    let setup = Setup::new().config(&format!(
        "[[auth.tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"
    ));
    let d = setup.start();
    for i in 0..3 {
        let r = d
            .http
            .post(d.url("/api/v1/events"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(alert(
                "firing",
                &format!("dump {i}"),
                json!({"i": i.to_string()}),
            ))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    let dump = setup.dir.path().join("dump.jsonl");
    let (ok, err) = d.export_to(&dump, ADMIN);
    assert!(ok, "{err}");
    assert!(err.contains("checked"), "{err}");
    assert!(d.terminate().success());
    let text = std::fs::read_to_string(&dump).unwrap();
    (setup, dump, text)
}

fn import_into(file: &std::path::Path, dir: &std::path::Path) -> (bool, String) {
    let (ok, _, err) = itsmd(&[
        "import",
        file.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    (ok, err)
}

#[test]
fn an_export_is_private_has_a_header_and_a_checksummed_trailer() {
    use std::os::unix::fs::PermissionsExt;
    let (_setup, dump, text) = exported();
    let mode = std::fs::metadata(&dump).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let lines: Vec<&str> = text.lines().collect();
    let header: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["itsmd_export"], 2);
    assert_eq!(header["entries"], lines.len() as u64 - 2);
    assert_eq!(header["trees"]["tickets"], 3);
    let trailer: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(trailer["itsmd_export_end"]["entries"], header["entries"]);
    assert_eq!(
        trailer["itsmd_export_end"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

#[test]
fn import_refuses_incomplete_or_invalid_dumps_naming_the_line_and_writes_nothing() {
    let (setup, dump, text) = exported();
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    let bad = setup.dir.path().join("bad.jsonl");
    let target = setup.dir.path().join("restored");
    let ticket_line = lines
        .iter()
        .position(|l| l.starts_with("{\"tree\":\"tickets\""))
        .unwrap();
    // A ticket whose value is valid JSON but not a ticket.
    let mut not_a_ticket: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let cut = not_a_ticket[ticket_line].find("\"value\":").unwrap();
    not_a_ticket[ticket_line] = format!("{}\"value\":{{\"id\":42}}}}", &lines[ticket_line][..cut]);
    let cases = [
        (
            lines[..n - 1].join("\n") + "\n",
            format!("line {}: the dump ends without its trailer", n - 1),
        ),
        (
            lines[0].to_string() + "\n",
            "line 1: the dump ends without its trailer".to_string(),
        ),
        (
            not_a_ticket.join("\n") + "\n",
            format!(
                "line {}: stored value in tree tickets is unreadable",
                ticket_line + 1
            ),
        ),
        (
            text.replacen("dump 1", "dump X", 1),
            format!("line {n}: checksum mismatch"),
        ),
    ];
    for (content, expected) in cases {
        std::fs::write(&bad, content).unwrap();
        let (ok, err) = import_into(&bad, &target);
        assert!(!ok && err.contains(&expected), "{expected}: {err}");
        assert!(
            !target.exists(),
            "a refused import created {}",
            target.display()
        );
    }
    // A .partial file (a cut-off export) is refused whatever it holds.
    let partial = setup.dir.path().join("dump.jsonl.partial");
    std::fs::copy(&dump, &partial).unwrap();
    let (ok, err) = import_into(&partial, &target);
    assert!(!ok && err.contains("did not finish"), "{err}");

    // The whole dump imports, and the daemon serves what was exported.
    let (ok, err) = import_into(&dump, &target);
    assert!(ok, "{err}");
    let (ok, out, err) = itsmd(&["check", "--data-dir", target.to_str().unwrap()]);
    assert!(ok && out.contains("tickets "), "{out}{err}");
}

#[test]
fn browser_origin_requests_foreign_hosts_and_non_json_bodies_are_refused() {
    let setup = Setup::new();
    let d = setup.start();
    let body = alert("firing", "csrf", json!({"i": "1"}));
    let send = |req: reqwest::blocking::RequestBuilder| {
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().unwrap_or_default())
    };
    // A page on another site posting to the (open, loopback) API.
    let (status, err) = send(
        d.http
            .post(d.url("/api/v1/events"))
            .header("origin", "http://evil.example")
            .header("content-type", "application/json")
            .body(body.clone()),
    );
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["code"], "forbidden_origin");
    // DNS rebinding: the page's own name resolved to 127.0.0.1.
    let (status, err) = send(
        d.http
            .get(d.url("/api/v1/admin/export"))
            .header("host", "evil.example"),
    );
    assert_eq!(status, 421, "{err}");
    assert_eq!(err["error"]["code"], "misdirected_host");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.allowed_hosts"),
        "{err}"
    );
    // What an HTML form or a "simple" fetch can send.
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, err) = send(
            d.http
                .post(d.url("/api/v1/events"))
                .header("content-type", ct)
                .body(body.clone()),
        );
        assert_eq!(status, 415, "{ct}: {err}");
        assert_eq!(err["error"]["code"], "unsupported_media_type");
    }
    assert_eq!(
        d.get_ok("/api/v1/tickets")["tickets"],
        json!([]),
        "nothing got in"
    );

    // Normal requests still work: JSON with or without charset, a same-origin page, no
    // Content-Type at all (sloppy senders), the loopback names, probes by any name.
    for (ct, origin) in [
        (Some("application/json"), None),
        (
            Some("application/json; charset=utf-8"),
            Some(format!("http://{}", d.addr)),
        ),
        (None, None),
    ] {
        let mut req = d.http.post(d.url("/api/v1/events")).body(body.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let (status, err) = send(req);
        assert_eq!(status, 202, "{ct:?}: {err}");
    }
    let port = d.addr.port();
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let (status, err) = send(d.http.get(d.url("/api/v1/tickets")).header("host", host));
        assert_eq!(status, 200, "{err}");
    }
    let (status, _) = send(d.http.get(d.url("/readyz")).header("host", "node7.example"));
    assert_eq!(status, 200);
}

#[test]
fn allowed_hosts_is_configurable_and_checked() {
    let setup = Setup::new().config("[server]\nallowed_hosts = [\"itsmd.example.org\"]\n");
    let d = setup.start();
    let r = d
        .http
        .get(d.url("/api/v1/tickets"))
        .header("host", "itsmd.example.org:443")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(d.get("/api/v1/tickets").0, 421, "only the configured names");
    drop(d);
    let bad = Setup::new().config("[server]\nallowed_hosts = [\"http://x.example/\"]\n");
    let (ok, _, err) = itsmd(&[
        "check",
        "--config",
        bad.config.as_ref().unwrap().to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("server.allowed_hosts"), "{err}");
}

#[test]
fn oversized_labels_descriptions_and_comments_are_refused_naming_the_field() {
    let setup = Setup::new().config("[limits]\ncomment_bytes = 1000\n");
    let d = setup.start();
    let big = "x".repeat(1_000_000);
    let (status, err) = d.post(
        "/api/v1/events",
        &alert("firing", "big", json!({"host": big, "team": "dba"})),
    );
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["error"]["code"], "field_too_large");
    assert_eq!(err["error"]["details"]["field"], "labels.host");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("limits.label_bytes = 16384"), "{message}");

    // Prometheus' format, several alerts: the path names the alert.
    let prom = json!([
        {"labels": {"alertname": "A"}},
        {"labels": {"alertname": "B"}, "annotations": {"runbook": "y".repeat(70_000)}},
    ]);
    let (status, err) = d.post("/api/v2/alerts", &prom.to_string());
    assert_eq!(status, 413, "{err}");
    assert_eq!(
        err["error"]["details"]["field"],
        "alerts[1].annotations.runbook"
    );
    assert_eq!(
        d.get_ok("/api/v1/tickets")["tickets"],
        json!([]),
        "nothing got in"
    );

    // Tickets: the description and, with a configured limit, the comment body.
    let ticket = json!({"kind": "incident", "title": "t", "description": "d".repeat(70_000)});
    let (status, err) = d.post("/api/v1/tickets", &ticket.to_string());
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["error"]["details"]["field"], "description");
    let (status, t) = d.post(
        "/api/v1/tickets",
        &json!({"kind": "incident", "title": "t", "description": "fine"}).to_string(),
    );
    assert_eq!(status, 201, "{t}");
    let path = format!("/api/v1/tickets/{}/comments", t["id"].as_str().unwrap());
    let (status, err) = d.post(&path, &json!({"body": "c".repeat(1001)}).to_string());
    assert_eq!(status, 413, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`body` is 1001 bytes; at most limits.comment_bytes = 1000"),
        "{err}"
    );
    let (status, err) = d.post(&path, &json!({"body": "c".repeat(1000)}).to_string());
    assert_eq!(status, 201, "{err}");
    let path = format!("/api/v1/tickets/{}/transitions", t["id"].as_str().unwrap());
    let step = json!({"to": "in_progress", "reason": "r".repeat(70_000)});
    let (status, err) = d.post(&path, &step.to_string());
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["error"]["details"]["field"], "reason");
}

#[test]
fn readiness_turns_503_with_the_reason_while_commits_fail_and_recovers() {
    let setup = Setup::new();
    let fail = setup.dir.path().join("disk-full");
    let failpoint = format!("store-fail-while={}", fail.display());
    let d = setup.start_with(&[], &[("ITSMD_FAILPOINT", &failpoint)]);
    assert_eq!(d.get("/readyz").0, 200);

    std::fs::write(&fail, b"").unwrap();
    let (status, err) = d.post("/api/v1/events", &alert("firing", "a", json!({"i": "1"})));
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"]["code"], "store_unavailable");
    let (status, body) = d.get("/readyz");
    assert_eq!(status, 503, "{body}");
    let why = body["error"]["message"].as_str().unwrap();
    assert!(why.starts_with("the last commit failed"), "{why}");
    assert!(why.contains("flush") || why.contains("apply"), "{why}");

    // Writes work again: the next commit succeeds and the daemon is ready.
    std::fs::remove_file(&fail).unwrap();
    let (status, err) = d.post("/api/v1/events", &alert("firing", "a", json!({"i": "1"})));
    assert_eq!(status, 202, "{err}");
    assert_eq!(d.get("/readyz").0, 200);
}

#[test]
fn readiness_turns_503_while_a_batch_stalls() {
    let rule = "fn on_alert(alert, ticket) { let t = timestamp(); while t.elapsed < 2.5 { } }";
    let setup = Setup::new().rules(&[("10-slow.rhai", rule)]).config(
        "[engine]\nstall_after_secs = 1\n\
         [rules]\ntime_budget_ms = 10000\nmax_operations = 10000000000\n",
    );
    let d = std::sync::Arc::new(setup.start());
    let first = {
        let d = d.clone();
        std::thread::spawn(move || d.post("/api/v1/events", &alert("firing", "x", json!({}))).0)
    };
    std::thread::sleep(std::time::Duration::from_millis(1700));
    let (status, body) = d.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("engine.stall_after_secs = 1"),
        "{body}"
    );
    assert_eq!(first.join().unwrap(), 202);
    assert_eq!(d.get("/readyz").0, 200);
}

#[test]
fn a_shared_token_secret_and_a_toml_error_are_reported_without_the_secret() {
    let shared = Setup::new().config(
        "[[auth.tokens]]\nname = \"prom\"\nrole = \"ingest\"\ntoken = \"shared-secret-0123456789\"\n\
         [[auth.tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"shared-secret-0123456789\"\n",
    );
    let path = shared.config.as_ref().unwrap().to_str().unwrap();
    let (ok, out, err) = itsmd(&["check", "--config", path]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("tokens `prom` and `root` have the same secret"),
        "{err}"
    );
    assert!(!err.contains("shared-secret"), "{err}");

    let broken = Setup::new().config(
        "[[auth.tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"s3cr3t-0123456789\" x\n",
    );
    let path = broken.config.as_ref().unwrap().to_str().unwrap();
    let (ok, out, err) = itsmd(&["check", "--config", path]);
    assert!(!ok, "{out}");
    assert!(err.contains("line 4, column"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
}

#[test]
fn a_message_id_with_terminal_escape_codes_is_escaped_in_the_log() {
    let setup = Setup::new().config(
        "[groups.triage]\n[groups.operations]\n[mail]\nsettle = \"100ms\"\nrescan_every = \"1s\"\n",
    );
    let maildir = setup.dir.path().join("Maildir");
    let d = setup.start_with(
        &[std::ffi::OsStr::new("--maildir"), maildir.as_os_str()],
        &[],
    );
    let mail = "From: Mallory <mallory@example.org>\r\n\
                To: itsm@example.com\r\n\
                Subject: printer on fire\r\n\
                Message-ID: <evil\x1b[2J\x1b]0;pwned\x07@example.org>\r\n\
                Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
                \r\n\
                It is on fire.\r\n";
    std::fs::write(maildir.join("tmp").join("1.eml"), mail).unwrap();
    std::fs::rename(maildir.join("tmp/1.eml"), maildir.join("new/1.eml")).unwrap();
    let line = d.wait_for_log(|v| v["message"] == "Ticket opened for a mail.");
    let id = line["message_id"].as_str().unwrap();
    assert!(!id.chars().any(char::is_control), "{id:?}");
    assert!(id.contains("\\u{1b}[2J"), "{id:?}");
}

#[test]
fn vendor_webhooks_ignore_the_environment_proxy_and_use_a_configured_one() {
    use crate::receiver::Receiver;
    use std::time::Duration;
    let vendor = Receiver::start(vec![]);
    let proxy = Receiver::start(vec![]);
    let proxy_base = proxy.url.trim_end_matches("/hook").to_string();
    // HTTP_PROXY in the daemon's environment: not used.
    let setup = Setup::new().config(&crate::vendors::config(&vendor.url, ""));
    let env = [
        ("HTTP_PROXY", proxy_base.as_str()),
        ("http_proxy", proxy_base.as_str()),
        ("ALL_PROXY", proxy_base.as_str()),
    ];
    let d = setup.start_with(&[], &env);
    crate::vendors::assigned_incident(&d);
    assert_eq!(vendor.wait_for(1, Duration::from_secs(10)).len(), 1);
    assert!(proxy.received().is_empty(), "went through HTTP_PROXY");
    drop(d);

    // A vendor's own `proxy`: used.
    let extra = format!("proxy = \"{proxy_base}\"");
    let setup = Setup::new().config(&crate::vendors::config(&vendor.url, &extra));
    let d = setup.start();
    crate::vendors::assigned_incident(&d);
    let got = proxy.wait_for(1, Duration::from_secs(10));
    assert!(got[0].path.contains("/hook"), "{got:?}");
}

/// Polls the admin outbox listing (`dead` rows or pending ones) until `pred` holds.
fn wait_outbox(
    d: &crate::support::Daemon,
    dead: bool,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let path = format!("/api/v1/admin/outbox?dead={dead}");
    let mut last = serde_json::Value::Null;
    crate::support::wait_until("the outbox to match", || {
        let (status, v) = crate::vendors::call(d, reqwest::Method::GET, &path, None);
        assert_eq!(status, 200, "{v}");
        last = v;
        pred(&last)
    });
    last
}

#[test]
fn egress_to_loopback_or_link_local_is_refused_unless_allowed_and_dead_lettered() {
    use crate::receiver::Receiver;
    use std::time::Duration;
    let vendor = Receiver::start(vec![]);
    // A name (not an address) that resolves to loopback: judged by what it resolves to.
    let by_name = vendor.url.replace("127.0.0.1", "localhost");
    let config = format!(
        "{}\n[egress]\nallow = []\n",
        crate::vendors::config(&by_name, "")
    );
    let setup = Setup::new().config(&config);
    let path = setup.config.clone().unwrap();
    let (ok, out, err) = itsmd(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("vendors.acme.url")
            && err.contains("loopback")
            && err.contains("[egress] allow"),
        "{err}"
    );
    let d = setup.start();
    crate::vendors::assigned_incident(&d);
    let dead = wait_outbox(&d, true, |v| {
        v["rows"].as_array().is_some_and(|r| !r.is_empty())
    });
    let error = dead["rows"][0]["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains("`localhost` resolves to") && error.contains("loopback"),
        "{error}"
    );
    assert!(error.contains("not retried"), "{error}");
    assert_eq!(dead["rows"][0]["attempts"], 1, "{dead}");
    assert!(
        vendor.received().is_empty(),
        "the refused vendor was called"
    );
    drop(d);

    // The cloud metadata address: refused although loopback is allowed.
    let config = format!(
        "{}\n[egress]\nallow = [\"127.0.0.0/8\"]\n",
        crate::vendors::config("http://169.254.169.254/latest/meta-data/", "")
    );
    let setup = Setup::new().config(&config);
    let path = setup.config.clone().unwrap();
    let (ok, _, err) = itsmd(&["check", "--config", path.to_str().unwrap()]);
    assert!(
        !ok && err.contains("169.254.169.254") && err.contains("link-local"),
        "{err}"
    );
    let d = setup.start();
    crate::vendors::assigned_incident(&d);
    let dead = wait_outbox(&d, true, |v| {
        v["rows"].as_array().is_some_and(|r| !r.is_empty())
    });
    assert!(
        dead["rows"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("link-local"),
        "{dead}"
    );
    drop(d);

    // Allowed: the same loopback name is delivered.
    let config = format!(
        "{}\n[egress]\nallow = [\"127.0.0.0/8\", \"::1\"]\n",
        crate::vendors::config(&by_name, "")
    );
    let setup = Setup::new().config(&config);
    let path = setup.config.clone().unwrap();
    let (ok, out, err) = itsmd(&["check", "--config", path.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let d = setup.start();
    crate::vendors::assigned_incident(&d);
    assert_eq!(vendor.wait_for(1, Duration::from_secs(10)).len(), 1);
}

#[test]
fn sigterm_stops_a_running_replay_and_releases_the_store() {
    // Each event may take the rules a second, and a rule file that does is never disabled.
    let setup = Setup::new().config(
        "[groups.triage]\n[groups.operations]\n[groups.dba]\n[rules]\nmax_operations = 10000000000\ntime_budget_ms = 1000\ndisable_after = 0\n",
    );
    let d = setup.start();
    for i in 0..100 {
        let (status, body) = d.post(
            "/api/v1/events",
            &alert(
                "firing",
                "replayed",
                json!({"alertname": "R", "i": i.to_string()}),
            ),
        );
        assert_eq!(status, 202, "{body}");
    }
    // A candidate that spends its whole time budget on every alert: the replay of 100 events
    // takes far longer than the daemon may take to stop.
    let slow = "fn on_alert(alert, ticket) {\n    let x = 0;\n    loop { x += 1; }\n}\n";
    let url = d.url("/api/v1/admin/replay");
    let http = d.http.clone();
    let replay = std::thread::spawn(move || {
        http.post(url)
            .json(&json!({"rules": {"50-slow.rhai": slow}}))
            .timeout(std::time::Duration::from_secs(120))
            .send()
            .map(|r| r.status().as_u16())
    });
    // The replay's own engine announces itself as the daemon's did.
    d.wait_for_log(|v| v["message"] == "Engine started." && v.to_string().contains("replay"));
    d.signal(libc::SIGTERM);
    // Exits (support's wait gives it 30 s; the replay alone would take minutes).
    assert!(d.wait().success());
    let _ = replay.join();
    // The store lock is free: the next start opens it, every incident there.
    let d = setup.start();
    let list = d.get_ok("/api/v1/tickets?limit=500");
    assert_eq!(list["tickets"].as_array().unwrap().len(), 100);
}

#[test]
fn a_vendor_taken_off_a_ticket_cannot_resolve_it_by_callback() {
    use itsmd::vendors::{Secret, sign};
    use reqwest::Method;
    let receiver = crate::receiver::Receiver::start(vec![]);
    let setup = Setup::new().config(&crate::vendors::config(&receiver.url, ""));
    let d = setup.start();
    let id = crate::vendors::assigned_incident(&d);
    // Notified once (the assignment's webhook), so it was a claim the vendor could use.
    receiver.wait_for(1, std::time::Duration::from_secs(10));
    let callback = |webhook_id: &str, status: &str| {
        let text =
            json!({"ticket": id, "status": status, "comment": "done on our side"}).to_string();
        let key = Secret::parse(crate::vendors::SECRET, "test").unwrap();
        let signed = sign(&[key], webhook_id, jiff::Timestamp::now(), text.as_bytes()).unwrap();
        let mut req = d
            .http
            .post(d.url("/api/v1/vendors/acme/callback"))
            .header("content-type", "application/json")
            .body(text);
        for (name, value) in signed.pairs() {
            req = req.header(name, value);
        }
        let r = req.send().unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    let (status, body) = callback("cb_1", "acknowledged");
    assert_eq!(status, 200, "{body}");
    let path = format!("/api/v1/tickets/{id}");
    let (status, t) = crate::vendors::call(&d, Method::PATCH, &path, Some(json!({"vendor": null})));
    assert_eq!(status, 200, "{t}");
    let (status, body) = callback("cb_2", "resolved");
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("taken off"), "{body}");
    let (_, t) = crate::vendors::call(&d, Method::GET, &path, None);
    assert_eq!(t["state"], "in_progress", "{t}");
}

/// Opens a connection to `d` and sends the headers of a POST to `path` announcing a body of
/// `length` bytes, then `first` bytes of it.
fn slow_post(
    d: &crate::support::Daemon,
    path: &str,
    length: usize,
    first: &[u8],
) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        d.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(first).unwrap();
    s
}

/// Reads what the daemon answered on `s` (until it closes or 30 s pass).
fn answer(mut s: std::net::TcpStream) -> String {
    use std::io::Read;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn trickling_anonymous_bodies_do_not_starve_authenticated_intake() {
    use std::io::Write;
    let token = "ingest-token-0123456789";
    // A main budget the 300 trickling connections below would use up many times over, and a
    // request timeout longer than this test waits: without a budget of their own for routes
    // without a token, the alert below would get 503 throughout.
    let config = format!(
        "[server]\nmax_concurrent_requests = 64\nmax_unauthenticated_requests = 16\n\
         request_timeout_secs = 300\nbody_read_timeout_secs = 4\nmax_connections_per_peer = 0\n\
         [auth]\ntokens = [{{ name = \"prom\", role = \"ingest\", token = \"{token}\" }}]\n\
         [groups.triage]\n[groups.operations]\n[vendors.acme]\nurl = \"http://127.0.0.1:9/\"\n\
         secret = \"{}\"\n",
        crate::vendors::SECRET
    );
    let setup = Setup::new().config(&config);
    let d = setup.start();
    let mut trickling: Vec<std::net::TcpStream> = (0..300)
        .map(|i| {
            let path = if i % 2 == 0 {
                "/v2/enqueue"
            } else {
                "/api/v1/vendors/acme/callback"
            };
            slow_post(&d, path, 100_000, b"{")
        })
        .collect();
    // Keep them trickling, a byte each, while the alert goes in.
    for s in &mut trickling {
        let _ = s.write_all(b" ");
    }
    let body = alert("firing", "disk full", json!({"alertname": "Disk"}));
    let mut last = String::new();
    crate::support::wait_until("an authenticated alert accepted", || {
        let r = d
            .http
            .post(d.url("/api/v1/events"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        last = r.text().unwrap_or_default();
        for s in &mut trickling {
            let _ = s.write_all(b" ");
        }
        status == 202
    });
    assert!(last.contains("INC-"), "{last}");
    // Past their budget, trickling requests were refused at once, naming it; those within
    // it were cut off at the body deadline (408, or the PagerDuty API's own 400 saying so),
    // and their connections closed. A connection reset after its answer (the client kept
    // writing into a closed connection) reads as nothing.
    let answers: Vec<String> = trickling.into_iter().map(answer).collect();
    let over = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503") && a.contains("max_unauthenticated_requests"))
        .count();
    let cut = answers
        .iter()
        .filter(|a| a.contains("did not arrive within server.body_read_timeout_secs"))
        .count();
    let reset = answers.iter().filter(|a| a.is_empty()).count();
    assert!(over >= 200, "{over} refused, {cut} cut off, {reset} reset");
    assert!(cut >= 1, "none cut off at the deadline");
    assert_eq!(
        over + cut + reset,
        300,
        "{:?}",
        answers.iter().find(|a| {
            !a.is_empty() && !a.starts_with("HTTP/1.1 503") && !a.contains("body_read_timeout_secs")
        })
    );
}

#[test]
fn connections_past_the_per_peer_cap_are_refused_with_a_503_naming_it() {
    let setup = Setup::new().config("[server]\nmax_connections_per_peer = 3\n");
    let d = setup.start();
    let held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(d.addr).unwrap())
        .collect();
    let fourth = std::net::TcpStream::connect(d.addr).unwrap();
    let said = answer(fourth);
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.contains("server.max_connections_per_peer"), "{said}");
    drop(held);
    // Closed connections are no longer counted: the API answers again.
    crate::support::wait_until("the API to answer", || {
        d.http
            .get(d.url("/api/v1/tickets"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
}

#[test]
fn a_ticket_list_page_stops_at_its_byte_budget_and_the_cursor_goes_on() {
    let setup = Setup::new().config("[server]\nmax_list_bytes = 200000\n");
    let d = setup.start();
    let description = "x".repeat(60_000);
    for i in 0..12 {
        let (status, t) = d.post(
            "/api/v1/tickets",
            &json!({"kind": "incident", "title": format!("big {i}"), "description": description})
                .to_string(),
        );
        assert_eq!(status, 201, "{t}");
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/tickets?limit=300&after={a}"),
            None => "/api/v1/tickets?limit=300".to_string(),
        };
        let r = d.http.get(d.url(&path)).send().unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().unwrap();
        // The budget plus at most the ticket that crossed it is never exceeded.
        assert!(text.len() <= 200_000 + 62_000, "{} bytes", text.len());
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tickets = page["tickets"].as_array().unwrap();
        assert!(
            !tickets.is_empty() && tickets.len() < 12,
            "{}",
            tickets.len()
        );
        seen.extend(
            tickets
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert!(pages >= 4, "{pages} pages");
    let expected: Vec<String> = (1..=12).map(|n| format!("INC-{n:06}")).collect();
    assert_eq!(seen, expected, "every ticket once, in order");
}

/// A tmpfs of `size` mounted on `dir` (root only: the tests run as root in CI), unmounted
/// when dropped. Not root: the test fails saying so, it never passes without the fault.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot mount a tmpfs on {} (uid {}): the disk-fault test needs root",
            dir.display(),
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() }
        );
        Tmpfs(dir.to_path_buf())
    }

    pub fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system `dir` is on, to the last block, with a file there that can be
/// removed to free the space again; returns that file.
pub fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 1 << 20];
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(&[0u8; 4096]);
    while f.write_all(&[0u8; 512]).is_ok() {}
    filler
}

/// Starts `itsmd serve` on `data` and reports whether it came up (then stops it) or exited,
/// with its stderr.
pub fn start_or_refuse(data: &std::path::Path) -> (bool, String) {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .arg("--rules-dir")
        .arg(&rules)
        .stderr(log.reopen().unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    crate::support::wait_until("the daemon to start or refuse", || {
        if std::fs::read_to_string(log.path()).is_ok_and(|l| l.contains("\"Listening.\"")) {
            up = true;
            return true;
        }
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if up {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(up || !status.success(), "exited 0 without serving: {text}");
    (up, text)
}

#[test]
fn on_a_full_then_read_only_disk_the_store_stays_openable_and_nothing_acknowledged_is_lost() {
    let setup = Setup::new();
    let data = setup.data_dir();
    let fs = Tmpfs::mount(&data, "24m");
    let d = setup.start();
    let (status, _) = d.post(
        "/api/v1/events",
        &alert("firing", "first", json!({"i": "0"})),
    );
    assert_eq!(status, 202);
    // Fill the rest of the disk with a file we can delete later.
    let filler = fill(&data);
    // Intake goes on until the store cannot write; then 503, never a false 202.
    let mut acknowledged = 1;
    let mut refused = false;
    let big = "v".repeat(16_000);
    for i in 1..2_000 {
        let (status, body) = d.post(
            "/api/v1/events",
            &alert(
                "firing",
                &format!("alert {i}"),
                json!({"i": i.to_string(), "big": big}),
            ),
        );
        match status {
            202 => acknowledged += 1,
            503 => {
                assert!(body.to_string().contains("store_unavailable"), "{body}");
                refused = true;
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(refused, "the disk never filled");
    d.kill();

    // A start on the full disk either serves or refuses saying what to do.
    let (up, log) = start_or_refuse(&data);
    assert!(
        up || log.contains("disk full") || log.contains("free space"),
        "{log}"
    );
    // Space freed: the store opens, with every acknowledged alert, and verifies offline.
    std::fs::remove_file(&filler).unwrap();
    let d = setup.start();
    let list = d.get_ok("/api/v1/tickets?limit=1000");
    assert_eq!(
        list["tickets"].as_array().unwrap().len(),
        acknowledged,
        "acknowledged, kept"
    );
    assert!(d.terminate().success());
    let (ok, out, err) = itsmd(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    // Read-only: refused with what to do, the store untouched and still opening afterwards.
    fs.remount("ro");
    let (up, log) = start_or_refuse(&data);
    assert!(!up, "served on a read-only store");
    assert!(
        log.contains("Read-only file system") && log.contains("remount"),
        "{log}"
    );
    fs.remount("rw");
    let d = setup.start();
    let list = d.get_ok("/api/v1/tickets?limit=1000");
    assert_eq!(list["tickets"].as_array().unwrap().len(), acknowledged);
}

/// Follows a JSON-array list's `Link: <…>; rel="next"` pages from `path`, each at most the
/// test's 200,000-byte budget plus `slack` (one item may pass it): the `seq`s and the pages.
fn follow_pages(d: &crate::support::Daemon, path: &str, slack: usize) -> (Vec<u64>, usize) {
    let (mut seqs, mut pages, mut path) = (Vec::new(), 0, path.to_string());
    loop {
        let r = d.http.get(d.url(&path)).send().unwrap();
        assert_eq!(r.status(), 200);
        let link = r
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.text().unwrap();
        assert!(text.len() <= 200_000 + slack, "{} bytes", text.len());
        let page: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        seqs.extend(page.iter().map(|h| h["seq"].as_u64().unwrap()));
        pages += 1;
        match link {
            Some(l) => {
                let next = l.strip_prefix('<').and_then(|l| l.split_once('>')).unwrap();
                assert_eq!(next.1, "; rel=\"next\"", "{l}");
                path = next.0.to_string();
            }
            None => return (seqs, pages),
        }
    }
}

#[test]
fn history_comment_and_alert_occurrence_pages_stop_at_the_byte_budget_and_link_on() {
    let setup = Setup::new().config("[server]\nmax_list_bytes = 200000\n");
    let d = setup.start();
    // One ticket whose history holds twelve 60 kB descriptions twice over (old and new).
    let (status, t) = d.post(
        "/api/v1/tickets",
        &json!({"kind": "incident", "title": "edited"}).to_string(),
    );
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    for c in 'a'..='l' {
        let r = d
            .http
            .patch(d.url(&format!("/api/v1/tickets/{id}")))
            .json(&json!({"description": c.to_string().repeat(60_000)}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (seqs, pages) = follow_pages(&d, &format!("/api/v1/tickets/{id}/history"), 125_000);
    assert!(pages >= 4, "{pages} pages");
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every entry once, in order");
    assert!(seqs.len() >= 13, "{seqs:?}");
    // The ticket itself carries the first page and says where the rest is.
    let shown = d.get_ok(&format!("/api/v1/tickets/{id}"));
    let first = shown["history"].as_array().unwrap().len() as u64;
    assert!(first < 13, "{first}");
    assert_eq!(shown["history_next"], first, "{}", shown["history_next"]);
    let (status, err) = d.get(&format!("/api/v1/tickets/{id}/history?before=3"));
    assert_eq!(status, 400, "{err}");

    // Twenty 30 kB comments, every other one public: all of them, and the public ones, in
    // pages of at most the budget, each once and in order.
    for i in 0..20 {
        let visibility = if i % 2 == 0 { "public" } else { "internal" };
        let (status, body) = d.post(
            &format!("/api/v1/tickets/{id}/comments"),
            &json!({"body": format!("{i} {}", "c".repeat(30_000)), "visibility": visibility})
                .to_string(),
        );
        assert_eq!(status, 201, "{body}");
    }
    for (query, expected) in [
        ("", (1..=20).collect::<Vec<u64>>()),
        ("?visibility=public", (1..=20).step_by(2).collect()),
    ] {
        let (seqs, pages) =
            follow_pages(&d, &format!("/api/v1/tickets/{id}/comments{query}"), 35_000);
        assert!(pages >= 2, "{query}: {pages} pages");
        assert_eq!(seqs, expected, "{query}: every comment once, in order");
    }
    let (status, err) = d.get(&format!("/api/v1/tickets/{id}/comments?befor=3"));
    assert_eq!(status, 400, "an unknown parameter is named: {err}");

    // Twelve 60 kB alerts into one incident: its occurrences come a few at a time.
    for i in 0..12 {
        let body = json!({
            "source": "test", "key": "big-alert", "status": "firing", "severity": "critical",
            "summary": "big", "labels": {"i": i.to_string()},
            "annotations": {"pad": "a".repeat(60_000)},
        });
        let (status, body) = d.post("/api/v1/events", &body.to_string());
        assert_eq!(status, 202, "{body}");
    }
    let incident = crate::support::incidents(&d)
        .into_iter()
        .find(|t| !t["alert"].is_null())
        .unwrap();
    let inc = incident["id"].as_str().unwrap();
    let (mut seen, mut pages, mut after) = (0, 0, String::new());
    loop {
        let path = format!("/api/v1/tickets/{inc}/alerts?limit=1000{after}");
        let r = d.http.get(d.url(&path)).send().unwrap();
        let text = r.text().unwrap();
        assert!(text.len() <= 200_000 + 65_000, "{} bytes", text.len());
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        seen += page["alerts"].as_array().unwrap().len();
        pages += 1;
        match page["next"].as_u64() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen, 12, "every occurrence once");
    assert!(pages >= 3, "{pages} pages");
}
