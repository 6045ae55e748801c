//! The `itsmd` command line outside `serve`.

use std::process::Command;

use crate::support::{BIN, Setup};

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().expect("run itsmd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_accepts_the_shipped_config_and_rules() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (ok, out) = run(&[
        "check",
        "--config",
        &format!("{root}/config/itsmd.toml"),
        "--rules-dir",
        &format!("{root}/rules"),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn check_lists_every_config_problem_and_fails() {
    let setup = Setup::new()
        .config("[server]\nlisten = \"nowhere\"\nbogus = 1\n[engine]\nmax_batch = 0\n[nonsense]\n");
    let config = setup.config.as_ref().unwrap().to_str().unwrap();
    let (ok, out) = run(&["check", "--config", config]);
    assert!(!ok, "{out}");
    for needle in [
        "4 problem(s)",
        "server.listen",
        "unknown field `bogus`",
        "engine.max_batch",
        "`nonsense`",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn check_lists_the_problems_of_every_part_at_once() {
    // An unreadable token file and a rule that does not compile: both, in one run.
    let setup = Setup::new()
        .config(
            "[[auth.tokens]]\nname = \"ci\"\nrole = \"admin\"\n\
             token_file = \"/nonexistent/ci.token\"\n",
        )
        .rules(&[("10-a.rhai", "fn on_alert(alert, ticket) {\n  let x = ;\n}")]);
    let config = setup.config.as_ref().unwrap().to_str().unwrap();
    let rules = setup.rules_dir.as_ref().unwrap().to_str().unwrap();
    let (ok, out) = run(&["check", "--config", config, "--rules-dir", rules]);
    assert!(!ok, "{out}");
    for needle in [
        "token `ci`: cannot read /nonexistent/ci.token",
        "10-a.rhai:2:",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn check_lists_every_rule_compile_error_and_fails() {
    let setup = Setup::new().rules(&[
        ("10-a.rhai", "fn on_alert(alert, ticket) {\n  let x = ;\n}"),
        ("20-b.rhai", "fn on_alert(alert) { }"),
        ("30-c.rhai", "import \"x\" as y;\nfn on_alert(a, t) {}"),
        ("40-ok.rhai", "fn on_alert(a, t) {}"),
    ]);
    let dir = setup.rules_dir.as_ref().unwrap().to_str().unwrap();
    let (ok, out) = run(&["rules", "check", dir]);
    assert!(!ok, "{out}");
    assert!(out.contains("3 error(s)"), "{out}");
    assert!(out.contains("10-a.rhai:2:"), "{out}");
    assert!(
        // Every error names its file and line, a wrong arity too (issue 16).
        out.contains("20-b.rhai:1:1: on_alert must take 2 parameters"),
        "{out}"
    );
    assert!(out.contains("30-c.rhai:1:"), "{out}");
    // A folder named that is not there is an error, not the built-in rules checked instead.
    let missing = format!("{dir}-typo");
    for args in [["rules", "check", &missing], ["rules", "test", &missing]] {
        let (ok, out) = run(&args);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains("no such folder of rule files"), "{out}");
    }
}

#[test]
fn serve_refuses_to_start_on_rules_that_do_not_compile() {
    let setup = Setup::new().rules(&[(
        "10-a.rhai",
        "fn on_alert(alert, ticket) { ticket.group = ; }",
    )]);
    let data = setup.data_dir();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--rules-dir",
        ])
        .arg(setup.rules_dir.as_ref().unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("10-a.rhai:1:"));
}

#[test]
fn rules_check_reads_the_calendars_of_the_configuration_it_is_given() {
    let setup = Setup::new()
        .config("[calendars.office]\ntimezone = \"Europe/Berlin\"\nmon = \"09:00-17:00\"\n")
        .rules(&[(
            "10-hours.rhai",
            "fn on_alert(alert, ticket) {\n  let open = in_business_hours(\"office\");\n}",
        )]);
    let config = setup.config.as_ref().unwrap().to_str().unwrap();
    let dir = setup.rules_dir.as_ref().unwrap().to_str().unwrap();
    // Without the file the calendar is unknown, and the error says what it was checked against.
    let (ok, out) = run(&["rules", "check", dir]);
    assert!(!ok, "{out}");
    assert!(out.contains("10-hours.rhai:2:"), "{out}");
    assert!(out.contains("calendar `office` is not configured"), "{out}");
    assert!(
        out.contains("embedded defaults; pass --config FILE"),
        "{out}"
    );
    let (ok, out) = run(&["rules", "check", dir, "--config", config]);
    assert!(ok, "{out}");
    assert!(out.contains("OK"), "{out}");
}
