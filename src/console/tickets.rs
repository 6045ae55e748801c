//! The ticket page (fields, SLA clocks, history and comments as one timeline) with the forms
//! that comment, transition and assign. Each form submits the same
//! `Command` as the JSON API; a refusal is shown with the engine's own words.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::api::{ApiError, AppState};
use crate::config::FieldLimits;
use crate::console::page::{failed, some};
use crate::console::session::Signed;
use crate::console::{page, views};
use crate::event::EventBody;
use crate::store::layout;
use crate::tickets::lifecycle::{Flow, allowed_in, resolutions};
use crate::tickets::{
    Action, Actor, Command, CommentRequest, HoldReason, LinkRel, Resolution, ReviewOutcome,
    State as TicketState, TicketId, TicketUpdate, TransitionRequest, Visibility,
};

fn ticket_id(raw: &str) -> Result<TicketId, ApiError> {
    raw.parse().map_err(|e: String| ApiError::bad_request(e))
}

/// The ticket page, with `notice` (what was just done) or `error` (why it was refused).
async fn ticket_page(
    app: &AppState,
    who: &Signed,
    id: TicketId,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let ticket = match crate::tickets::api::existing(app, id).await {
        Ok(t) => t,
        Err(e) => return failed(who, e),
    };
    let history = match app.read(move |s| layout::history(s, id)).await {
        Ok(h) => h,
        Err(e) => return failed(who, e),
    };
    let comments = match app.read(move |s| layout::comments(s, id)).await {
        Ok(c) => c,
        Err(e) => return failed(who, e),
    };
    let alerts = match app
        .read(move |s| layout::ticket_alerts(s, id, None, TIMELINE_ALERTS))
        .await
    {
        Ok((events, _)) => events,
        Err(e) => return failed(who, e),
    };
    let outbox = match app.read(move |s| outbox_of(s, id)).await {
        Ok(rows) => rows,
        Err(e) => return failed(who, e),
    };
    let (sla, calendars) = app.engine.sla();
    let view = crate::sla::view::of(&ticket, &sla, &calendars, app.engine.now());
    let flow = Flow::of(
        ticket.kind(),
        ticket.process.change.as_ref().map(|c| c.change_type),
    );
    let targets = allowed_in(flow, ticket.state);
    let t = &ticket;
    // History and comments, oldest first, as one timeline.
    enum Item<'a> {
        Change(&'a crate::tickets::HistoryEntry),
        Comment(&'a crate::tickets::Comment),
        Alert(&'a crate::alerts::Alert),
    }
    let mut timeline: Vec<(jiff::Timestamp, Item<'_>)> = history
        .iter()
        .map(|h| (h.at, Item::Change(h)))
        .chain(comments.iter().map(|c| (c.at, Item::Comment(c))))
        .chain(alerts.iter().filter_map(|e| match &e.event.body {
            EventBody::Alert(a) => Some((e.event.received_at, Item::Alert(a))),
            _ => None,
        }))
        .collect();
    timeline.sort_by_key(|(at, _)| *at);
    let body = html! {
        h1 { (t.id) " " (t.title) }
        @if let Some(e) = &error { p.error role="alert" #refusal { (e) } }
        div.grid {
            div {
                h2 { "Timeline" }
                ol.timeline #timeline {
                    @for (at, item) in &timeline {
                        @match item {
                            Item::Change(h) => li.change {
                                span.muted { (views::time(*at)) " · " (h.actor) } br;
                                @for c in &h.changes {
                                    span { (c.field) ": " (value(&c.old)) " → " (value(&c.new)) } br;
                                }
                                @if let Some(r) = &h.reason { span.muted { "Why: " (r) } }
                            },
                            Item::Comment(c) => li.comment.internal[c.visibility == Visibility::Internal] {
                                span.muted { (views::time(*at)) " · " (c.author) " · " (c.visibility) " comment" } br;
                                span.body { (c.body) }
                            },
                            Item::Alert(a) => li.alert {
                                span.muted { (views::time(*at)) " · alert from " (a.source) } br;
                                span { (a.status.as_str()) " (" (a.severity) "): " (a.summary) }
                            },
                        }
                    }
                }
                h2 { "Comment" }
                form #comment method="post" action=(format!("/ui/tickets/{}/comment", t.id)) {
                    input type="hidden" name="csrf" value=(who.csrf);
                    textarea name="body" required {}
                    label { input type="radio" name="visibility" value="internal" checked; " internal" }
                    label { input type="radio" name="visibility" value="public"; " public" }
                    button type="submit" { "Add comment" }
                }
            }
            div {
                h2 { "Fields" }
                dl.fields {
                    dt { "State" } dd #state { (t.state) @if let Some(h) = t.process.hold_reason { " (" (h) ")" } }
                    dt { "Priority" } dd { "P" (t.priority) " (impact " (t.impact.as_str()) ", urgency " (t.urgency.as_str()) ")" }
                    dt { "Group" } dd { (t.group.as_deref().unwrap_or("—")) }
                    dt { "Assignee" } dd #assignee { (t.assignee.as_deref().unwrap_or("—")) }
                    dt { "Opened" } dd { (views::time(t.created_at)) }
                    dt { "Updated" } dd { (views::time(t.updated_at)) }
                    @if !t.tags.is_empty() { dt { "Tags" } dd { (t.tags.iter().cloned().collect::<Vec<_>>().join(", ")) } }
                    dt { "Vendor" } dd #vendor-name { (t.process.vendor.as_deref().unwrap_or("—")) }
                    @if let Some(c) = &t.process.change {
                        dt { "Change type" } dd #change-type { (c.change_type) @if let Some(id) = &c.template { " (template " (id) ")" } }
                        dt { "Risk" } dd { @match c.risk { Some(r) => (r), None => "—" } }
                        dt { "Service" } dd { (c.service.as_deref().unwrap_or("—")) }
                        dt { "Window" } dd #window { @match &c.window {
                            Some(w) => { (views::time(w.start)) " – " (views::time(w.end)) },
                            None => "—",
                        } }
                        dt { "Backout plan" } dd { (c.backout_plan.as_deref().unwrap_or("—")) }
                        @if let Some(r) = &c.review {
                            dt { "Review" } dd { (r.outcome) " by " (r.by) ": " (r.notes) }
                        }
                    }
                    @if let Some(a) = &t.process.approval {
                        dt { "Approval" } dd #approval {
                            (a.approved_by.len()) " of " (a.required) " from " (a.approvers.join(", "))
                            @if !a.approved_by.is_empty() { "; approved by " (a.approved_by.iter().cloned().collect::<Vec<_>>().join(", ")) }
                            @if let Some(r) = &a.rejected_by { "; rejected by " (r) }
                        }
                    }
                    @if !t.process.links.is_empty() {
                        dt { "Links" } dd #links { @for l in &t.process.links {
                            (l.rel.as_str()) " " a href=(format!("/ui/tickets/{}", l.ticket)) { (l.ticket) } br;
                        } }
                    }
                }
                h2 { "SLA" }
                div #sla {
                    @if view.clocks.is_empty() { p.muted { "No SLA clocks." } }
                    (views::clocks(&view.clocks))
                }
                p.description { (t.description) }
                h2 { "Move to" }
                @if targets.is_empty() { p.muted { "No transitions from " (t.state) "." } }
                @for to in targets {
                    form.transition id=(format!("transition-{to}")) method="post" action=(format!("/ui/tickets/{}/transition", t.id)) {
                        input type="hidden" name="csrf" value=(who.csrf);
                        input type="hidden" name="to" value=(to);
                        @if *to == TicketState::OnHold {
                            label { "Hold reason " select name="hold_reason" required {
                                @for h in HoldReason::ALL { option value=(h) { (h) } }
                            } }
                        }
                        @if matches!(flow, Flow::Change(_)) && t.state == TicketState::Review && *to == TicketState::Closed {
                            label { "Review outcome " select name="outcome" required {
                                @for o in ReviewOutcome::ALL { option value=(o) { (o) } }
                            } }
                        }
                        @if let Some(codes) = resolutions(flow, t.state, *to) {
                            label { "Resolution " select name="resolution" required {
                                @for r in codes { option value=(r) { (r) } }
                            } }
                        }
                        @if *to == TicketState::Implement && outside_window(t, app.engine.now()) {
                            label { "Outside its window, because (approvers only) " input name="window_override"; }
                        }
                        label { "Why " input name="reason" required; }
                        button type="submit" { "→ " (to) }
                    }
                }
                h2 { "Assign" }
                form #assign method="post" action=(format!("/ui/tickets/{}/assign", t.id)) {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label { "Assignee " input name="assignee" value=(t.assignee.as_deref().unwrap_or(&who.name)); }
                    button type="submit" { "Assign" }
                }
                form #vendor method="post" action=(format!("/ui/tickets/{}/vendor", t.id)) {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label { "Vendor " input name="vendor" value=(t.process.vendor.as_deref().unwrap_or("")) placeholder="none"; }
                    button type="submit" { "Set vendor" }
                }
                h2 { "Link" }
                form #link method="post" action=(format!("/ui/tickets/{}/link", t.id)) {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label { "This ticket " select name="rel" {
                        @for r in LinkRel::ALL { option value=(r.as_str()) { (r.as_str().replace('_', " ")) } }
                    } }
                    label { "ticket " input name="ticket" required placeholder="PRB-000001"; }
                    button type="submit" { "Link" }
                }
                h2 { "Outbox" }
                @if outbox.is_empty() { p.muted { "No message waiting or dead." } }
                @else {
                    ul #outbox { @for (row, dead) in &outbox {
                        li { (row.kind) " to " (row.vendor) ": "
                            @if *dead { span.breached { "dead" } } @else { "pending" }
                            ", " (row.attempts) " attempts"
                            @if let Some(e) = &row.last_error { span.muted { " (" (e) ")" } } }
                    } }
                }
            }
        }
    };
    (
        status,
        page::layout(&format!("{} {}", t.id, t.title), Some(who.who()), body),
    )
        .into_response()
}

