//! The mail and chat templates (minijinja): the shipped English ones (`templates/`), over
//! which an operator's folder (`[smtp] templates`) lays its own files by name. A `.subject`
//! and a `.txt` per mail, and an `.html` that autoescapes (minijinja's default by file name),
//! so ticket text cannot inject markup. A notification template `NAME` is `NAME.subject`,
//! with `NAME.txt` and `NAME.html` when present, else the shared `notice.txt` / `notice.html`.
//!
//! A set is compiled whole and tried once against a sample ticket, so a broken file is
//! named with its line when the configuration is loaded (`itsmd check`, a reload), never
//! first when a mail is due.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use minijinja::Environment;
use serde::Serialize;

use crate::tickets::{Comment, Ticket};

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {reason}")]
pub struct TemplateError {
    name: String,
    reason: String,
}

/// The file name endings a template folder may hold.
const ENDINGS: [&str; 3] = ["subject", "txt", "html"];

const SHIPPED: [(&str, &str); 22] = [
    ("batch.subject", include_str!("templates/batch.subject")),
    ("batch.txt", include_str!("templates/batch.txt")),
    ("batch.html", include_str!("templates/batch.html")),
    ("digest.subject", include_str!("templates/digest.subject")),
    ("digest.txt", include_str!("templates/digest.txt")),
    ("digest.html", include_str!("templates/digest.html")),
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
        "sla_warning.subject",
        include_str!("templates/sla_warning.subject"),
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

/// The environment mails are rendered in: a value the ticket does not have at send time (no
/// vendor clock, no next stage due) prints as nothing, even down a chain
/// (`ticket.sla.clocks.vendor.next.due`), rather than failing the mail. Misspellings are
/// caught before that, when the set is loaded ([`Templates::try_all`]).
///
/// A value that is there but empty (`ticket.assignee` of an unassigned ticket) prints as
/// nothing too, not `None`: write `{{ ticket.assignee or "nobody" }}` for a word instead.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.set_formatter(|out, state, value| match value.is_none() {
        true => Ok(()),
        false => minijinja::escape_formatter(out, state, value),
    });
    env
}

/// A compiled template set.
pub struct Templates {
    env: Environment<'static>,
    /// The operator's folder laid over the shipped set, if any.
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("dir", &self.dir)
            .field("names", &self.env.templates().count())
            .finish()
    }
}

impl Templates {
    /// The shipped English set (compiled once; they are tested to compile).
    pub fn shipped() -> Arc<Templates> {
        static SET: OnceLock<Arc<Templates>> = OnceLock::new();
        SET.get_or_init(|| {
            let mut env = environment();
            for (name, text) in SHIPPED {
                if let Err(e) = env.add_template(name, text) {
                    tracing::error!(template = name, error = %e, "A shipped template does not compile.");
                }
            }
            Arc::new(Templates { env, dir: None })
        })
        .clone()
    }

