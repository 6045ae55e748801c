//! Running hooks over the active rule set.

use std::sync::Arc;
use std::time::Instant;

use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Scope};

use crate::alerts::Alert;
use crate::mail::Mail;
use crate::metrics::Metrics;
use crate::metrics::RuleLabels;
use crate::rules::CompileError;
use crate::rules::Decided;
use crate::rules::RuleSet;
use crate::rules::TicketView;
use crate::rules::handle;
use crate::rules::handle::TicketHandle;
use crate::rules::sandbox;
use crate::rules::sandbox::Limits;
use crate::rules::sandbox::TIME_BUDGET_EXCEEDED;
use crate::tickets::TicketId;

/// The rule engine: the sandboxed Rhai engine and the active rule set.
pub struct Rules {
    /// Configured once; shared by every file of the set.
    engine: Engine,
    /// The active set. An `Arc` so a reload can swap it while a dry run holds the old one.
    set: Arc<RuleSet>,
    /// Kept to report the budget in failure messages.
    limits: Limits,
}

/// A rule that failed while handling one event.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFailure {
    pub file: Arc<str>,
    pub hook: &'static str,
    pub line: Option<u32>,
    pub message: String,
}

/// What running one hook over the whole set produced.
#[derive(Debug, Clone, Default)]
pub struct HookRun {
    /// Decisions of the rules that succeeded, in the order made.
    pub decisions: Vec<Decided>,
    /// Rules that failed; their decisions are not in `decisions`.
    pub failures: Vec<RuleFailure>,
    /// The ticket as the decisions left it.
    pub view: TicketView,
}

impl Rules {
    /// Builds the sandbox and compiles the rules in `dir` (built-in rules if it is missing).
    pub fn load(limits: Limits, dir: &std::path::Path) -> Result<Rules, Vec<CompileError>> {
        let engine = engine(&limits);
        let set = Arc::new(RuleSet::load(&engine, dir)?);
        Ok(Rules {
            engine,
            set,
            limits,
        })
    }

    /// Builds the sandbox around rules given as (file name, text) pairs.
    pub fn from_sources(
        limits: Limits,
        sources: Vec<(String, String)>,
    ) -> Result<Rules, Vec<CompileError>> {
        let engine = engine(&limits);
        let set = Arc::new(RuleSet::compile(&engine, "inline", sources)?);
        Ok(Rules {
            engine,
            set,
            limits,
        })
    }

    pub fn set(&self) -> &Arc<RuleSet> {
        &self.set
    }

    pub fn version(&self) -> &str {
        &self.set.version
    }

    /// Whether any rule file defines `hook` (so the engine can skip building its arguments).
    pub fn has_hook(&self, hook: &str) -> bool {
        self.set.files.iter().any(|f| f.hooks.contains(&hook))
    }

    /// Runs every `on_ticket` hook after a ticket changed; `change` says what changed.
    /// Each hook's evaluations, errors, decisions and time count into `metrics`.
    pub fn on_ticket(&self, metrics: &Metrics, view: TicketView, change: Map) -> HookRun {
        let change = Dynamic::from_map(change);
        self.run(metrics, "on_ticket", view, |h| {
            vec![Dynamic::from(h), change.clone()]
        })
    }

    /// Runs every `on_alert` hook for `alert` on a ticket that currently looks like `view`.
    pub fn on_alert(&self, metrics: &Metrics, alert: &Alert, view: TicketView) -> HookRun {
        let alert = Dynamic::from_map(alert_map(alert));
        self.run(metrics, "on_alert", view, |h| {
            vec![alert.clone(), Dynamic::from(h)]
        })
    }

    /// Runs every `on_clock` hook for an SLA warning or breach (`clock`: name, stage,
    /// percent, policy, due) on a ticket that currently looks like `view`.
    pub fn on_clock(&self, metrics: &Metrics, clock: Map, view: TicketView) -> HookRun {
        let clock = Dynamic::from_map(clock);
        self.run(metrics, "on_clock", view, |h| {
            vec![Dynamic::from(h), clock.clone()]
        })
    }

    /// Runs every `on_mail` hook for `mail` on a ticket that currently looks like `view`;
    /// `thread` is the ticket the mail answers, when the engine found one.
    pub fn on_mail(
        &self,
        metrics: &Metrics,
        mail: &Mail,
        thread: Option<TicketId>,
        view: TicketView,
    ) -> HookRun {
        let mail = Dynamic::from_map(crate::mail::rules_view::mail_map(mail, thread));
        self.run(metrics, "on_mail", view, |h| {
            vec![mail.clone(), Dynamic::from(h)]
        })
    }

