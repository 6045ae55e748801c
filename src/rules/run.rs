//! Running hooks over the active rule set.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Scope};
use tracing::warn;

use crate::alerts::Alert;
use crate::mail::Mail;
use crate::metrics::{Metrics, RuleLabels};
use crate::rules::handle::TicketHandle;
use crate::rules::sandbox::{Limits, TIME_BUDGET_EXCEEDED};
use crate::rules::{CompileError, Decided, Decision, RuleSet, TicketView, handle, sandbox};
use crate::tickets::TicketId;

/// The rule engine: the sandboxed Rhai engine and the active rule set.
pub struct Rules {
    /// Configured once; shared by every file of the set.
    engine: Engine,
    /// The active set. An `Arc` so a reload can swap it while a dry run holds the old one.
    set: Arc<RuleSet>,
    /// Kept to report the budget in failure messages.
    limits: Limits,
    /// The per-event caps used so far and the strikes of each file (see [`Budget`]).
    budget: Mutex<Budget>,
}

/// What the rules may still do for the event being processed, and which files keep
/// exhausting what they may: a file with `disable_after` strikes (events on which it hit a
/// cap or ran out of operations or time) is disabled until the rules are reloaded (a reload
/// builds a new [`Rules`]).
#[derive(Debug, Default)]
struct Budget {
    /// Actions used for this event: comments, transitions, notifications, opened tickets.
    used: [u32; 4],
    /// Files struck on this event (one strike per file per event).
    struck: BTreeSet<Arc<str>>,
    strikes: BTreeMap<Arc<str>, u32>,
    disabled: BTreeSet<Arc<str>>,
}

/// The capped kinds of action, in the order of `Limits::caps` and `Budget::used`.
const CAPPED: [(&str, &str); 4] = [
    ("comments", "rules.max_comments_per_event"),
    ("transitions", "rules.max_transitions_per_event"),
    ("notifications", "rules.max_notifications_per_event"),
    ("opened tickets", "rules.max_opened_tickets_per_event"),
];

fn capped(d: &Decision) -> Option<usize> {
    match d {
        Decision::Comment { .. } => Some(0),
        Decision::Transition { .. } => Some(1),
        Decision::Notify { .. } | Decision::NotifyLead { .. } | Decision::NotifyPeople { .. } => {
            Some(2)
        }
        Decision::OpenTicket(_) => Some(3),
        _ => None,
    }
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
            budget: Mutex::default(),
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
            budget: Mutex::default(),
        })
    }

    fn budget(&self) -> MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new event: the per-event caps start again (strikes and disabled files stay).
    pub fn begin_event(&self) {
        let mut b = self.budget();
        b.used = [0; 4];
        b.struck.clear();
    }

    /// Rule files disabled for exhausting their budget, until the next reload.
    pub fn disabled(&self) -> Vec<String> {
        self.budget()
            .disabled
            .iter()
            .map(|f| f.to_string())
            .collect()
    }

    /// One strike for `file` on this event (at most one per event); disables it at the
    /// threshold.
    fn strike(&self, file: &Arc<str>, why: &str) {
        let mut b = self.budget();
        if self.limits.disable_after == 0 || !b.struck.insert(file.clone()) {
            return;
        }
        let strikes = {
            let n = b.strikes.entry(file.clone()).or_default();
            *n += 1;
            *n
        };
        if strikes >= self.limits.disable_after && b.disabled.insert(file.clone()) {
            warn!(rule = %file, strikes, last = why, "Rule disabled until the next reload: it kept exhausting its budget.");
        }
    }

    /// Drops the decisions of `file` from `from` on that exceed the event's caps; the first
    /// one dropped of each kind becomes a [`Decision::CapReached`], which the engine writes to
    /// the ticket's history.
    fn enforce_caps(&self, file: &Arc<str>, decisions: &mut Vec<Decided>, from: usize) {
        let mut kept = Vec::with_capacity(decisions.len() - from);
        let mut hit = None;
        for d in decisions.drain(from..) {
            let Some(kind) = capped(&d.decision) else {
                kept.push(d);
                continue;
            };
            let mut b = self.budget();
            let limit = self.limits.caps[kind];
            if b.used[kind] < limit {
                b.used[kind] += 1;
                kept.push(d);
                continue;
            }
            // Only the first of a kind this event says so; later ones are dropped quietly.
            if b.used[kind] == limit {
                b.used[kind] += 1;
                let (what, key) = CAPPED[kind];
                hit = Some(what);
                warn!(rule = %file, hook = d.by.hook, line = d.by.line, what, limit, setting = key, "Rule reached a per-event cap; the rest of that kind for this event was dropped.");
                kept.push(Decided {
                    decision: Decision::CapReached { what, limit },
                    by: d.by,
                    forced: false,
                });
            }
        }
        decisions.extend(kept);
        if let Some(what) = hit {
            self.strike(file, what);
        }
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
    /// Runs every `on_alert` hook; `action` is what the event does: "trigger",
    /// "acknowledge", "resolve" or "resend" (a firing alert the ticket already has firing).
    pub fn on_alert(
        &self,
        metrics: &Metrics,
        alert: &Alert,
        action: &str,
        view: TicketView,
    ) -> HookRun {
        let mut map = alert_map(alert);
        map.insert("action".into(), action.into());
        map.insert("expired".into(), alert.expired.is_some().into());
        let alert = Dynamic::from_map(map);
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
            if self.budget().disabled.contains(&file.name) {
                continue;
            }
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
                if matches!(
                    inner,
                    EvalAltResult::ErrorTooManyOperations(_) | EvalAltResult::ErrorTerminated(..)
                ) {
                    self.strike(&file.name, "budget exhausted");
                }
                failures.push(RuleFailure {
                    file: file.name.clone(),
                    hook,
                    line: inner.position().line().map(|l| l as u32),
                    message: self.describe(inner),
                });
                continue;
            }
            let mut s = handle.lock();
            self.enforce_caps(&file.name, &mut s.decisions, snapshot.1);
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
pub(super) fn alert_map(a: &Alert) -> Map {
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
