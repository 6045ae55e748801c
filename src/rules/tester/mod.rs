//! `itsmd rules test`: rule authors' tests. Each `*.toml` file in `<rules>/tests/` holds
//! cases; a case sends its inputs, in order, through a real engine (the daemon's code path)
//! on an in-memory store — nothing is committed anywhere — and compares the tickets it ends
//! with to what the case expects. Every input is parsed by the code the daemon parses it
//! with (see [`inputs`]); docs/rules.md ("Testing rules") describes the format, and its
//! examples are run by this module's tests.

mod expect;
mod inputs;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::engine::{self, EngineHandle};
use crate::event::EventBody;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::{MemoryStore, Store, Tree, layout};
use crate::tickets::TicketId;
use expect::Expect;
use inputs::{Input, Step};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Configuration text for these cases (groups, matrix, …) instead of the runner's.
    #[serde(default)]
    config: Option<String>,
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    events: Vec<Input>,
    /// Each event's outcome, in order (opened, updated, suppressed, recorded, …); an input
    /// carrying several alerts, or a clock event firing several timers, gives one each.
    #[serde(default)]
    outcomes: Option<Vec<String>>,
    #[serde(default)]
    expect: Vec<Expect>,
    /// Every ticket the case ends with, exactly, opened by an input or by a rule.
    #[serde(default)]
    opened: Option<Vec<TicketId>>,
    /// Where the case's manual clock starts (RFC 3339); the time the case starts when absent.
    #[serde(default)]
    now: Option<jiff::Timestamp>,
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub file: String,
    pub name: String,
    /// Empty when the case passed; else each mismatch as "expected … got …".
    pub failures: Vec<String>,
}

/// Runs every test file of `rules_dir/tests` against the rules in `rules_dir`.
pub fn run_dir(config: &Config, rules_dir: &Path) -> anyhow::Result<Vec<CaseResult>> {
    // Each case's engine logs inside this span and counts into a registry of its own.
    let span = tracing::info_span!("rules_test", dir = %rules_dir.display());
    let _entered = span.enter();
    let tests = rules_dir.join("tests");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&tests) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => anyhow::bail!("cannot read {}: {e}", tests.display()),
    };
    files.sort();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start a runtime: {e}"))?;
    let mut results = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let file: File =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let own = match &file.config {
            Some(text) => {
                let mut c = crate::config::parse(text, &format!("{name} config"))?;
                c.rules.dir = rules_dir.to_path_buf();
                Some(c)
            }
            None => None,
        };
        for case in file.case {
            let failures =
                runtime.block_on(run_case(own.as_ref().unwrap_or(config), rules_dir, &case))?;
            results.push(CaseResult {
                file: name.clone(),
                name: case.name,
                failures,
            });
        }
    }
    Ok(results)
}

async fn run_case(config: &Config, rules_dir: &Path, case: &Case) -> anyhow::Result<Vec<String>> {
    let rules = Rules::load((&config.rules).into(), rules_dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("rules do not compile:\n  {}", list.join("\n  "))
    })?;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // A manual clock: time moves only where the case says (`at`, `after`, `clock`), so rules
    // that ask `now()` or use windows decide the same on every run.
    let clock = Arc::new(ManualClock::new(
        case.now.unwrap_or_else(jiff::Timestamp::now),
    ));
    let (engine, thread) = engine::start(
        config,
        store.clone(),
        rules,
        clock.clone(),
        Arc::new(Metrics::new()),
        tracing::Span::current(),
    )?;
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for (i, input) in case.events.iter().enumerate() {
        if let Some(at) = input.at {
            clock.set(at);
        }
        if let Some(by) = input.after {
            clock.advance(by);
        }
        // An input its intake refuses fails this case (naming the field) and ends it: the
        // rest of the case and its expectations assume that input went in.
        let step = match input.step(config, i + 1, clock.now()) {
            Ok(step) => step,
            Err(e) => {
                failures.push(format!("event {}: the input is refused: {e}", i + 1));
                drop(engine);
                thread.join().await;
                return Ok(failures);
            }
        };
        match step {
            Step::Submit(bodies) => {
                submit(&engine, bodies, i + 1, &mut outcomes, &mut failures).await?;
            }
            Step::Clock(until) => {
                fire_timers(
                    &engine,
                    &*store,
                    &clock,
                    until,
                    i + 1,
                    &mut outcomes,
                    &mut failures,
                )
                .await?;
            }
        }
    }
    drop(engine);
    thread.join().await;
    if let Some(want) = &case.outcomes
        && *want != outcomes
    {
        failures.push(format!("outcomes: expected {want:?}, got {outcomes:?}"));
    }
    if let Some(want) = &case.opened {
        let mut have = Vec::new();
        for item in store.range(Tree::Tickets, Bound::Unbounded, Bound::Unbounded) {
            have.extend(TicketId::from_key(&item?.0));
        }
        let mut want = want.clone();
        want.sort();
        if want != have {
            let show = |ids: &[TicketId]| ids.iter().map(ToString::to_string).collect::<Vec<_>>();
            failures.push(format!(
                "opened: expected {:?}, got {:?}",
                show(&want),
                show(&have)
            ));
        }
    }
    for e in &case.expect {
        failures.extend(e.check(&*store)?);
    }
    Ok(failures)
}