    fn run(
        &self,
        m: &Metrics,
        hook: &'static str,
        view: TicketView,
        args: impl Fn(TicketHandle) -> Vec<Dynamic>,
    ) -> HookRun {
        let handle = TicketHandle::new(view.completed());
        let mut failures = Vec::new();
        for file in self.set.files.iter().filter(|f| f.hooks.contains(&hook)) {
            let snapshot = {
                let mut s = handle.lock();
                s.file = file.name.clone();
                s.hook = hook;
                (s.view.clone(), s.decisions.len())
            };
            let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
            let mut scope = Scope::new();
            let started = Instant::now();
            let result = sandbox::with_budget(self.limits.time_budget, || {
                self.engine.call_fn_with_options::<Dynamic>(
                    options,
                    &mut scope,
                    &file.ast,
                    hook,
                    args(handle.clone()),
                )
            });
            let labels = RuleLabels {
                rule: file.name.to_string(),
                hook: hook.to_string(),
            };
            m.rule_evaluations.get_or_create(&labels).inc();
            m.rule_seconds
                .get_or_create(&labels)
                .inc_by(started.elapsed().as_secs_f64());
            if let Err(err) = result {
                m.rule_errors.get_or_create(&labels).inc();
                let mut s = handle.lock();
                s.view = snapshot.0;
                s.decisions.truncate(snapshot.1);
                s.stop = false;
                let inner = err.unwrap_inner();
                failures.push(RuleFailure {
                    file: file.name.clone(),
                    hook,
                    line: inner.position().line().map(|l| l as u32),
                    message: self.describe(inner),
                });
                continue;
            }
            let s = handle.lock();
            m.rule_decisions
                .get_or_create(&labels)
                .inc_by((s.decisions.len() - snapshot.1) as u64);
            if s.stop {
                break;
            }
        }
        let mut s = handle.lock();
        HookRun {
            decisions: std::mem::take(&mut s.decisions),
            failures,
            view: std::mem::take(&mut s.view),
        }
    }

    /// A failure in words, without Rhai's position suffix (the line is reported separately).
    fn describe(&self, err: &EvalAltResult) -> String {
        match err {
            EvalAltResult::ErrorRuntime(v, _) => format!("rule threw: {v}"),
            EvalAltResult::ErrorTerminated(v, _) if v.to_string() == TIME_BUDGET_EXCEEDED => {
                format!(
                    "time budget of {} ms exceeded",
                    self.limits.time_budget.as_millis()
                )
            }
            EvalAltResult::ErrorTooManyOperations(_) => {
                format!("operation limit of {} exceeded", self.limits.max_operations)
            }
            other => {
                let text = other.to_string();
                match text.rfind(" (line ") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                }
            }
        }
    }
}

fn engine(limits: &Limits) -> Engine {
    let mut engine = sandbox::engine(limits);
    handle::register(&mut engine);
    crate::rules::queries::register(&mut engine);
    crate::rules::time::register(&mut engine);
    engine
}

fn string_map<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Map {
    pairs
        .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
        .collect()
}

/// The read-only view of an alert a rule receives.
fn alert_map(a: &Alert) -> Map {
    let mut m = Map::new();
    m.insert("source".into(), a.source.clone().into());
    m.insert("key".into(), a.key.clone().into());
    m.insert("fingerprint".into(), a.fingerprint.clone().into());
    m.insert("status".into(), a.status.as_str().into());
    m.insert("severity".into(), a.severity.clone().into());
    m.insert("summary".into(), a.summary.clone().into());
    m.insert(
        "description".into(),
        a.description.clone().unwrap_or_default().into(),
    );
    m.insert(
        "labels".into(),
        Dynamic::from_map(string_map(a.labels.iter())),
    );
    m.insert(
        "annotations".into(),
        Dynamic::from_map(string_map(a.annotations.iter())),
    );
    m.insert(
        "starts_at".into(),
        a.starts_at
            .map(|t| Dynamic::from(t.to_string()))
            .unwrap_or(Dynamic::UNIT),
    );
    m.insert(
        "ends_at".into(),
        a.ends_at
            .map(|t| Dynamic::from(t.to_string()))
            .unwrap_or(Dynamic::UNIT),
    );
    m.insert("format".into(), a.format.as_str().into());
    m.insert("acknowledged".into(), a.acknowledged.into());
    m.insert(
        "generator_url".into(),
        a.generator_url
            .clone()
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT),
    );
    m
}