    /// The shipped set with the files of `dir` laid over it by name; an empty path is the
    /// shipped set. Every problem is named as `file:line: what`.
    pub fn load(dir: &Path) -> Result<Arc<Templates>, Vec<String>> {
        if dir.as_os_str().is_empty() {
            return Ok(Templates::shipped());
        }
        let mut env = environment();
        for (name, text) in SHIPPED {
            env.add_template(name, text)
                .map_err(|e| vec![format!("shipped template {name}: {e}")])?;
        }
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![format!(
                "smtp.templates: cannot read the folder {}: {e}",
                dir.display()
            )]
        })?;
        let mut problems = Vec::new();
        let mut files = Vec::new();
        let caller: Vec<&str> = SHIPPED
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| n.starts_with("caller_"))
            .collect();
        for entry in entries {
            let path = match entry {
                Ok(e) => e.path(),
                Err(e) => {
                    problems.push(format!("{}: cannot list: {e}", dir.display()));
                    continue;
                }
            };
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                problems.push(format!("{}: not a UTF-8 file name", path.display()));
                continue;
            };
            if name.starts_with('.') || name.ends_with('~') || path.is_dir() {
                continue;
            }
            let ending = name.rsplit_once('.').map(|(_, e)| e);
            if !ending.is_some_and(|e| ENDINGS.contains(&e)) {
                problems.push(format!(
                    "{}: not a template (names end in .subject, .txt or .html)",
                    path.display()
                ));
                continue;
            }
            // Caller mails are sent only under the shipped names: another caller_* file is
            // never used, most likely a misspelt override.
            if name.starts_with("caller_") && !caller.contains(&name.as_str()) {
                let hint = crate::suggest::nearest(&name, &caller)
                    .map_or(String::new(), |n| format!("did you mean {n}? "));
                problems.push(format!(
                    "{}: not a caller mail template, so never used; {hint}they are {}",
                    path.display(),
                    caller.join(", ")
                ));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((name, path, text)),
                Err(e) => problems.push(format!("{}: cannot read: {e}", path.display())),
            }
        }
        files.sort();
        for (name, path, text) in files {
            if let Err(e) = env.add_template_owned(name, text) {
                problems.push(at_line(&path, &e));
            }
        }
        let set = Templates {
            env,
            dir: Some(dir.to_path_buf()),
        };
        problems.extend(set.try_all());
        if problems.is_empty() {
            Ok(Arc::new(set))
        } else {
            Err(problems)
        }
    }

    /// Renders every template once with a sample context in which every name a real mail
    /// may have is set, strictly: a name that is not in scope (`{{ ticket.titel }}`) is an
    /// error naming its file and line, not an empty string in every mail; `{% if x %}` on a
    /// missing value is still just false. What fails names its file and line.
    fn try_all(&self) -> Vec<String> {
        let sample = sample_context();
        let mut strict = self.env.clone();
        strict.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        let mut out = Vec::new();
        for (name, t) in strict.templates() {
            if let Err(e) = t.render(&sample) {
                let path = self
                    .dir
                    .as_ref()
                    .map(|d| d.join(name))
                    .filter(|p| p.exists())
                    .unwrap_or_else(|| PathBuf::from(name));
                out.push(at_line(&path, &e));
            }
        }
        out
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &minijinja::Value) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| TemplateError {
                name: name.to_string(),
                reason: e.to_string(),
            })
    }

    /// Whether `name` is a notification template (it has `name.subject`).
    pub fn is_notification(&self, name: &str) -> bool {
        self.env.get_template(&format!("{name}.subject")).is_ok()
    }

    /// The notification templates' names, sorted.
    pub fn notifications(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .env
            .templates()
            .filter_map(|(n, _)| n.strip_suffix(".subject").map(str::to_string))
            .filter(|n| !n.starts_with("caller_"))
            .collect();
        out.sort();
        out
    }

    /// A notification's subject, text and HTML: `name.subject`, and `name.txt` /
    /// `name.html` when the set has them, else `notice.txt` / `notice.html`.
    pub fn notification(
        &self,
        name: &str,
        ctx: &minijinja::Value,
    ) -> Result<(String, String, String), TemplateError> {
        let part = |ending: &str| {
            let own = format!("{name}.{ending}");
            if self.env.get_template(&own).is_ok() {
                own
            } else {
                format!("notice.{ending}")
            }
        };
        let subject = self.render(&format!("{name}.subject"), ctx)?;
        Ok((
            subject.trim().to_string(),
            self.render(&part("txt"), ctx)?,
            self.render(&part("html"), ctx)?,
        ))
    }
}

/// `path:line: what` for a minijinja error.
fn at_line(path: &Path, e: &minijinja::Error) -> String {
    let what = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    match e.line() {
        Some(line) => format!("{}:{line}: {what}", path.display()),
        None => format!("{}: {what}", path.display()),
    }
}

/// What a template sees when a set is checked: every name a real render has, with values.
fn sample_context() -> minijinja::Value {
    minijinja::context! {
        ticket => value(TicketFacts {
            id: "INC-000001".into(),
            title: "Sample",
            state: "new",
            priority: 3,
            group: Some("triage"),
            assignee: Some("sample"),
            escalation: 0,
            // Every clock a ticket may have, each with a next stage, so that what the docs
            // name (`sla.clocks.resolution.next.due`) is in scope.
            sla: {
                let clock = serde_json::json!({
                    "fired": [], "breached": false,
                    "next": {"stage": crate::sla::Stage::Warning(50), "due": "2026-12-07T09:00:00Z"},
                });
                serde_json::json!({"policy": "sample", "clocks": {
                    "response": clock, "resolution": clock, "vendor": clock,
                }})
            },
        }),
        name => "sample",
        headline => "Sample.",
        note => "",
        clock => "resolution",
        to_group => false,
        vars => minijinja::Value::from_object(AnyVars),
        comment => value(serde_json::json!({"author": "sample", "body": "", "public": true})),
        tag => "[INC-000001 #sample]",
        author => "sample",
        reopen_within => "5d",
        items => value(serde_json::json!([
            {"subject": "[INC-000001] Sample", "headline": "Sample.", "note": null, "kind": "mail.assigned",
             "ticket": "INC-000001", "title": "Sample"},
        ])),
    }
}