/// Submits the events of one input together, recording each one's outcome.
async fn submit(
    engine: &EngineHandle,
    bodies: Vec<EventBody>,
    n: usize,
    outcomes: &mut Vec<String>,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let count = bodies.len();
    match engine.submit_many(bodies).await {
        Ok(receipts) => {
            for r in receipts {
                outcomes.push(outcome_name(r.outcome)?);
            }
        }
        Err(e) => {
            failures.push(format!("event {n}: refused: {e}"));
            outcomes.extend(std::iter::repeat_n("refused".to_string(), count));
        }
    }
    Ok(())
}

/// Runs the clock to `until` as the daemon's timer tasks would see it: every SLA timer and
/// alert expiry row due by then fires, earliest first, at its due time (or now, when it was
/// already overdue), each as its own event; then the clock stops at `until`.
async fn fire_timers(
    engine: &EngineHandle,
    store: &dyn Store,
    clock: &ManualClock,
    until: jiff::Timestamp,
    n: usize,
    outcomes: &mut Vec<String>,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    // Each firing deletes or re-arms its row, so this ends; the bound guards a bug.
    for _ in 0..MAX_TIMERS {
        let sla = layout::sla_timers::due(store, until, 1)?.into_iter().next();
        let expiry = layout::alert_expiry::due(store, until, 1)?
            .into_iter()
            .next();
        let (due, body) = match (sla, expiry) {
            (Some(t), Some(x)) if x.due < t.due => (x.due, EventBody::AlertExpiry(x)),
            (Some(t), _) => (t.due, EventBody::Clock(t)),
            (None, Some(x)) => (x.due, EventBody::AlertExpiry(x)),
            (None, None) => {
                clock.set(until.max(clock.now()));
                return Ok(());
            }
        };
        clock.set(due.max(clock.now()));
        submit(engine, vec![body], n, outcomes, failures).await?;
    }
    anyhow::bail!("event {n}: more than {MAX_TIMERS} timers fell due")
}

/// Most timers one clock event fires.
const MAX_TIMERS: usize = 10_000;