/// How many alert occurrences the timeline shows.
const TIMELINE_ALERTS: usize = 100;
/// How many outbox rows (pending and dead each) are looked through for a ticket's.
const OUTBOX_SCAN: usize = 1000;

/// The ticket's messages still in the outbox (pending) or given up (dead), with whether
/// each is dead. Delivered messages leave the outbox; their sending is in the history.
fn outbox_of(
    s: &dyn crate::store::Store,
    id: TicketId,
) -> Result<Vec<(crate::vendors::outbox::OutboxRow, bool)>, crate::store::StoreError> {
    let mut out = Vec::new();
    for (tree, dead) in [
        (crate::store::Tree::Outbox, false),
        (crate::store::Tree::OutboxDead, true),
    ] {
        out.extend(
            layout::outbox::rows(s, tree, None, None, OUTBOX_SCAN)?
                .into_iter()
                .filter(|r| r.ticket == id)
                .map(|r| (r, dead)),
        );
    }
    Ok(out)
}

/// A history value as text (`tickets::history::value_text`), null as "—".
fn value(v: &serde_json::Value) -> String {
    crate::tickets::history::value_text(v, "—")
}

/// `GET /ui/tickets/{id}`
pub async fn show(State(app): State<AppState>, who: Signed, Path(raw): Path<String>) -> Response {
    match ticket_id(&raw) {
        Ok(id) => ticket_page(&app, &who, id, StatusCode::OK, None).await,
        Err(e) => failed(&who, e),
    }
}

