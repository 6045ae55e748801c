//! A daemon with nothing to do does nothing: no CPU spent while idle, no reload that nobody
//! asked for, one error (not thousands) for a mail that cannot be taken. And what a reload
//! reports as applied is applied: the auto-close sweep follows a changed `[lifecycle]`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Daemon, Setup, assert_closed_by_housekeeping, groups_config};

const MAIL_CONFIG: &str = r#"
[groups.triage]
[groups.operations]
[mail]
settle = "300ms"
rescan_every = "1s"
"#;

/// Most CPU time a daemon may spend in [`IDLE_WINDOW`]: 2 % of a core.
const IDLE_CPU: Duration = Duration::from_millis(100);
const IDLE_WINDOW: Duration = Duration::from_secs(5);

/// Longer than the rules watcher's settle time (300 ms), with margin for a loaded machine.
const QUIET: Duration = Duration::from_secs(2);

/// CPU time (user + system) the process has used so far, from /proc/PID/stat.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // The command name may hold spaces: count fields after its closing parenthesis, where
    // field 3 (state) is the first; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory-safety preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(per_sec > 0, "sysconf(_SC_CLK_TCK)");
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// The CPU time the daemon uses over `window`.
fn cpu_over(d: &Daemon, window: Duration) -> Duration {
    let before = cpu_time(d.pid());
    std::thread::sleep(window);
    cpu_time(d.pid()) - before
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(d: &Daemon, pred: impl Fn(&Value) -> bool) -> usize {
    d.logs().iter().filter(|v| pred(v)).count()
}

fn reloads(d: &Daemon) -> usize {
    count(d, |v| v["message"] == "Reloaded.")
}

/// Waits for the `n`th "Reloaded.", then for a quiet spell, and asserts no further one came.
fn assert_reloads_settle_at(d: &Daemon, n: usize) {
    wait_until(&format!("{n} reload(s)"), || reloads(d) >= n);
    std::thread::sleep(QUIET);
    let lines: Vec<Value> = d
        .logs()
        .into_iter()
        .filter(|v| v["message"] == "Reloaded.")
        .collect();
    assert_eq!(lines.len(), n, "{lines:#?}");
}

fn start_with_maildir(setup: &Setup) -> (Daemon, PathBuf) {
    let root = setup.dir.path().join("Maildir");
    let d = setup.start_with(&[OsStr::new("--maildir"), root.as_os_str()], &[]);
    d.wait_for_log(|v| v["message"] == "Mail intake started." && v["watched"] == true);
    (d, root)
}

fn eml(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// As a delivery agent does: write in tmp/, then rename into new/.
fn deliver(root: &Path, name: &str, bytes: &[u8]) {
    let tmp = root.join("tmp").join(name);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, root.join("new").join(name)).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn tickets(d: &Daemon) -> usize {
    d.get_ok("/api/v1/tickets?limit=1000")["tickets"]
        .as_array()
        .unwrap()
        .len()
}

/// Error lines about one file.
fn errors_about(d: &Daemon, file: &str) -> Vec<Value> {
    d.logs()
        .into_iter()
        .filter(|v| v["level"] == "ERROR" && v["file"].as_str().is_some_and(|f| f.contains(file)))
        .collect()
}

#[test]
fn an_idle_daemon_with_a_maildir_and_a_rules_folder_uses_almost_no_cpu() {
    let setup = Setup::new()
        .rules(&[("10-a.rhai", "fn on_alert(a, t) { }")])
        .config(MAIL_CONFIG);
    let (d, _root) = start_with_maildir(&setup);
    d.wait_for_log(|v| v["message"] == "Watching rules for changes.");
    assert_eq!(d.get_ok("/healthz")["status"], "ok");
    // Let start-up work (first scan, first sweep) finish before measuring.
    cpu_over(&d, Duration::from_secs(1));
    let used = cpu_over(&d, IDLE_WINDOW);
    assert!(
        used < IDLE_CPU,
        "idle daemon used {used:?} of CPU in {IDLE_WINDOW:?}"
    );
    assert_eq!(reloads(&d), 0);
}

#[test]
fn reading_rules_reloads_nothing_and_each_reload_or_change_reloads_once() {
    let setup = Setup::new().rules(&[
        ("10-a.rhai", "fn on_alert(a, t) { }"),
        ("20-b.rhai", "fn on_mail(m, t) { }"),
    ]);
    let d = setup.start();
    d.wait_for_log(|v| v["message"] == "Watching rules for changes.");
    let dir = setup.rules_dir.clone().unwrap();

    // Reading every rule file, as `cat rules/*.rhai` does, is not a change.
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::read_to_string(entry.unwrap().path()).unwrap();
    }
    assert_reloads_settle_at(&d, 0);

    // A SIGHUP reads every rule file again: that must not start a reload of its own.
    d.signal(libc::SIGHUP);
    assert_reloads_settle_at(&d, 1);

    // Nor must the admin endpoint's reload.
    let (status, body) = d.post("/api/v1/admin/rules/reload", "");
    assert_eq!(status, 200, "{body}");
    assert_reloads_settle_at(&d, 2);

    // A changed rule file is one reload, with the new rule set in force.
    let before = d.get_ok("/healthz")["rules_version"].clone();
    std::fs::write(
        dir.join("10-a.rhai"),
        "fn on_alert(a, t) { t.title = \"x\"; }",
    )
    .unwrap();
    assert_reloads_settle_at(&d, 3);
    assert_ne!(d.get_ok("/healthz")["rules_version"], before);

    // Rewritten with the same text: the rule set is unchanged, so nothing is reloaded.
    std::fs::write(
        dir.join("10-a.rhai"),
        "fn on_alert(a, t) { t.title = \"x\"; }",
    )
    .unwrap();
    assert_reloads_settle_at(&d, 3);
}

#[test]
fn a_mail_that_cannot_be_read_is_reported_once_and_the_others_are_taken() {
    let setup = Setup::new().config(MAIL_CONFIG);
    let (d, root) = start_with_maildir(&setup);
    // Root reads any file whatever its mode; nobody can read a folder as a mail.
    let bad = "1700000000.M1P1.host";
    std::fs::create_dir(root.join("new").join(bad)).unwrap();
    deliver(&root, "1700000001.M2P1.host", &eml("html-only.eml"));
    deliver(
        &root,
        "1700000002.M3P1.host",
        &eml("multipart-qp-latin1.eml"),
    );

    wait_until("the readable mails are in cur/", || {
        names(&root.join("cur")).len() == 2
    });
    assert_eq!(
        names(&root.join("cur")),
        ["1700000001.M2P1.host:2,S", "1700000002.M3P1.host:2,S"]
    );
    wait_until("both mails opened tickets", || tickets(&d) == 2);
    assert_eq!(names(&root.join("new")), [bad]);

    // Several rescans and retries later: one error line, low CPU.
    let used = cpu_over(&d, IDLE_WINDOW);
    let errors = errors_about(&d, bad);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["reason"], "not_a_file", "{}", errors[0]);
    assert!(
        errors[0]["error"].as_str().unwrap().contains("folder"),
        "{}",
        errors[0]
    );
    assert!(used < IDLE_CPU, "used {used:?} of CPU in {IDLE_WINDOW:?}");
    assert_eq!(
        d.metric("itsmd_mail_stuck_total{reason=\"not_a_file\"}"),
        1.0
    );
}