fn outcome_name(outcome: layout::Outcome) -> anyhow::Result<String> {
    Ok(serde_json::to_value(outcome)?
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = env!("CARGO_MANIFEST_DIR");

    /// The fenced blocks of `lang` in `text`, in order.
    fn blocks<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
        let fence = format!("```{lang}\n");
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(&fence) {
            let body = &rest[start + fence.len()..];
            let Some(end) = body.find("\n```") else { break };
            out.push(&body[..=end]);
            rest = &body[end + 4..];
        }
        out
    }

    /// A rules folder with the shipped rules plus `extra` (name, text), and `tests/t.toml`.
    fn folder(extra: &[(&str, &str)], test: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(Path::new(ROOT).join("rules")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "rhai") {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        for (name, text) in extra {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        std::fs::write(dir.path().join("tests/t.toml"), test).unwrap();
        dir
    }

    /// Every case of docs/rules.md's worked example, exactly as written, with the section's
    /// configuration and rule, passes; and there is one for each input the format has.
    #[test]
    fn the_documented_examples_pass() {
        let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/rules.md")).unwrap();
        let section = &doc[doc.find("## Testing rules").unwrap()..];
        let section = &section[..section[3..].find("\n## ").unwrap()];
        let config = blocks(section, "toml")
            .into_iter()
            .find(|b| b.starts_with("config = \"\"\""))
            .unwrap();
        let worked = &section[section.find("### Worked example").unwrap()..];
        let rule = blocks(worked, "rhai");
        assert_eq!(rule.len(), 1);
        let cases = blocks(worked, "toml");
        let test = format!("{config}\n{}", cases.join("\n"));
        for input in [
            "prometheus =",
            "alertmanager =",
            "pagerduty =",
            "mail =",
            "callback =",
            "clock =",
            "alert =",
        ] {
            assert!(test.contains(input), "no documented example of {input}");
        }
        let dir = folder(&[("50-docs.rhai", rule[0])], &test);
        let results = run_dir(&Config::default(), dir.path()).unwrap();
        assert_eq!(results.len(), cases.len());
        for r in &results {
            assert!(r.failures.is_empty(), "{}: {:#?}", r.name, r.failures);
        }
    }

    /// Expectations fail when the ticket differs, each naming what it expected and got.
    #[test]
    fn each_expectation_reports_its_mismatch() {
        let test = r#"
[[case]]
name = "wrong on purpose"
outcomes = ["opened", "opened"]
opened = ["INC-000001"]
[[case.events]]
generic = '{"source": "t", "status": "firing", "severity": "warning", "summary": "a"}'
[[case.events]]
clock = { by = "1h" }
[[case.expect]]
ticket = "INC-000001"
fields = { group = "dba" }
transitions = ["resolved"]
links = ["caused_by PRB-000001"]
notified = ["acme"]
leads_notified = ["olivia"]
"#;
        let dir = folder(&[], test);
        let results = run_dir(&Config::default(), dir.path()).unwrap();
        let failures = &results[0].failures;
        let want = [
            "outcomes: expected [\"opened\", \"opened\"], got [\"opened\"]",
            "INC-000001.group: expected \"dba\", got \"operations\"",
            "INC-000001.transitions: expected [\"resolved\"], got []",
            "INC-000001.links: expected [\"caused_by PRB-000001\"], got []",
            "INC-000001: expected a message to acme; none was queued",
            "INC-000001: expected lead \"olivia\" to be notified; notified: []",
        ];
        for w in want {
            assert!(
                failures.iter().any(|f| f == w),
                "{w:?} not in {failures:#?}"
            );
        }
        assert_eq!(failures.len(), want.len(), "{failures:#?}");
    }

    /// A key the format does not know is an error naming it, wherever it is.
    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        for (bad, key) in [
            (
                "[[case]]\nname = \"x\"\nexpct = []\n[[case.events]]\nclock = { by = \"1h\" }\n",
                "expct",
            ),
            (
                "[[case]]\nname = \"x\"\n[[case.events]]\nmial = \"From: a\"\n",
                "mial",
            ),
            (
                "[[case]]\nname = \"x\"\n[[case.events]]\nclock = { by = \"1h\", at = \"x\" }\n",
                "at",
            ),
            (
                "[[case]]\nname = \"x\"\n[[case.events]]\nclock = { by = \"1h\" }\n[[case.expect]]\nticket = \"INC-000001\"\nlinked = []\n",
                "linked",
            ),
            (
                "[[case]]\nname = \"x\"\n[[case.events]]\nalert = { source = \"s\", status = \"firing\", severity = \"warning\", summary = \"q\", lables = { a = \"b\" } }\n",
                "lables",
            ),
        ] {
            let dir = folder(&[], bad);
            let e = run_dir(&Config::default(), dir.path())
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
        let dir = folder(
            &[],
            "[[case]]\nname = \"x\"\n[[case.events]]\nafter = \"1h\"\n",
        );
        let results = run_dir(&Config::default(), dir.path()).unwrap();
        let e = results[0].failures.join("\n");
        assert!(
            e.contains("event 1: the input is refused: give exactly one of"),
            "{e}"
        );
        assert!(e.contains("got none"), "{e}");
    }

    /// An input the daemon would refuse fails the case with the daemon's own reason.
    #[test]
    fn a_body_the_intake_refuses_fails_with_its_reason() {
        let dir = folder(
            &[],
            "[[case]]\nname = \"x\"\n[[case.events]]\nprometheus = '[{\"labels\": {}}]'\n\
             [[case]]\nname = \"y\"\n[[case.events]]\nclock = { by = \"1h\" }\n",
        );
        let results = run_dir(&Config::default(), dir.path()).unwrap();
        let e = results[0].failures.join("\n");
        assert!(
            e.contains("event 1: the input is refused: `[0].labels` must have at least one label"),
            "{e}"
        );
        // The other cases of the file still run.
        assert_eq!(results.len(), 2);
        assert!(results[1].failures.is_empty(), "{:?}", results[1].failures);
    }
}
