//! A rule's `ticket.notify(person_or_group, template, ...)`: who it names (a configured
//! person, or every member and the lead of a group), the check that fails the rule when the
//! person, group or template is unknown, and the `notified` history change the decision
//! becomes. The notification itself is written by the mail-out step from that change, in
//! the same commit ([`crate::mail::outbound::people`]).

use serde_json::{Value, json};
use tracing::info;

use crate::engine::Settings;
use crate::engine::batch::Engine;
use crate::metrics::RuleLabels;
use crate::rules::{Decision, HookRun, RuleFailure};
use crate::tickets::{FieldChange, Ticket};

/// The people `to` names: a group's members and lead, or the person; `None` when it is
/// neither a group nor a person the configuration knows (a group member, a lead, or a name
/// with an address in `[smtp.people]`).
pub(crate) fn people_of(to: &str, s: &Settings) -> Option<Vec<String>> {
    if let Some(g) = s.groups.get(to) {
        let mut out = g.members.clone();
        if let Some(lead) = &g.lead
            && !out.contains(lead)
        {
            out.push(lead.clone());
        }
        return Some(out);
    }
    let in_groups = s
        .groups
        .0
        .values()
        .any(|g| g.members.iter().any(|m| m == to) || g.lead.as_deref() == Some(to));
    let addressed = s.smtp.as_ref().is_some_and(|m| m.people.contains_key(to));
    (in_groups || addressed).then(|| vec![to.to_string()])
}

/// Why a `NotifyPeople` decision cannot be carried out, if it cannot.
fn unknown(to: &str, template: &str, s: &Settings) -> Option<String> {
    if people_of(to, s).is_none() {
        return Some(format!(
            "notify: `{to}` is neither a configured group ({}) nor a configured person",
            s.groups.names()
        ));
    }
    if !s.templates.is_notification(template) {
        return Some(format!(
            "notify: template `{template}` is not known; notification templates: {}",
            s.templates.notifications().join(", ")
        ));
    }
    None
}

impl Engine {
    /// Rule decisions naming an unknown person, group or template fail their rule (its
    /// decisions are dropped, like any rule error).
    pub(crate) fn vet_people(&self, run: &mut HookRun) {
        let mut failed: Vec<RuleFailure> = Vec::new();
        for d in &run.decisions {
            if let Decision::NotifyPeople { to, template, .. } = &d.decision
                && let Some(message) = unknown(to, template, &self.settings)
                && !failed
                    .iter()
                    .any(|f| f.file == d.by.file && f.hook == d.by.hook)
            {
                failed.push(RuleFailure {
                    file: d.by.file.clone(),
                    hook: d.by.hook,
                    line: d.by.line,
                    message,
                });
            }
        }
        for f in &failed {
            self.metrics
                .rule_errors
                .get_or_create(&RuleLabels {
                    rule: f.file.to_string(),
                    hook: f.hook.to_string(),
                })
                .inc();
            run.decisions
                .retain(|d| !(d.by.file == f.file && d.by.hook == f.hook));
        }
        run.failures.extend(failed);
    }
}

/// Applies a `NotifyPeople` decision: a `notified` change naming the people, the template
/// and the rule's values; false for every other decision.
pub(crate) fn apply_decision(
    t: &Ticket,
    d: &Decision,
    s: &Settings,
    changes: &mut Vec<FieldChange>,
    notes: &mut Vec<String>,
) -> bool {
    let Decision::NotifyPeople { to, template, vars } = d else {
        return false;
    };
    // Vetted before it got here; a reload in between finds nobody.
    let people = people_of(to, s).unwrap_or_default();
    info!(ticket = %t.id, to = %to, template = %template, people = people.len(), "Rule notification.");
    notes.push(format!("`{to}` notified with template `{template}`"));
    changes.push(FieldChange {
        field: "notified".into(),
        old: Value::Null,
        new: json!({ "to": to, "template": template, "people": people, "vars": vars }),
    });
    true
}

/// `itsmd rules check`: every `notify(TO, "TEMPLATE"...)` call in the rule files of `dir`
/// whose template is a string literal the set does not know, as `file:line: what`. Calls
/// with a computed template name are checked when they run.
pub fn literal_problems(
    dir: &std::path::Path,
    set: &crate::mail::outbound::Templates,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in crate::rules::literals::rule_files(dir) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        for (n, line) in text.lines().enumerate() {
            for template in literal_templates(line) {
                if !set.is_notification(&template) {
                    out.push(format!(
                        "{name}:{}: notify: template `{template}` is not known; notification templates: {}",
                        n + 1,
                        set.notifications().join(", ")
                    ));
                }
            }
        }
    }
    out
}

/// The literal second arguments of the `notify(…, "…"` calls on a line.
fn literal_templates(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("notify(") {
        rest = &rest[at + "notify(".len()..];
        let args = rest.split(')').next().unwrap_or_default();
        let mut parts = args.splitn(3, ',');
        let (Some(_), Some(second)) = (parts.next(), parts.next()) else {
            continue;
        };
        let second = second.trim();
        if let Some(name) = second
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .filter(|s| !s.contains('"'))
        {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_template_names_are_found_in_notify_calls() {
        assert_eq!(
            literal_templates(
                r#"ticket.notify("dba", "disk_full", #{x: 1}); ticket.notify("acme");"#
            ),
            ["disk_full"]
        );
        assert_eq!(
            literal_templates(r#"ticket.notify(who, "escalated")"#),
            ["escalated"]
        );
        assert!(literal_templates(r#"ticket.notify("dba", name)"#).is_empty());
    }
}
