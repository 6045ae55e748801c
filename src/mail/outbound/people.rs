//! Staff notifications: what in a history entry is news for the people working a ticket
//! (assignment, escalation, an SLA warning or breach, a priority 1 ticket, a rule's `notify_lead`),
//! who that is by `[smtp.notify]` and `[groups]`, and the mail itself from the shipped
//! English templates (minijinja: a subject, a text body and an autoescaped HTML body).
//! Pure: no store, no clock.

use serde_json::Value;

use crate::mail::outbound::templates::{self, TemplateError, Templates};
use crate::mail::outbound::{Audience, SmtpConfig};
use crate::tickets::{Actor, Comment, Groups, HistoryEntry, Ticket};

/// A staff notification's kind (the outbox row's `type` is `mail.KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    Assigned,
    Escalated,
    SlaBreached,
    SlaWarning,
    P1Opened,
    LeadNotified,
    /// A rule's `ticket.notify(person_or_group, template, ...)`.
    Notified,
}

impl Notice {
    pub fn kind(self) -> &'static str {
        match self {
            Notice::Assigned => "mail.assigned",
            Notice::Escalated => "mail.escalated",
            Notice::SlaBreached => "mail.sla_breached",
            Notice::SlaWarning => "mail.sla_warning",
            Notice::P1Opened => "mail.p1_opened",
            Notice::LeadNotified => "mail.lead_notified",
            Notice::Notified => "mail.notified",
        }
    }

    /// The outbox row's `type` of the notification as a chat message (`chat.KIND`).
    pub fn chat_kind(self) -> &'static str {
        match self {
            Notice::Assigned => "chat.assigned",
            Notice::Escalated => "chat.escalated",
            Notice::SlaBreached => "chat.sla_breached",
            Notice::SlaWarning => "chat.sla_warning",
            Notice::P1Opened => "chat.p1_opened",
            Notice::LeadNotified => "chat.lead_notified",
            Notice::Notified => "chat.notified",
        }
    }

    /// Which comes first in a digest: the most urgent.
    fn rank(self) -> u8 {
        match self {
            Notice::P1Opened => 0,
            Notice::SlaBreached => 1,
            Notice::SlaWarning => 2,
            Notice::Escalated => 3,
            Notice::Notified => 4,
            Notice::LeadNotified => 5,
            Notice::Assigned => 6,
        }
    }

    fn template(self) -> &'static str {
        &self.kind()["mail.".len()..]
    }
}

/// One notification to write: its kind, the people it goes to (names), and what the
/// templates need besides the ticket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Owed {
    pub notice: Notice,
    pub names: Vec<String>,
    pub headline: String,
    pub note: Option<String>,
    pub clock: Option<String>,
    /// Assigned to a group (no assignee): the subject says so.
    pub to_group: bool,
    /// The notification template (`NAME.subject`…): the notice's own, or a rule's choice.
    pub template: String,
    /// What a rule passed for its template (`vars`); `{}` otherwise.
    pub vars: Value,
    /// The groups it is addressed to as a whole (the ticket's group for a `group`
    /// audience, the group a rule named): their chat channels get it.
    pub groups: Vec<String>,
}

fn change<'a>(entry: &'a HistoryEntry, field: &str) -> Option<&'a Value> {
    entry
        .changes
        .iter()
        .find(|c| c.field == field)
        .map(|c| &c.new)
}