/// A rule's `vars` in the sample: whatever a rule may pass, so that checking a template
/// does not refuse `{{ vars.host }}` (a misspelt ticket field still is refused).
#[derive(Debug)]
struct AnyVars;

impl minijinja::value::Object for AnyVars {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        Some(minijinja::Value::from(format!("<{key}>")))
    }
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
    /// The SLA state: `policy`, and per clock its fired stages, whether it is breached,
    /// and the next stage due (`sla.clocks.resolution.next.due`).
    sla: serde_json::Value,
}

/// The SLA state of a ticket as templates see it.
fn sla_facts(t: &Ticket) -> serde_json::Value {
    let mut clocks = serde_json::Map::new();
    for (name, c) in &t.sla.clocks {
        let next = t
            .sla
            .timers
            .iter()
            .filter(|s| &s.clock == name)
            .min_by_key(|s| s.due)
            .map(|s| serde_json::json!({"stage": s.stage, "due": s.due.to_string()}));
        clocks.insert(
            name.clone(),
            serde_json::json!({
                "fired": c.fired,
                "breached": c.fired.contains(&crate::sla::Stage::Breach),
                "next": next,
            }),
        );
    }
    serde_json::json!({ "policy": t.sla.policy, "clocks": clocks })
}

/// `ticket` in a template's context.
pub fn facts(t: &Ticket) -> minijinja::Value {
    value(TicketFacts {
        id: t.id.to_string(),
        title: &t.title,
        state: t.state.as_str(),
        priority: t.priority,
        group: t.group.as_deref(),
        assignee: t.assignee.as_deref(),
        escalation: t.sla.escalation,
        sla: sla_facts(t),
    })
}

/// `comment` in a template's context: who wrote it, what, and whether it is public.
pub fn comment_facts(c: &Comment) -> minijinja::Value {
    value(serde_json::json!({
        "author": match &c.author {
            crate::tickets::Actor::User { name } | crate::tickets::Actor::Vendor { name } => name.clone(),
            crate::tickets::Actor::Caller { address } => address.clone(),
            _ => "the service desk".to_string(),
        },
        "body": c.body,
        "public": c.visibility == crate::tickets::Visibility::Public,
    }))
}

/// The set a configuration asks for (`[smtp] templates`). Validation has compiled it
/// already; should the folder have changed since, the shipped set stands in and says so.
pub fn of(config: &crate::config::Config) -> Arc<Templates> {
    let dir = config
        .smtp
        .as_ref()
        .map(|s| s.templates.clone())
        .unwrap_or_default();
    Templates::load(&dir).unwrap_or_else(|problems| {
        tracing::error!(folder = %dir.display(), problems = %problems.join("; "), "Templates changed since they were checked; the shipped ones are used.");
        Templates::shipped()
    })
}

