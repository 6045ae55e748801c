//! The change fields of a create or an update, checked in the engine so a bad value is a 422
//! naming its field: service, risk (`low`, `medium`, `high`; fixed once the change leaves
//! assessment, since who authorises may depend on it), back-out plan, and for a standard
//! change the template it is made from, which fills its service, risk and back-out plan.

use crate::engine::batch::Engine;
use crate::tickets::commands::Problems;
use crate::tickets::vocab::names;
use crate::tickets::{ChangeInfo, ChangeType, Kind, NewTicket, Risk, State, Ticket, TicketUpdate};

/// Parses a risk, naming the allowed values when it is not one.
fn risk(raw: &str, p: &mut Problems) -> Option<Risk> {
    raw.parse().map_err(|e: String| p.add("risk", e)).ok()
}

fn not_blank(field: &'static str, value: &str, p: &mut Problems) {
    if value.trim().is_empty() {
        p.add(
            field,
            format!("`{field}` must not be empty (leave it out instead)"),
        );
    }
}

impl Engine {
    /// The change side of a new ticket, and what the history should say about it; `None` for
    /// other kinds, which must not carry change fields.
    pub(crate) fn new_change(
        &self,
        new: &NewTicket,
        p: &mut Problems,
    ) -> (Option<ChangeInfo>, Option<String>) {
        if new.kind != Kind::Change {
            for (field, given) in [
                ("service", new.service.is_some()),
                ("risk", new.risk.is_some()),
                ("backout_plan", new.backout_plan.is_some()),
                ("template", new.template.is_some()),
            ] {
                if given {
                    p.add(field, format!("only changes have a `{field}`"));
                }
            }
            return (None, None);
        }
        let change_type = new.change_type.unwrap_or_default();
        let mut change = ChangeInfo {
            change_type,
            window: new.window,
            service: new.service.clone(),
            risk: new.risk.as_deref().and_then(|r| risk(r, p)),
            backout_plan: new.backout_plan.clone(),
            ..ChangeInfo::default()
        };
        if let Some(s) = &new.service {
            not_blank("service", s, p);
        }
        if let Some(b) = &new.backout_plan {
            not_blank("backout_plan", b, p);
        }
        if change_type != ChangeType::Standard {
            if new.template.is_some() {
                p.add(
                    "template",
                    format!(
                        "only standard changes are made from a template, not a {change_type} change"
                    ),
                );
            }
            return (Some(change), None);
        }
        let templates = &self.settings.changes.templates;
        let known = || {
            if templates.is_empty() {
                "none are configured ([changes.templates.ID])".to_string()
            } else {
                format!(
                    "templates: {}",
                    names(&templates.keys().collect::<Vec<_>>())
                )
            }
        };
        let Some(id) = &new.template else {
            p.add(
                "template",
                format!(
                    "a standard change is made from a standard change template; {}",
                    known()
                ),
            );
            return (Some(change), None);
        };
        let Some(t) = templates.get(id) else {
            p.add(
                "template",
                format!("unknown standard change template `{id}`; {}", known()),
            );
            return (Some(change), None);
        };
        match (&change.service, &t.service) {
            (Some(given), Some(of)) if given != of => p.add(
                "service",
                format!("template `{id}` is for service `{of}`, not `{given}`"),
            ),
            (None, Some(of)) => change.service = Some(of.clone()),
            _ => {}
        }
        match change.risk {
            Some(r) if r != t.risk => p.add(
                "risk",
                format!(
                    "a standard change has its template's risk ({}), not {r}",
                    t.risk
                ),
            ),
            _ => change.risk = Some(t.risk),
        }
        if change.backout_plan.is_none() {
            change.backout_plan = Some(t.backout_plan.clone());
        }
        change.template = Some(id.clone());
        let note = format!(
            "standard change from template `{id}`, pre-authorised by {}",
            t.authorized_by
        );
        (Some(change), Some(note))
    }

    /// The change fields of an update: type while new, window before scheduling, risk while
    /// new or in assessment (never a standard change's), service and back-out plan.
    pub(crate) fn update_change(&self, t: &mut Ticket, u: &TicketUpdate, p: &mut Problems) {
        let state = t.state;
        let Some(change) = t.process.change.as_mut() else {
            for (field, given) in [
                ("change_type", u.change_type.is_some()),
                ("window", u.window.is_some()),
                ("service", u.service.is_some()),
                ("risk", u.risk.is_some()),
                ("backout_plan", u.backout_plan.is_some()),
            ] {
                if given {
                    p.add(field, format!("only changes have a `{field}`"));
                }
            }
            return;
        };
        if let Some(ct) = u.change_type {
            if state != State::New && ct != change.change_type {
                p.add(
                    "change_type",
                    format!("the type of a change can change only while it is new, not {state}"),
                );
            }
            if ct == ChangeType::Standard && change.template.is_none() {
                p.add(
                    "change_type",
                    "a standard change is made from a template when it is created",
                );
            }
            if ct != ChangeType::Standard {
                change.template = None;
            }
            change.change_type = ct;
        }
        match u.window {
            Some(Some(w)) => {
                crate::tickets::commands::check_window(&w, p);
                change.window = Some(w);
            }
            Some(None) if matches!(state, State::Scheduled | State::Implement | State::Review) => {
                p.add(
                    "window",
                    format!("a {state} change keeps its planned window"),
                );
            }
            Some(None) => change.window = None,
            None => {}
        }
        let standard = change.template.is_some();
        if let Some(raw) = &u.risk
            && let Some(r) = risk(raw, p)
        {
            if standard && Some(r) != change.risk {
                p.add("risk", "a standard change keeps its template's risk");
            } else if !matches!(state, State::New | State::Assess) && Some(r) != change.risk {
                p.add(
                    "risk",
                    format!("the risk is assessed before authorization; a {state} change keeps it"),
                );
            }
            change.risk = Some(r);
        }
        match &u.service {
            Some(s) if standard && *s != change.service => {
                p.add("service", "a standard change keeps its template's service")
            }
            Some(Some(s)) => {
                not_blank("service", s, p);
                change.service = Some(s.clone());
            }
            Some(None) => change.service = None,
            None => {}
        }
        match &u.backout_plan {
            Some(Some(b)) => {
                not_blank("backout_plan", b, p);
                change.backout_plan = Some(b.clone());
            }
            Some(None) => change.backout_plan = None,
            None => {}
        }
    }
}
