//! The shipped English mail templates (`templates/`), compiled once with minijinja: a
//! `.subject` and a `.txt` per mail, and for staff notifications an `.html` that
//! autoescapes (minijinja's default by file name), so ticket text cannot inject markup.

use std::sync::OnceLock;

use minijinja::Environment;
use serde::Serialize;

use crate::tickets::Ticket;

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {reason}")]
pub struct TemplateError {
    name: String,
    reason: String,
}

const TEMPLATES: [(&str, &str); 15] = [
    (
        "assigned.subject",
        include_str!("templates/assigned.subject"),
    ),
    (
        "escalated.subject",
        include_str!("templates/escalated.subject"),
    ),
    (
        "sla_breached.subject",
        include_str!("templates/sla_breached.subject"),
    ),
    (
        "p1_opened.subject",
        include_str!("templates/p1_opened.subject"),
    ),
    (
        "lead_notified.subject",
        include_str!("templates/lead_notified.subject"),
    ),
    ("notice.txt", include_str!("templates/notice.txt")),
    ("notice.html", include_str!("templates/notice.html")),
    (
        "caller_acknowledged.subject",
        include_str!("templates/caller_acknowledged.subject"),
    ),
    (
        "caller_acknowledged.txt",
        include_str!("templates/caller_acknowledged.txt"),
    ),
    (
        "caller_commented.subject",
        include_str!("templates/caller_commented.subject"),
    ),
    (
        "caller_commented.txt",
        include_str!("templates/caller_commented.txt"),
    ),
    (
        "caller_resolved.subject",
        include_str!("templates/caller_resolved.subject"),
    ),
    (
        "caller_resolved.txt",
        include_str!("templates/caller_resolved.txt"),
    ),
    (
        "caller_closed.subject",
        include_str!("templates/caller_closed.subject"),
    ),
    (
        "caller_closed.txt",
        include_str!("templates/caller_closed.txt"),
    ),
];

fn env() -> Result<&'static Environment<'static>, TemplateError> {
    static ENV: OnceLock<Result<Environment<'static>, (String, String)>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .map_err(|e| (name.to_string(), e.to_string()))?;
        }
        Ok(env)
    })
    .as_ref()
    .map_err(|(name, reason)| TemplateError {
        name: name.clone(),
        reason: reason.clone(),
    })
}

/// Renders the shipped template `name` with `ctx`.
pub fn render(name: &str, ctx: &minijinja::Value) -> Result<String, TemplateError> {
    env()?
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| TemplateError {
            name: name.to_string(),
            reason: e.to_string(),
        })
}

/// What the templates see of a ticket.
#[derive(Serialize)]
struct TicketFacts<'a> {
    id: String,
    title: &'a str,
    state: &'a str,
    priority: u8,
    group: Option<&'a str>,
    assignee: Option<&'a str>,
    escalation: u32,
}

/// `ticket` in a template's context.
pub fn facts(t: &Ticket) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(&TicketFacts {
        id: t.id.to_string(),
        title: &t.title,
        state: t.state.as_str(),
        priority: t.priority,
        group: t.group.as_deref(),
        assignee: t.assignee.as_deref(),
        escalation: t.sla.escalation,
    }))
}
