//! The `ticket` a hook receives: reads show the ticket as decided so far, writes record
//! decisions (with the line they were made on) instead of changing anything.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use rhai::{Engine, EvalAltResult, ImmutableString, NativeCallContext, Position};

use crate::rules::{Decided, Decision, Provenance};
use crate::tickets::{Kind, Level, PriorityMatrix, Ticket};

/// The ticket fields a rule can read, with the decisions so far already applied.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TicketView {
    /// `None` while the event would open a new ticket.
    pub id: Option<String>,
    pub kind: String,
    pub state: String,
    pub title: String,
    pub description: String,
    pub group: Option<String>,
    pub assignee: Option<String>,
    pub impact: Option<Level>,
    pub urgency: Option<Level>,
    pub priority: Option<u8>,
    pub tags: BTreeSet<String>,
    pub key: Option<String>,
    pub suppressed: bool,
    /// Whether the ticket's alerts are flapping now; the engine sets it (it knows the time).
    pub flapping: bool,
    /// Custom fields, as decided so far.
    pub custom: BTreeMap<String, serde_json::Value>,
    /// The partner vendor the ticket is assigned to.
    pub vendor: Option<String>,
    /// Escalation level (0 until escalated), for rules that escalate step by step.
    pub escalation: u32,
    /// The SLA policy in force, if any.
    pub sla_policy: Option<String>,
    /// A manual priority stands: impact and urgency no longer recompute it.
    pub priority_override: bool,
}

thread_local! {
    /// The priority matrix in force, bound by the thread that runs hooks (per batch), so the
    /// view's priority follows impact and urgency as the engine's will.
    static MATRIX: RefCell<Option<PriorityMatrix>> = const { RefCell::new(None) };
}

/// Lets hooks run on this thread read priorities computed with `matrix`.
pub fn bind_matrix(matrix: PriorityMatrix) {
    MATRIX.with(|m| *m.borrow_mut() = Some(matrix));
}

fn matrix_priority(impact: Level, urgency: Level) -> Option<u8> {
    MATRIX.with(|m| m.borrow().as_ref().map(|m| m.priority(impact, urgency)))
}

impl TicketView {
    pub fn of(ticket: &Ticket) -> TicketView {
        TicketView {
            id: Some(ticket.id.to_string()),
            kind: ticket.kind().as_str().into(),
            state: ticket.state.as_str().into(),
            title: ticket.title.clone(),
            description: ticket.description.clone(),
            group: ticket.group.clone(),
            assignee: ticket.assignee.clone(),
            impact: Some(ticket.impact),
            urgency: Some(ticket.urgency),
            priority: Some(ticket.priority),
            tags: ticket.tags.clone(),
            key: ticket.correlation_key.clone(),
            suppressed: false,
            flapping: false,
            custom: ticket.custom.clone(),
            vendor: ticket.process.vendor.clone(),
            escalation: ticket.sla.escalation,
            sla_policy: ticket.sla.policy.clone(),
            priority_override: ticket.process.priority_override,
        }
    }

    /// A ticket about to be opened reads as it will be opened: impact and urgency medium
    /// unless decided, and the matrix's priority for them (not `()`).
    pub(super) fn completed(mut self) -> TicketView {
        if self.id.is_none() {
            self.impact.get_or_insert(Level::Medium);
            self.urgency.get_or_insert(Level::Medium);
            if self.priority.is_none() {
                self.reprioritise();
            }
        }
        self
    }

    /// The matrix's priority for the view's impact and urgency, unless overridden.
    fn reprioritise(&mut self) {
        if self.priority_override {
            return;
        }
        if let (Some(i), Some(u)) = (self.impact, self.urgency)
            && let Some(p) = matrix_priority(i, u)
        {
            self.priority = Some(p);
        }
    }