/// Checks the CSRF token, builds the action for ticket `raw` (a problem with the form is
/// shown on the ticket page) and submits it as the signed-in user: back to the ticket page,
/// or the page again with the engine's refusal.
async fn act(
    app: AppState,
    who: Signed,
    raw: &str,
    csrf: &str,
    build: impl FnOnce(TicketId, &FieldLimits) -> Result<Action, ApiError>,
) -> Response {
    let id = match ticket_id(raw) {
        Ok(id) => id,
        Err(e) => return failed(&who, e),
    };
    if let Err(r) = who.check_csrf(csrf) {
        return r.into_response();
    }
    let action = match build(id, &app.config.limits) {
        Ok(a) => a,
        Err(e) => return ticket_page(&app, &who, id, e.status, Some(e.message)).await,
    };
    let command = Command {
        by: Actor::User {
            name: who.name.clone(),
        },
        action,
    };
    match app.engine.submit(EventBody::Command(command)).await {
        Ok(_) => Redirect::to(&format!("/ui/tickets/{id}")).into_response(),
        Err(e) => {
            let e = ApiError::submit(e, app.config.engine.retry_after_secs);
            tracing::info!(ticket = %id, user = %who.name, error = %e.message, "Console action refused.");
            ticket_page(&app, &who, id, e.status, Some(e.message)).await
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    visibility: String,
}

/// `POST /ui/tickets/{id}/comment`
pub async fn comment(
    State(app): State<AppState>,
    who: Signed,
    Path(raw): Path<String>,
    Form(f): Form<CommentForm>,
) -> Response {
    let csrf = f.csrf.clone();
    act(app, who, &raw, &csrf, move |ticket, limits| {
        let visibility = if f.visibility == "public" {
            Visibility::Public
        } else {
            Visibility::Internal
        };
        let comment = CommentRequest {
            body: f.body,
            visibility,
        };
        crate::api::fields::comment(limits, &comment)?;
        Ok(Action::Comment { ticket, comment })
    })
    .await
}

/// A move's form fields (the ticket page's, and a bulk transition's).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TransitionForm {
    #[serde(default)]
    pub(crate) csrf: String,
    #[serde(default)]
    pub(crate) to: String,
    #[serde(default)]
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) hold_reason: String,
    #[serde(default)]
    pub(crate) resolution: String,
    #[serde(default)]
    pub(crate) outcome: String,
    #[serde(default)]
    pub(crate) window_override: String,
}