/// Names for an audience list, deduplicated, in order.
fn audience(list: &[Audience], t: &Ticket, groups: &Groups) -> Vec<String> {
    let group = t.group.as_deref().and_then(|g| groups.0.get(g));
    let mut out: Vec<String> = Vec::new();
    for a in list {
        let names: Vec<String> = match a {
            Audience::Assignee => t.assignee.iter().cloned().collect(),
            Audience::Group => group.map(|g| g.members.clone()).unwrap_or_default(),
            Audience::Lead => group.and_then(|g| g.lead.clone()).into_iter().collect(),
        };
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The notifications an entry owes, by the configuration. Nobody is told of their own doing.
pub(crate) fn owed(
    smtp: &SmtpConfig,
    groups: &Groups,
    entry: &HistoryEntry,
    t: &Ticket,
) -> Vec<Owed> {
    let n = &smtp.notify;
    let mut out = Vec::new();
    let group_of = |list: &[Audience]| -> Vec<String> {
        match (&t.group, list.contains(&Audience::Group)) {
            (Some(g), true) => vec![g.clone()],
            _ => Vec::new(),
        }
    };
    let mut push = |notice,
                    (names, groups): (Vec<String>, Vec<String>),
                    headline: String,
                    note,
                    clock,
                    to_group| {
        let names: Vec<String> = names
            .into_iter()
            .filter(|name| !matches!(&entry.actor, Actor::User { name: by } if by == name))
            .collect();
        if !names.is_empty() || !groups.is_empty() {
            out.push(Owed {
                notice,
                names,
                groups,
                headline,
                note,
                clock,
                to_group,
                template: notice.template().to_string(),
                vars: Value::Object(Default::default()),
            });
        }
    };
    if change(entry, "assignee").and_then(Value::as_str).is_some() {
        let list: Vec<Audience> = n
            .assigned
            .iter()
            .copied()
            .filter(|a| *a == Audience::Assignee)
            .collect();
        push(
            Notice::Assigned,
            (audience(&list, t, groups), group_of(&list)),
            format!("{} was assigned to you.", t.id),
            None,
            None,
            false,
        );
    } else if change(entry, "group").is_some() && t.assignee.is_none() {
        let list: Vec<Audience> = n
            .assigned
            .iter()
            .copied()
            .filter(|a| *a != Audience::Assignee)
            .collect();
        push(
            Notice::Assigned,
            (audience(&list, t, groups), group_of(&list)),
            format!(
                "{} came in for {}, with nobody assigned yet.",
                t.id,
                t.group.as_deref().unwrap_or_default()
            ),
            None,
            None,
            true,
        );
    }
    if change(entry, "escalation").is_some() {
        push(
            Notice::Escalated,
            (audience(&n.escalated, t, groups), group_of(&n.escalated)),
            format!("{} was escalated to level {}.", t.id, t.sla.escalation),
            entry.reason.clone(),
            None,
            false,
        );
    }
    if let Some(stage) = change(entry, "sla_stage") {
        let clock = stage["clock"].as_str().unwrap_or_default().to_string();
        let stage = match stage["stage"].as_str() {
            Some("breach") => Some((Notice::SlaBreached, &n.sla_breached, "breached")),
            Some("warning") => Some((Notice::SlaWarning, &n.sla_warning, "near")),
            _ => None,
        };
        if let Some((notice, list, how)) = stage {
            push(
                notice,
                (audience(list, t, groups), group_of(list)),
                format!("The {clock} target of {} is {how}.", t.id),
                entry.reason.clone(),
                Some(clock),
                false,
            );
        }
    }
    let p1 = if entry.seq == 1 {
        t.priority == 1
    } else {
        change(entry, "priority").and_then(Value::as_u64) == Some(1)
    };
    if p1 {
        push(
            Notice::P1Opened,
            (audience(&n.p1_opened, t, groups), group_of(&n.p1_opened)),
            format!("{} is priority 1.", t.id),
            None,
            None,
            false,
        );
    }
    if n.lead_notified
        && let Some(v) = change(entry, "notified")
        && let Some(lead) = v["lead"].as_str()
    {
        push(
            Notice::LeadNotified,
            (vec![lead.to_string()], Vec::new()),
            format!(
                "A rule asks you, as lead of {}, to look at {}.",
                v["group"].as_str().unwrap_or_default(),
                t.id
            ),
            v["message"].as_str().map(str::to_string),
            None,
            false,
        );
    }
    if let Some(v) = change(entry, "notified")
        && let Some(template) = v["template"].as_str()
    {
        let names: Vec<String> = v["people"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let to = v["to"].as_str().unwrap_or_default();
        let groups: Vec<String> = groups_cfg_contains(groups, to);
        if !names.is_empty() || !groups.is_empty() {
            out.push(Owed {
                notice: Notice::Notified,
                names,
                groups,
                headline: format!("A rule asks you to look at {}.", t.id),
                note: v["vars"]["note"].as_str().map(str::to_string),
                clock: None,
                to_group: false,
                template: template.to_string(),
                vars: v["vars"].clone(),
            });
        }
    }
    out
}

/// The subject line of a notification for `name` (a person, or a chat channel).
pub(crate) fn subject(
    set: &Templates,
    o: &Owed,
    name: &str,
    t: &Ticket,
) -> Result<String, TemplateError> {
    let ctx = minijinja::context! {
        ticket => templates::facts(t),
        name => name,
        headline => &o.headline,
        note => &o.note,
        clock => &o.clock,
        to_group => o.to_group,
        vars => templates::value(&o.vars),
    };
    Ok(set
        .render(&format!("{}.subject", o.template), &ctx)?
        .trim()
        .to_string())
}

/// The kinds of a coalesced message (outbox `type`).
pub(crate) const MAIL_DIGEST: &str = "mail.digest";
pub(crate) const CHAT_DIGEST: &str = "chat.digest";

/// A notification's one-line summary: its headline and note.
fn summary(o: &Owed) -> String {
    match &o.note {
        Some(note) if !note.is_empty() => format!("{} {note}", o.headline),
        _ => o.headline.clone(),
    }
}

/// The `items` of a digest: each notification's subject, headline and note.
fn items(set: &Templates, mine: &[&Owed], name: &str, t: &Ticket) -> Result<Value, TemplateError> {
    let items = batch_items(set, mine, name, t)?;
    Ok(serde_json::to_value(items).unwrap_or_default())
}

/// The notices `mine` for `name` as entries of a coalesced batch, most urgent first.
pub(crate) fn batch_items(
    set: &Templates,
    mine: &[&Owed],
    name: &str,
    t: &Ticket,
) -> Result<Vec<crate::mail::outbound::coalesce::BatchItem>, TemplateError> {
    let mut mine = mine.to_vec();
    mine.sort_by_key(|o| o.notice.rank());
    let mut out = Vec::new();
    for o in mine {
        out.push(crate::mail::outbound::coalesce::BatchItem {
            ticket: t.id.to_string(),
            title: t.title.clone(),
            subject: subject(set, o, name, t)?,
            headline: o.headline.clone(),
            note: o.note.clone(),
            kind: o.notice.kind().to_string(),
        });
    }
    Ok(out)
}

/// A kind's place in a batch (`mail.p1_opened` first); unknown kinds last.
pub(crate) fn rank_of(kind: &str) -> u8 {
    [
        Notice::P1Opened,
        Notice::SlaBreached,
        Notice::SlaWarning,
        Notice::Escalated,
        Notice::Notified,
        Notice::LeadNotified,
        Notice::Assigned,
    ]
    .into_iter()
    .find(|n| n.kind() == kind)
    .map_or(u8::MAX, Notice::rank)
}

/// The mail for `name` of the notifications `mine` (at least one): the notification itself,
/// or the `digest` template over all of them. Returns the outbox kind with the parts.
pub(crate) fn render_for(
    set: &Templates,
    mine: &[&Owed],
    name: &str,
    t: &Ticket,
    comment: Option<&Comment>,
) -> Result<(&'static str, (String, String, String)), TemplateError> {
    if let [one] = mine {
        return Ok((one.notice.kind(), render(set, one, name, t, comment)?));
    }
    let ctx = minijinja::context! {
        ticket => templates::facts(t),
        name => name,
        items => templates::value(items(set, mine, name, t)?),
        comment => comment.map(templates::comment_facts),
    };
    Ok((MAIL_DIGEST, set.notification("digest", &ctx)?))
}

/// A chat message's kind, subject line and summary for channel `name`: the notification's,
/// or the digest's of several.
pub(crate) fn chat_words(
    set: &Templates,
    mine: &[&Owed],
    name: &str,
    t: &Ticket,
) -> Result<(&'static str, String, String), TemplateError> {
    if let [one] = mine {
        return Ok((
            one.notice.chat_kind(),
            subject(set, one, name, t)?,
            summary(one),
        ));
    }
    let ctx = minijinja::context! {
        ticket => templates::facts(t),
        name => name,
        items => templates::value(items(set, mine, name, t)?),
    };
    let subject = set.render("digest.subject", &ctx)?.trim().to_string();
    let mut mine = mine.to_vec();
    mine.sort_by_key(|o| o.notice.rank());
    let all: Vec<String> = mine.iter().map(|o| summary(o)).collect();
    Ok((CHAT_DIGEST, subject, all.join(" ")))
}

/// `[to]` when `to` is a configured group.
fn groups_cfg_contains(groups: &Groups, to: &str) -> Vec<String> {
    if groups.contains(to) {
        vec![to.to_string()]
    } else {
        Vec::new()
    }
}

/// The subject, text and HTML of a notification for `name`; `comment` is the one the
/// entry added, if it added one.
pub(crate) fn render(
    set: &Templates,
    o: &Owed,
    name: &str,
    t: &Ticket,
    comment: Option<&Comment>,
) -> Result<(String, String, String), TemplateError> {
    let ctx = minijinja::context! {
        ticket => templates::facts(t),
        name => name,
        headline => &o.headline,
        note => &o.note,
        clock => &o.clock,
        to_group => o.to_group,
        vars => templates::value(&o.vars),
        comment => comment.map(templates::comment_facts),
    };
    set.notification(&o.template, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::FieldChange;

    fn ticket() -> Ticket {
        serde_json::from_value(serde_json::json!({
            "id": "INC-000007", "kind": "incident", "state": "in_progress",
            "title": "Core switch <down> & out", "description": "", "impact": "high",
            "urgency": "high", "priority": 1, "group": "network", "assignee": "bob",
            "created_at": "2026-03-01T10:00:00Z", "updated_at": "2026-03-01T10:00:00Z",
            "history_len": 2
        }))
        .unwrap()
    }

    fn entry(seq: u64, actor: Actor, field: &str, new: Value) -> HistoryEntry {
        HistoryEntry {
            seq,
            at: "2026-03-01T10:00:00Z".parse().unwrap(),
            actor,
            changes: vec![FieldChange {
                field: field.into(),
                old: Value::Null,
                new,
            }],
            reason: Some("because".into()),
            event: None,
            rules_version: None,
        }
    }

    fn groups() -> Groups {
        let config = crate::config::parse(
            "[groups.triage]\n[groups.network]\nmembers = [\"alice\", \"bob\"]\nlead = \"alice\"\n",
            "t",
        )
        .unwrap();
        config.groups
    }

    #[test]
    fn news_goes_to_the_configured_people_but_never_to_who_made_it() {
        let smtp = SmtpConfig::default();
        let t = ticket();
        let g = groups();
        let by_carol = Actor::User {
            name: "carol".into(),
        };
        let o = owed(
            &smtp,
            &g,
            &entry(2, by_carol.clone(), "assignee", "bob".into()),
            &t,
        );
        assert_eq!(o.len(), 1);
        assert_eq!(
            (o[0].notice, o[0].names.clone()),
            (Notice::Assigned, vec!["bob".to_string()])
        );
        let by_bob = Actor::User { name: "bob".into() };
        assert!(owed(&smtp, &g, &entry(2, by_bob, "assignee", "bob".into()), &t).is_empty());
        let breach = serde_json::json!({"clock": "resolution", "stage": "breach"});
        let o = owed(
            &smtp,
            &g,
            &entry(3, Actor::system("sla"), "sla_stage", breach),
            &t,
        );
        assert_eq!(o[0].notice, Notice::SlaBreached);
        assert_eq!(o[0].names, vec!["bob".to_string(), "alice".to_string()]);
        let warning = serde_json::json!({"clock": "resolution", "stage": "warning"});
        let o = owed(
            &smtp,
            &g,
            &entry(3, Actor::system("sla"), "sla_stage", warning.clone()),
            &t,
        );
        assert_eq!(o[0].notice, Notice::SlaWarning);
        assert_eq!(o[0].names, vec!["bob".to_string()], "the assignee alone");
        let quiet = SmtpConfig {
            notify: crate::mail::outbound::PeopleMail {
                sla_warning: Vec::new(),
                ..Default::default()
            },
            ..SmtpConfig::default()
        };
        assert!(
            owed(
                &quiet,
                &g,
                &entry(3, Actor::system("sla"), "sla_stage", warning),
                &t
            )
            .is_empty()
        );
        let o = owed(&smtp, &g, &entry(1, by_carol, "state", "new".into()), &t);
        assert_eq!(o[0].notice, Notice::P1Opened);
        assert_eq!(o[0].names, vec!["alice".to_string(), "bob".to_string()]);
    }

    #[test]
    fn the_shipped_templates_render_and_html_is_escaped() {
        let t = ticket();
        for notice in [
            Notice::Assigned,
            Notice::Escalated,
            Notice::SlaBreached,
            Notice::SlaWarning,
            Notice::P1Opened,
            Notice::LeadNotified,
        ] {
            let o = Owed {
                notice,
                names: vec!["bob".into()],
                headline: "Look <now>".into(),
                note: Some("a & b".into()),
                clock: Some("resolution".into()),
                to_group: false,
                template: notice.template().to_string(),
                vars: serde_json::json!({}),
                groups: Vec::new(),
            };
            let (subject, text, html) = render(&Templates::shipped(), &o, "bob", &t, None).unwrap();
            assert!(subject.starts_with("[INC-000007] "), "{subject}");
            assert!(!subject.contains('\n'), "{subject}");
            assert!(
                text.contains("Core switch <down> & out") && text.contains("Look <now>"),
                "{text}"
            );
            assert!(
                html.contains("Core switch &lt;down&gt; &amp; out"),
                "{html}"
            );
            assert!(
                html.contains("a &amp; b") && !html.contains("<now>"),
                "{html}"
            );
        }
    }
}