/// Any serialisable value as a template value.
pub fn value<T: Serialize>(v: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

impl Templates {
    /// Template `name` rendered against `t` as a preview: every name the real mails have in
    /// scope is set (`name` is "(preview)", `comment` the ticket's latest one). A caller mail
    /// has no HTML part (`None`), as it is sent.
    pub fn preview(
        &self,
        name: &str,
        t: &Ticket,
        comment: Option<&Comment>,
    ) -> Result<(String, String, Option<String>), TemplateError> {
        let headline = format!("A preview of template {name} for {}.", t.id);
        // A digest or batch lists one notice: the ticket's.
        let item = serde_json::json!({
            "subject": format!("[{}] {}", t.id, t.title), "headline": headline, "note": null,
            "kind": "mail.notified", "ticket": t.id.to_string(), "title": t.title,
        });
        let ctx = minijinja::context! {
            ticket => facts(t),
            name => "(preview)",
            headline => headline,
            note => "",
            clock => "resolution",
            to_group => false,
            // What a rule would pass is not known here: each `vars.x` shows as `<x>`.
            vars => minijinja::Value::from_object(AnyVars),
            // Caller mails see the comment's text, notifications the comment.
            comment => match name.starts_with("caller_") {
                true => comment.map(|c| minijinja::Value::from(c.body.clone())),
                false => comment.map(comment_facts),
            },
            tag => format!("[{}]", t.id),
            author => comment.map(|c| comment_facts(c).get_attr("author").unwrap_or_default()),
            reopen_within => "",
            items => value(serde_json::json!([item])),
        };
        let (subject, text, html) = self.notification(name, &ctx)?;
        // Caller mails are sent as plain text only: no HTML part to preview.
        let html = (!name.starts_with("caller_")).then_some(html);
        Ok((subject, text, html))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_template_renders_with_what_real_mails_have_in_scope() {
        assert_eq!(Templates::shipped().try_all(), Vec::<String>::new());
        assert!(Templates::shipped().is_notification("digest"));
    }

    #[test]
    fn an_operators_folder_overrides_by_name_and_names_bad_files_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("escalated.subject"),
            "Up: {{ ticket.id }}\n",
        )
        .unwrap();
        let set = Templates::load(dir.path()).unwrap();
        let ctx = minijinja::context! { ticket => value(serde_json::json!({"id": "INC-1"})) };
        assert_eq!(
            set.render("escalated.subject", &ctx).unwrap().trim(),
            "Up: INC-1"
        );
        std::fs::write(dir.path().join("x.txt"), "fine\n{{ a | nosuch }}\n").unwrap();
        std::fs::write(dir.path().join("notes.md"), "").unwrap();
        let problems = Templates::load(dir.path()).unwrap_err().join("\n");
        assert!(
            problems.contains("x.txt:2:") && problems.contains("nosuch"),
            "{problems}"
        );
        assert!(problems.contains("notes.md: not a template"), "{problems}");
        std::fs::remove_file(dir.path().join("x.txt")).unwrap();
        std::fs::remove_file(dir.path().join("notes.md")).unwrap();
        // A misspelt variable and a misspelt caller template are named, not left empty or
        // unused.
        std::fs::write(dir.path().join("escalated.txt"), "{{ ticket.titel }}\n").unwrap();
        std::fs::write(dir.path().join("caller_acknowleged.txt"), "Hi\n").unwrap();
        let problems = Templates::load(dir.path()).unwrap_err().join("\n");
        assert!(
            problems.contains("escalated.txt:1:") && problems.contains("undefined"),
            "{problems}"
        );
        assert!(
            problems.contains(
                "caller_acknowleged.txt: not a caller mail template, so never used; did you mean caller_acknowledged.txt?"
            ),
            "{problems}"
        );
    }

    /// What the docs put in scope loads, and at send time a value this ticket lacks prints
    /// as nothing instead of failing the mail; a misspelling is still refused at load.
    #[test]
    fn documented_names_load_and_print_nothing_when_a_ticket_lacks_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sla_warning.txt"),
            "{{ ticket.id }} due {{ ticket.sla.clocks.resolution.next.due }} vendor {{ ticket.sla.clocks.vendor.next.due }} by {{ ticket.assignee }}.\n",
        )
        .unwrap();
        let set = Templates::load(dir.path()).unwrap_or_else(|p| panic!("{p:?}"));
        let t = crate::tickets::Ticket::blank(
            "INC-000007".parse().unwrap(),
            "2026-12-07T08:00:00Z".parse().unwrap(),
        );
        let ctx = minijinja::context! { ticket => facts(&t) };
        assert_eq!(
            set.render("sla_warning.txt", &ctx).unwrap().trim(),
            "INC-000007 due  vendor  by ."
        );
        std::fs::write(
            dir.path().join("sla_warning.txt"),
            "{{ ticket.sla.clocks.resolution.nxt.due }}\n",
        )
        .unwrap();
        let problems = Templates::load(dir.path()).unwrap_err().join("\n");
        assert!(
            problems.contains("sla_warning.txt:1: undefined"),
            "{problems}"
        );
    }
}