    /// Applies a decision to the view so later rules see it.
    fn apply(&mut self, d: &Decision) {
        match d {
            Decision::SetTitle { value } => self.title = value.clone(),
            Decision::SetDescription { value } => self.description = value.clone(),
            Decision::SetGroup { value } => self.group = Some(value.clone()),
            Decision::SetAssignee { value } => self.assignee = Some(value.clone()),
            Decision::SetImpact { value } => {
                self.impact = Some(*value);
                self.reprioritise();
            }
            Decision::SetUrgency { value } => {
                self.urgency = Some(*value);
                self.reprioritise();
            }
            Decision::AddTag { value } => {
                self.tags.insert(value.clone());
            }
            Decision::SetKey { value } => self.key = Some(value.clone()),
            Decision::Suppress { .. } => self.suppressed = true,
            Decision::SetPriority { value: Some(p) } => {
                self.priority = Some(*p);
                self.priority_override = true;
            }
            Decision::SetPriority { value: None } => {
                self.priority_override = false;
                self.reprioritise();
            }
            Decision::SetCustom { key, value } if value.is_null() => {
                self.custom.remove(key);
            }
            Decision::SetCustom { key, value } => {
                self.custom.insert(key.clone(), value.clone());
            }
            Decision::Transition { to, .. } => self.state = to.as_str().into(),
            Decision::Comment { .. }
            | Decision::Link { .. }
            | Decision::OpenTicket(_)
            | Decision::CapReached { .. } => {}
            Decision::SetVendor { value } => self.vendor = Some(value.clone()),
            Decision::Notify { .. } => {}
            Decision::Escalate => self.escalation += 1,
            Decision::RaisePriority => {
                self.priority = self.priority.map(|p| p.max(2) - 1);
                self.priority_override = true;
            }
            Decision::NotifyLead { .. } | Decision::NotifyPeople { .. } => {}
            Decision::SetSlaPolicy { value } => self.sla_policy = Some(value.clone()),
            Decision::SetKind { value } if self.id.is_none() => self.kind = value.as_str().into(),
            Decision::SetKind { .. } => {}
        }
    }
}

/// State shared between the handle clones Rhai makes.
#[derive(Debug)]
pub(super) struct HandleState {
    pub view: TicketView,
    pub decisions: Vec<Decided>,
    /// The rule file and hook now running, stamped on each decision.
    pub file: Arc<str>,
    pub hook: &'static str,
    /// Set by `ticket.stop()`: later rules do not run for this event.
    pub stop: bool,
}

/// The Rhai-facing handle. Clones share state, because Rhai passes custom types by value.
#[derive(Debug, Clone)]
pub struct TicketHandle(pub(super) Arc<Mutex<HandleState>>);

impl TicketHandle {
    pub(super) fn new(view: TicketView) -> TicketHandle {
        TicketHandle(Arc::new(Mutex::new(HandleState {
            view,
            decisions: Vec::new(),
            file: Arc::from(""),
            hook: "",
            stop: false,
        })))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HandleState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn decide(&self, decision: Decision, at: Position) {
        self.decide_as(decision, at, false);
    }

    /// A decision; `forced` ones apply even to fields a person set by hand.
    pub(super) fn decide_as(&self, decision: Decision, at: Position, forced: bool) {
        let mut s = self.lock();
        s.view.apply(&decision);
        let by = Provenance {
            file: s.file.clone(),
            hook: s.hook,
            line: at.line().map(|l| l as u32),
        };
        s.decisions.push(Decided {
            decision,
            by,
            forced,
        });
    }
}

pub(super) type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

fn level(value: &str, field: &str, at: Position) -> RhaiResult<Level> {
    value.parse::<Level>().map_err(|e| {
        Box::new(EvalAltResult::ErrorRuntime(
            format!("ticket.{field}: {e}").into(),
            at,
        ))
    })
}

pub(super) fn non_empty(value: &str, field: &str, at: Position) -> RhaiResult<String> {
    if value.trim().is_empty() {
        return Err(Box::new(EvalAltResult::ErrorRuntime(
            format!("ticket.{field} must not be empty").into(),
            at,
        )));
    }
    Ok(value.to_string())
}

fn opt(v: &Option<String>) -> rhai::Dynamic {
    v.clone()
        .map(rhai::Dynamic::from)
        .unwrap_or(rhai::Dynamic::UNIT)
}

/// Registers the `Ticket` type, its properties and methods.
pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<TicketHandle>("Ticket");