#[test]
fn a_mail_that_cannot_be_moved_to_cur_is_reported_once_and_moved_when_it_can() {
    let setup = Setup::new().config(MAIL_CONFIG);
    let (d, root) = start_with_maildir(&setup);
    // A file where cur/ should be: renaming into it fails, for root too.
    let cur = root.join("cur");
    std::fs::remove_dir(&cur).unwrap();
    std::fs::write(&cur, "").unwrap();
    let name = "1700000003.M4P1.host";
    deliver(&root, name, &eml("html-only.eml"));

    d.wait_for_log(|v| v["level"] == "ERROR" && v["file"] == name);
    wait_until("the mail opened a ticket", || tickets(&d) == 1);
    let used = cpu_over(&d, IDLE_WINDOW);
    let errors = errors_about(&d, name);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["reason"], "not_moved", "{}", errors[0]);
    assert!(used < IDLE_CPU, "used {used:?} of CPU in {IDLE_WINDOW:?}");
    assert_eq!(
        d.metric("itsmd_mail_stuck_total{reason=\"not_moved\"}"),
        1.0
    );

    // cur/ is back: a retry moves it, without committing the mail again.
    std::fs::remove_file(&cur).unwrap();
    std::fs::create_dir(&cur).unwrap();
    wait_until("the mail is in cur/", || !names(&cur).is_empty());
    assert_eq!(names(&cur), [format!("{name}:2,S")]);
    assert!(names(&root.join("new")).is_empty());
    d.wait_for_log(|v| v["message"] == "Stuck mail handled after retrying." && v["file"] == name);
    assert_eq!(tickets(&d), 1);
    assert_eq!(
        count(&d, |v| v["message"] == "Mail taken."
            || v["level"] == "ERROR"),
        1,
        "only the one error, no second take"
    );
}

fn lifecycle_config(close_after: &str, sweep_every: &str) -> String {
    format!(
        "{}[lifecycle]\nincident_close_after = \"{close_after}\"\nsweep_every = \"{sweep_every}\"\n",
        groups_config(&[])
    )
}

#[test]
fn a_sighup_lowering_the_close_time_closes_a_resolved_incident_on_the_next_sweep() {
    let setup = Setup::new().config(&lifecycle_config("5d", "1h"));
    let d = setup.start();
    let (status, t) = d.post(
        "/api/v1/tickets",
        &json!({"kind": "incident", "title": "x"}).to_string(),
    );
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let (status, t) = d.post(
        &format!("/api/v1/tickets/{id}/transitions"),
        &json!({"to": "resolved", "reason": "test", "resolution": "fixed"}).to_string(),
    );
    assert!((200..300).contains(&status), "{status} {t}");

    std::fs::write(
        setup.config.as_ref().unwrap(),
        lifecycle_config("1s", "200ms"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for_log(|v| v["message"] == "Reloaded.");
    let state = || d.get_ok(&format!("/api/v1/tickets/{id}"));
    wait_until("the incident closed", || state()["state"] == "closed");
    let t = state();
    assert_closed_by_housekeeping(&t, "1s");
    // Nothing in [lifecycle] needs a restart.
    assert_eq!(
        count(&d, |v| v["message"]
            == "Changed setting takes effect only after a restart."),
        0
    );
}