/// `POST /ui/tickets/{id}/transition`
pub async fn transition(
    State(app): State<AppState>,
    who: Signed,
    Path(raw): Path<String>,
    Form(f): Form<TransitionForm>,
) -> Response {
    let csrf = f.csrf.clone();
    act(app, who, &raw, &csrf, move |ticket, limits| {
        transition_action(ticket, limits, f)
    })
    .await
}

/// Whether `t` is a change that is not emergency and `now` is outside its window: moving it
/// to implement then needs an approver's `window_override`.
fn outside_window(t: &crate::tickets::Ticket, now: jiff::Timestamp) -> bool {
    t.process.change.as_ref().is_some_and(|c| {
        c.change_type != crate::tickets::ChangeType::Emergency
            && c.window.is_some_and(|w| now < w.start || w.end <= now)
    })
}

/// A move of `ticket` from form fields, checked as the API checks its body.
pub(crate) fn transition_action(
    ticket: TicketId,
    limits: &FieldLimits,
    f: TransitionForm,
) -> Result<Action, ApiError> {
    let bad = |e: String| ApiError::bad_request(e);
    let step = TransitionRequest {
        to: f
            .to
            .parse()
            .map_err(|e: String| bad(format!("`to`: {e}")))?,
        reason: f.reason,
        hold_reason: some(&f.hold_reason)
            .map(|h| h.parse::<HoldReason>())
            .transpose()
            .map_err(|e| bad(format!("`hold_reason`: {e}")))?,
        resolution: some(&f.resolution)
            .map(|r| r.parse::<Resolution>())
            .transpose()
            .map_err(|e| bad(format!("`resolution`: {e}")))?,
        outcome: some(&f.outcome)
            .map(|o| o.parse::<ReviewOutcome>())
            .transpose()
            .map_err(|e| bad(format!("`outcome`: {e}")))?,
        window_override: some(&f.window_override),
    };
    crate::api::fields::transition(limits, &step)?;
    Ok(Action::Transition { ticket, step })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    vendor: String,
}