    engine.register_get("id", |h: &mut TicketHandle| opt(&h.lock().view.id));
    engine.register_get("is_new", |h: &mut TicketHandle| h.lock().view.id.is_none());
    engine.register_get("kind", |h: &mut TicketHandle| h.lock().view.kind.clone());
    engine.register_get("state", |h: &mut TicketHandle| h.lock().view.state.clone());
    engine.register_get("title", |h: &mut TicketHandle| h.lock().view.title.clone());
    engine.register_get("description", |h: &mut TicketHandle| {
        h.lock().view.description.clone()
    });
    engine.register_get("group", |h: &mut TicketHandle| opt(&h.lock().view.group));
    engine.register_get("assignee", |h: &mut TicketHandle| {
        opt(&h.lock().view.assignee)
    });
    engine.register_get("key", |h: &mut TicketHandle| opt(&h.lock().view.key));
    engine.register_get("flapping", |h: &mut TicketHandle| h.lock().view.flapping);
    engine.register_get("impact", |h: &mut TicketHandle| {
        opt(&h.lock().view.impact.map(|l| l.as_str().to_string()))
    });
    engine.register_get("urgency", |h: &mut TicketHandle| {
        opt(&h.lock().view.urgency.map(|l| l.as_str().to_string()))
    });
    engine.register_get("priority", |h: &mut TicketHandle| {
        h.lock()
            .view
            .priority
            .map(|p| rhai::Dynamic::from(p as i64))
            .unwrap_or(rhai::Dynamic::UNIT)
    });
    engine.register_get("tags", |h: &mut TicketHandle| {
        h.lock()
            .view
            .tags
            .iter()
            .cloned()
            .map(rhai::Dynamic::from)
            .collect::<rhai::Array>()
    });

