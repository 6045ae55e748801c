//! Changing a running daemon: SIGHUP, rule-file changes, the admin reload endpoint.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, alert, groups_config};

const ADMIN: &str = "admin-token-0123456789";
const NEWCOMER: &str = "newcomer-token-0123456789";

fn admin_config(extra: &str) -> String {
    format!(
        "{}[[auth.tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n{extra}",
        groups_config(&[("one", &[]), ("two", &[])])
    )
}

fn health(d: &Daemon) -> Value {
    d.http
        .get(d.url("/healthz"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_swaps_config_and_rules_together_or_not_at_all() {
    let setup = Setup::new()
        .rules(&[("10-a.rhai", "fn on_alert(a, t) { t.group = \"one\"; }")])
        .config(&admin_config(""));
    let d = setup.start();
    let before = health(&d)["rules_version"].clone();
    let status = |token: &str| {
        d.http
            .get(d.url("/api/v1/tickets"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(NEWCOMER), 401);

    // A broken configuration: nothing changes, every problem is logged.
    let config = setup.config.clone().unwrap();
    std::fs::write(
        &config,
        admin_config("[engine]\nmax_batch = 0\nbogus = 1\n"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for_log(|v| v["message"] == "Reload refused; what was running keeps running.");
    let problems: Vec<_> = d
        .logs()
        .into_iter()
        .filter(|v| v["message"] == "Reload problem.")
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(health(&d)["rules_version"], before);
    // The refusal shows where a probe or a person looks, not only in the log.
    let last = health(&d)["last_reload"].clone();
    assert_eq!(last["ok"], false, "{last}");
    assert_eq!(last["problems"].as_array().unwrap().len(), 2, "{last}");
    assert!(last["problems"].to_string().contains("bogus"), "{last}");
    assert_eq!(d.metric("itsmd_reload_last_successful"), 0.0);

    // A changed rule is picked up by the file watch, but the refused configuration stands:
    // reloading the rules folder does not read the configuration file.
    let rule = setup.rules_dir.as_ref().unwrap().join("10-a.rhai");
    std::fs::write(&rule, "fn on_alert(a, t) { t.group = \"two\"; }").unwrap();
    wait_until("the changed rule", || health(&d)["rules_version"] != before);
    let last = health(&d)["last_reload"].clone();
    assert_eq!(last["ok"], false, "{last}");
    assert_eq!(last["what"], "configuration and rules", "{last}");

    // A valid one with a new token: it takes effect, and the refusal is over.
    std::fs::write(
        &config,
        admin_config(&format!(
            "[[auth.tokens]]\nname = \"new\"\nrole = \"agent\"\ntoken = \"{NEWCOMER}\"\n"
        )),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    wait_until("the new token", || status(NEWCOMER) == 200);
    assert_eq!(health(&d)["last_reload"]["ok"], true);
    assert!(health(&d)["last_reload"].get("problems").is_none());
    assert_eq!(d.metric("itsmd_reload_last_successful"), 1.0);
    assert!(d.metric("itsmd_reload_last_success_timestamp_seconds") > 1.7e9);
    let r: Value = d
        .http
        .post(d.url("/api/v1/events"))
        .bearer_auth(NEWCOMER)
        .body(alert("firing", "x", json!({})))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let t: Value = d
        .http
        .get(d.url(&format!(
            "/api/v1/tickets/{}",
            r["ticket"].as_str().unwrap()
        )))
        .bearer_auth(NEWCOMER)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(t["group"], "two");

    // A setting read only at start: every reload says a restart is pending until the file
    // says what is running again.
    let reloads = || {
        d.logs()
            .iter()
            .filter(|v| v["message"] == "Reloaded." && v["what"] == "Configuration and rules")
            .count()
    };
    let pending = || {
        d.logs()
            .iter()
            .filter(|v| v["setting"] == "engine.queue_capacity")
            .count()
    };
    let with_queue = admin_config(&format!(
        "[[auth.tokens]]\nname = \"new\"\nrole = \"agent\"\ntoken = \"{NEWCOMER}\"\n\
         [engine]\nqueue_capacity = 777\n"
    ));
    std::fs::write(&config, &with_queue).unwrap();
    for (n, expected) in [(2, 1), (3, 2)] {
        d.signal(libc::SIGHUP);
        wait_until("the reload", || reloads() == n);
        assert_eq!(pending(), expected, "reload {n}");
    }
    std::fs::write(&config, admin_config("")).unwrap();
    d.signal(libc::SIGHUP);
    wait_until("the reload", || reloads() == 4);
    assert_eq!(
        pending(),
        2,
        "nothing is pending once the file is as at start"
    );
}

#[test]
fn a_changed_rule_file_is_picked_up_and_a_broken_one_is_refused() {
    let setup = Setup::new()
        .rules(&[("10-a.rhai", "fn on_alert(a, t) { t.group = \"one\"; }")])
        .config(&groups_config(&[("one", &[]), ("two", &[])]));
    let d = setup.start();
    let v1 = health(&d)["rules_version"].clone();
    let dir = setup.rules_dir.clone().unwrap();

    // A broken file: logged with file and line, the old rules keep running.
    std::fs::write(
        dir.join("20-b.rhai"),
        "fn on_alert(a, t) {\n  t.group = ;\n}",
    )
    .unwrap();
    let log = d.wait_for_log(|v| {
        v["message"] == "Reload problem."
            && v["problem"].as_str().unwrap_or("").contains("20-b.rhai:2:")
    });
    assert!(
        log["problem"].as_str().unwrap().starts_with("20-b.rhai:2:"),
        "{log}"
    );
    assert_eq!(health(&d)["rules_version"], v1);
    let last = health(&d)["last_reload"].clone();
    assert_eq!(last["ok"], false, "{last}");
    assert!(
        last["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("20-b.rhai:2:"),
        "{last}"
    );
    let (_, r) = d.post("/api/v1/events", &alert("firing", "x", json!({"n": "1"})));
    assert_eq!(
        d.get_ok(&format!(
            "/api/v1/tickets/{}",
            r["ticket"].as_str().unwrap()
        ))["group"],
        "one"
    );

    // Fixed: the whole set is swapped in.
    std::fs::write(
        dir.join("20-b.rhai"),
        "fn on_alert(a, t) { t.group = \"two\"; }",
    )
    .unwrap();
    wait_until("the fixed rules", || health(&d)["rules_version"] != v1);
    let (_, r) = d.post("/api/v1/events", &alert("firing", "x", json!({"n": "2"})));
    let t = d.get_ok(&format!(
        "/api/v1/tickets/{}",
        r["ticket"].as_str().unwrap()
    ));
    assert_eq!(t["group"], "two");
    // History records which rule set decided.
    assert_eq!(
        t["history"].as_array().unwrap().last().unwrap()["rules_version"],
        health(&d)["rules_version"]
    );
    assert_eq!(health(&d)["last_reload"]["ok"], true);

    // A broken file added, then removed: the set on disk is again the one running, and the
    // refusal no longer stands.
    std::fs::write(dir.join("30-c.rhai"), "fn on_alert(a, t) { let = 1; }").unwrap();
    wait_until("the refusal", || health(&d)["last_reload"]["ok"] == false);
    assert_eq!(d.metric("itsmd_reload_last_successful"), 0.0);
    std::fs::remove_file(dir.join("30-c.rhai")).unwrap();
    wait_until("the set on disk checked again", || {
        health(&d)["last_reload"]["ok"] == true
    });
    assert_eq!(d.metric("itsmd_reload_last_successful"), 1.0);
}

#[test]
fn the_admin_endpoint_reloads_rules_and_returns_every_error() {
    let setup = Setup::new().rules(&[("10-a.rhai", "fn on_alert(a, t) { }")]);
    let d = setup.start();
    let dir = setup.rules_dir.clone().unwrap();
    std::fs::write(dir.join("20-b.rhai"), "fn on_alert(a) { }").unwrap();
    std::fs::write(dir.join("30-c.rhai"), "fn on_alert(a, t) { let = 1; }").unwrap();
    let (status, body) = d.post("/api/v1/admin/rules/reload", "");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "rules_invalid");
    let errors = body["error"]["details"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");

    std::fs::remove_file(dir.join("20-b.rhai")).unwrap();
    std::fs::remove_file(dir.join("30-c.rhai")).unwrap();
    let (status, body) = d.post("/api/v1/admin/rules/reload", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rule_files"], 1);
    assert_eq!(body["rules_version"], health(&d)["rules_version"]);
}