/// `POST /ui/tickets/{id}/vendor`: an empty vendor takes the ticket away from its vendor.
pub async fn vendor(
    State(app): State<AppState>,
    who: Signed,
    Path(raw): Path<String>,
    Form(f): Form<VendorForm>,
) -> Response {
    act(app, who, &raw, &f.csrf, |ticket, limits| {
        let fields = TicketUpdate {
            vendor: Some(some(&f.vendor)),
            ..TicketUpdate::default()
        };
        crate::api::fields::ticket_update(limits, &fields)?;
        Ok(Action::Update {
            ticket,
            fields,
            if_assignee: None,
        })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rel: String,
    #[serde(default)]
    ticket: String,
}

/// `POST /ui/tickets/{id}/link`
pub async fn link(
    State(app): State<AppState>,
    who: Signed,
    Path(raw): Path<String>,
    Form(f): Form<LinkForm>,
) -> Response {
    act(app, who, &raw, &f.csrf, |ticket, _| {
        let rel: LinkRel = serde_json::from_value(serde_json::Value::String(f.rel.clone()))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "`rel`: unknown link {:?}; expected one of {}",
                    f.rel,
                    LinkRel::ALL.map(|r| r.as_str()).join(", ")
                ))
            })?;
        let other: TicketId = f
            .ticket
            .trim()
            .parse()
            .map_err(|e: String| ApiError::bad_request(format!("`ticket`: {e}")))?;
        Ok(Action::Link {
            ticket,
            link: crate::tickets::LinkRequest { rel, ticket: other },
        })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    assignee: String,
    /// The assignee the queue showed when its Take button was drawn (empty: none): a ticket
    /// someone else took meanwhile is not taken from them.
    #[serde(default)]
    was: Option<String>,
}

/// `POST /ui/tickets/{id}/assign`: an empty assignee unassigns. A Take (`was` set) is
/// checked by the engine when it applies the update, so two agents taking one ticket at
/// once cannot both win.
pub async fn assign(
    State(app): State<AppState>,
    who: Signed,
    Path(raw): Path<String>,
    Form(f): Form<AssignForm>,
) -> Response {
    act(app, who, &raw, &f.csrf, |ticket, limits| {
        assign_action(ticket, limits, &f.assignee, f.was)
    })
    .await
}

/// An assignment of `ticket` (empty unassigns), checked as the API checks its body; with
/// `was`, only if the ticket is still assigned to that (empty: nobody) when it is applied.
pub(crate) fn assign_action(
    ticket: TicketId,
    limits: &FieldLimits,
    assignee: &str,
    was: Option<String>,
) -> Result<Action, ApiError> {
    let fields = TicketUpdate {
        assignee: Some(some(assignee)),
        ..TicketUpdate::default()
    };
    crate::api::fields::ticket_update(limits, &fields)?;
    Ok(Action::Update {
        ticket,
        fields,
        if_assignee: was,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_takes_the_fields_it_needs_and_names_a_bad_one() {
        let limits = FieldLimits::default();
        let id: TicketId = "CHG-000001".parse().unwrap();
        let form = |to: &str, hold_reason: &str, outcome: &str| TransitionForm {
            to: to.into(),
            reason: "reviewed".into(),
            hold_reason: hold_reason.into(),
            outcome: outcome.into(),
            ..TransitionForm::default()
        };
        let Action::Transition { step, .. } =
            transition_action(id, &limits, form("closed", "", "successful_with_issues")).unwrap()
        else {
            panic!("a transition")
        };
        assert_eq!(step.to, TicketState::Closed);
        assert_eq!(step.outcome, Some(ReviewOutcome::SuccessfulWithIssues));
        assert_eq!(step.hold_reason, None);
        let e = transition_action(id, &limits, form("closed", "", "great")).unwrap_err();
        assert!(
            e.message.starts_with("`outcome`: unknown review outcome"),
            "{}",
            e.message
        );
        let e = transition_action(id, &limits, form("on_hold", "later", "")).unwrap_err();
        assert!(e.message.starts_with("`hold_reason`: "), "{}", e.message);
    }
}