    engine.register_fn(
        "force",
        |ctx: NativeCallContext,
         h: &mut TicketHandle,
         field: ImmutableString,
         v: ImmutableString|
         -> RhaiResult<()> {
            let at = ctx.call_position();
            let decision = match field.as_str() {
                "title" => Decision::SetTitle {
                    value: non_empty(&v, "title", at)?,
                },
                "description" => Decision::SetDescription {
                    value: v.to_string(),
                },
                "group" => Decision::SetGroup {
                    value: non_empty(&v, "group", at)?,
                },
                "assignee" => Decision::SetAssignee {
                    value: non_empty(&v, "assignee", at)?,
                },
                "impact" => Decision::SetImpact {
                    value: level(&v, "impact", at)?,
                },
                "urgency" => Decision::SetUrgency {
                    value: level(&v, "urgency", at)?,
                },
                other => {
                    return Err(Box::new(EvalAltResult::ErrorRuntime(
                        format!(
                            "ticket.force: `{other}` is not a field set by hand; expected one of {}",
                            crate::engine::apply::BY_HAND.join(", ")
                        )
                        .into(),
                        at,
                    )));
                }
            };
            h.decide_as(decision, at, true);
            Ok(())
        },
    );
    engine.register_fn(
        "set$title",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = non_empty(&v, "title", ctx.call_position())?;
            h.decide(Decision::SetTitle { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "set$description",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| {
            h.decide(
                Decision::SetDescription {
                    value: v.to_string(),
                },
                ctx.call_position(),
            );
        },
    );
    engine.register_fn(
        "set$group",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = non_empty(&v, "group", ctx.call_position())?;
            h.decide(Decision::SetGroup { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "set$assignee",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = non_empty(&v, "assignee", ctx.call_position())?;
            h.decide(Decision::SetAssignee { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "set$impact",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = level(&v, "impact", ctx.call_position())?;
            h.decide(Decision::SetImpact { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "set$urgency",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = level(&v, "urgency", ctx.call_position())?;
            h.decide(Decision::SetUrgency { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "set$key",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = non_empty(&v, "key", ctx.call_position())?;
            h.decide(Decision::SetKey { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "set$kind",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = v.parse::<Kind>().map_err(|e| {
                Box::new(EvalAltResult::ErrorRuntime(
                    format!("ticket.kind: {e}").into(),
                    ctx.call_position(),
                ))
            })?;
            h.decide(Decision::SetKind { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "add_tag",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = non_empty(&v, "tag", ctx.call_position())?;
            h.decide(Decision::AddTag { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "suppress",
        |ctx: NativeCallContext, h: &mut TicketHandle, reason: ImmutableString| {
            h.decide(
                Decision::Suppress {
                    reason: reason.to_string(),
                },
                ctx.call_position(),
            );
        },
    );
    engine.register_fn("stop", |h: &mut TicketHandle| h.lock().stop = true);
    crate::rules::actions::register(engine);
    engine.register_get("vendor", |h: &mut TicketHandle| opt(&h.lock().view.vendor));
    engine.register_fn(
        "set$vendor",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = non_empty(&v, "vendor", ctx.call_position())?;
            h.decide(Decision::SetVendor { value }, ctx.call_position());
            Ok(())
        },
    );
    engine.register_fn(
        "notify",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let vendor = non_empty(&v, "notify", ctx.call_position())?;
            h.decide(Decision::Notify { vendor }, ctx.call_position());
            Ok(())
        },
    );
    register_escalation(engine);
    register_notify_people(engine);
}

/// `ticket.notify(person_or_group, template)`, with a third argument: a message (the
/// template's `note`) or a map of values (its `vars`).
fn register_notify_people(engine: &mut Engine) {
    fn decide(
        ctx: &NativeCallContext,
        h: &TicketHandle,
        to: &str,
        template: &str,
        vars: serde_json::Value,
    ) -> RhaiResult<()> {
        let to = non_empty(to, "notify: person or group", ctx.call_position())?;
        let template = non_empty(template, "notify: template", ctx.call_position())?;
        h.decide(
            Decision::NotifyPeople { to, template, vars },
            ctx.call_position(),
        );
        Ok(())
    }
    engine.register_fn(
        "notify",
        |ctx: NativeCallContext, h: &mut TicketHandle, to: ImmutableString, t: ImmutableString| {
            decide(&ctx, h, &to, &t, serde_json::json!({}))
        },
    );
    engine.register_fn(
        "notify",
        |ctx: NativeCallContext,
         h: &mut TicketHandle,
         to: ImmutableString,
         t: ImmutableString,
         note: ImmutableString| {
            decide(
                &ctx,
                h,
                &to,
                &t,
                serde_json::json!({ "note": note.as_str() }),
            )
        },
    );
    engine.register_fn(
        "notify",
        |ctx: NativeCallContext,
         h: &mut TicketHandle,
         to: ImmutableString,
         t: ImmutableString,
         vars: rhai::Map|
         -> RhaiResult<()> {
            let vars: serde_json::Value = rhai::serde::from_dynamic(&rhai::Dynamic::from_map(vars))
                .map_err(|e| {
                    Box::new(EvalAltResult::ErrorRuntime(
                        format!("notify: the values for the template: {e}").into(),
                        ctx.call_position(),
                    ))
                })?;
            decide(&ctx, h, &to, &t, vars)
        },
    );
}

/// Escalation and SLA policy: `ticket.escalate()`, `ticket.raise_priority()`,
/// `ticket.notify_lead(message)`, `ticket.sla_policy = "name"`, and their reads.
fn register_escalation(engine: &mut Engine) {
    engine.register_get("escalation", |h: &mut TicketHandle| {
        i64::from(h.lock().view.escalation)
    });
    engine.register_get("sla_policy", |h: &mut TicketHandle| {
        opt(&h.lock().view.sla_policy)
    });
    engine.register_fn(
        "escalate",
        |ctx: NativeCallContext, h: &mut TicketHandle| {
            h.decide(Decision::Escalate, ctx.call_position());
        },
    );
    engine.register_fn(
        "raise_priority",
        |ctx: NativeCallContext, h: &mut TicketHandle| {
            h.decide(Decision::RaisePriority, ctx.call_position());
        },
    );
    engine.register_fn(
        "notify_lead",
        |ctx: NativeCallContext, h: &mut TicketHandle, message: ImmutableString| {
            h.decide(
                Decision::NotifyLead {
                    message: message.to_string(),
                },
                ctx.call_position(),
            );
        },
    );
    engine.register_fn(
        "set$sla_policy",
        |ctx: NativeCallContext, h: &mut TicketHandle, v: ImmutableString| -> RhaiResult<()> {
            let value = non_empty(&v, "sla_policy", ctx.call_position())?;
            h.decide(Decision::SetSlaPolicy { value }, ctx.call_position());
            Ok(())
        },
    );
}
