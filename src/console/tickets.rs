//! The agent's views: the queue (mine, unassigned, on hold, others'), refreshed by htmx every
//! few seconds, and the ticket page (fields, SLA clocks, history and comments as one
//! timeline) with the forms that comment, transition and assign. Each form submits the same
//! `Command` as the JSON API; a refusal is shown with the engine's own words.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{ApiError, AppState};
use crate::config::FieldLimits;
use crate::console::session::Signed;
use crate::console::{page, views};
use crate::event::EventBody;
use crate::store::layout::{self, TicketFilter};
use crate::tickets::lifecycle::{Flow, allowed_in, resolutions};
use crate::tickets::{
    Action, Actor, Command, CommentRequest, HoldReason, Resolution, State as TicketState, Ticket,
    TicketId, TicketUpdate, TransitionRequest, Visibility,
};

/// How many tickets the queue looks at.
const QUEUE_LIMIT: usize = 200;
/// How often the queue refreshes itself.
pub const POLL: &str = "every 3s";

/// The queue's filters, as the search API names them; empty means unset.
#[derive(Debug, Default, Deserialize)]
pub struct QueueParams {
    #[serde(default)]
    state: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    q: String,
    /// A saved search of the signed-in user, shown instead of the queue's parts.
    #[serde(default)]
    search: String,
}

impl QueueParams {
    fn query(&self) -> String {
        let enc = crate::console::searches::encode;
        format!(
            "state={}&group={}&assignee={}&q={}&search={}",
            enc(&self.state),
            enc(&self.group),
            enc(&self.assignee),
            enc(&self.q),
            enc(&self.search)
        )
    }

    /// The filters as the list API's query string, to save as a search.
    fn api_query(&self) -> String {
        let enc = crate::console::searches::encode;
        [
            ("state", &self.state),
            ("group", &self.group),
            ("assignee", &self.assignee),
            ("q", &self.q),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn some(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// An error page or fragment for a read that failed.
fn failed(e: ApiError) -> Response {
    (
        e.status,
        html! { p.error role="alert" { (e.message) } }.into_string(),
    )
        .into_response()
}

/// The tickets the filters select; closed ones only when the state filter asks for them.
async fn select(app: &AppState, who: &Signed, p: &QueueParams) -> Result<Vec<Ticket>, ApiError> {
    if let Some(name) = some(&p.search) {
        return crate::console::searches::run(app, &who.name, &name).await;
    }
    let state: Option<TicketState> = match some(&p.state) {
        Some(s) => Some(
            s.parse()
                .map_err(|e: String| ApiError::bad_request(format!("`state`: {e}")))?,
        ),
        None => None,
    };
    let filter = TicketFilter {
        state,
        group: some(&p.group),
        assignee: some(&p.assignee),
        text: some(&p.q),
        ..TicketFilter::default()
    };
    // Without a state, the open states one by one, each through its index: a store of
    // closed tickets is never walked.
    let states: Vec<TicketState> = match state {
        Some(s) => vec![s],
        None => TicketState::ALL
            .iter()
            .copied()
            .filter(|s| s.is_open())
            .collect(),
    };
    let mut tickets = Vec::new();
    for s in states {
        let filter = TicketFilter {
            state: Some(s),
            ..filter.clone()
        };
        let (page, _) = app
            .read(move |st| layout::list_tickets(st, &filter, None, QUEUE_LIMIT))
            .await?;
        tickets.extend(page);
    }
    // Most urgent first, then the oldest.
    tickets.sort_by_key(|t| (t.priority, t.created_at));
    tickets.truncate(QUEUE_LIMIT);
    Ok(tickets)
}

/// A table of tickets; with `take`, each row has a button that assigns it to the signed-in
/// user (the same update as the ticket page's assign form).
fn rows(app: &AppState, list: &[&Ticket], take: Option<&Signed>) -> Markup {
    let (sla, calendars) = app.engine.sla();
    let now = app.engine.now();
    html! {
        @if list.is_empty() {
            p.muted { "None." }
        } @else {
            table {
                thead { tr { th { span.sr-only { "Select" } } th { "Ticket" } th { "Title" } th { "State" } th { "Priority" } th { "Group" } th { "Assignee" } th { "SLA" } @if take.is_some() { th {} } } }
                tbody {
                    @for t in list {
                        @let view = crate::sla::view::of(t, &sla, &calendars, now);
                        tr data-ticket=(t.id) {
                            td { input type="checkbox" form="bulk" name="ticket" value=(t.id)
                                id=(format!("select-{}", t.id)) hx-preserve="true"
                                aria-label=(format!("Select {}", t.id)); }
                            td { a href=(format!("/ui/tickets/{}", t.id)) { (t.id) } }
                            td { (t.title) }
                            td { (t.state) }
                            td { "P" (t.priority) }
                            td { (t.group.as_deref().unwrap_or("—")) }
                            td { (t.assignee.as_deref().unwrap_or("—")) }
                            td { (views::clocks(&view.clocks)) }
                            @if let Some(who) = take {
                                td {
                                    form.take method="post" action=(format!("/ui/tickets/{}/assign", t.id)) {
                                        input type="hidden" name="csrf" value=(who.csrf);
                                        input type="hidden" name="assignee" value=(who.name);
                                        button type="submit" { "Take" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The queue's live part: it asks for itself again every few seconds.
fn queue_fragment(app: &AppState, who: &Signed, p: &QueueParams, tickets: &[Ticket]) -> Markup {
    let mine: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| {
            t.assignee.as_deref() == Some(who.name.as_str()) && t.state != TicketState::OnHold
        })
        .collect();
    let unassigned: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| t.assignee.is_none() && t.state != TicketState::OnHold)
        .collect();
    let held: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| t.state == TicketState::OnHold)
        .collect();
    let others: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| {
            t.state != TicketState::OnHold && t.assignee.as_deref().is_some_and(|a| a != who.name)
        })
        .collect();
    let poll = format!("/ui/queue?{}", p.query());
    if let Some(name) = some(&p.search) {
        let all: Vec<&Ticket> = tickets.iter().collect();
        return html! {
            div #queue hx-get=(poll) hx-trigger=(POLL) hx-swap="outerHTML" {
                section #search { h2 { "Saved search " q { (name) } " (" (all.len()) ")" } (rows(app, &all, None)) }
                p.muted { "Updated " (views::time(app.engine.now())) "; refreshes every 3 seconds." }
            }
        };
    }
    html! {
        div #queue hx-get=(poll) hx-trigger=(POLL) hx-swap="outerHTML" {
            section #mine { h2 { "Mine (" (mine.len()) ")" } (rows(app, &mine, None)) }
            section #unassigned { h2 { "Unassigned (" (unassigned.len()) ")" } (rows(app, &unassigned, Some(who))) }
            section #on-hold { h2 { "On hold (" (held.len()) ")" } (rows(app, &held, None)) }
            section #others { h2 { "Assigned to others (" (others.len()) ")" } (rows(app, &others, None)) }
            p.muted { "Updated " (views::time(app.engine.now())) "; refreshes every 3 seconds." }
        }
    }
}

/// `GET /ui/`: the queue with its filters.
pub async fn queue(
    State(app): State<AppState>,
    who: Signed,
    Query(p): Query<QueueParams>,
) -> Response {
    let (status, body) = match select(&app, &who, &p).await {
        Ok(tickets) => (StatusCode::OK, queue_fragment(&app, &who, &p, &tickets)),
        Err(e) => (e.status, html! { p.error role="alert" { (e.message) } }),
    };
    let searches = match crate::console::searches::of(&app, &who.name).await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let states: Vec<&str> = TicketState::ALL.iter().map(|s| s.as_str()).collect();
    let page = page::layout(
        "Queue",
        Some(who.who()),
        html! {
            h1 { "Queue" }
            form.filters method="get" action="/ui/" {
                label { "State " select name="state" {
                    option value="" { "open" }
                    @for s in &states { option value=(s) selected[p.state == *s] { (s) } }
                } }
                label { "Group " input name="group" value=(p.group); }
                label { "Assignee " input name="assignee" value=(p.assignee); }
                label { "Search " input name="q" value=(p.q) type="search"; }
                button type="submit" { "Filter" }
            }
            nav #searches aria-label="Saved searches" {
                h2 { "Saved searches" }
                @if searches.is_empty() { p.muted { "None yet." } }
                ul { @for (name, query) in &searches {
                    li {
                        a href=(format!("/ui/?search={}", crate::console::searches::encode(name))) { (name) }
                        " " code.muted { (query) }
                        form.inline method="post" action="/ui/searches/delete" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            input type="hidden" name="name" value=(name);
                            button.small type="submit" aria-label=(format!("Delete saved search {name}")) { "Delete" }
                        }
                    }
                } }
                details {
                    summary { "Save a search" }
                    form #save-search method="post" action="/ui/searches" {
                        input type="hidden" name="csrf" value=(who.csrf);
                        label { "Name " input name="name" required maxlength=(crate::console::searches::MAX_NAME); }
                        label { "Filters (as " code { "GET /api/v1/tickets" } " takes them) "
                            input name="query" value=(p.api_query()) placeholder="state=new&sla=breached"; }
                        button type="submit" { "Save" }
                    }
                }
            }
            form #bulk method="post" action="/ui/bulk" {
                input type="hidden" name="csrf" value=(who.csrf);
                details {
                    summary { "With the selected tickets: assign or move" }
                    label { "Do " select name="action" {
                        option value="assign" { "assign" }
                        option value="transition" { "transition" }
                    } }
                    label { "Assignee " input name="assignee" value=(who.name); }
                    label { "Move to " select name="to" {
                        @for s in &states { option value=(s) { (s) } }
                    } }
                    label { "Hold reason " select name="hold_reason" {
                        option value="" { "—" }
                        @for h in HoldReason::ALL { option value=(h) { (h) } }
                    } }
                    label { "Resolution " input name="resolution" placeholder="as the process takes"; }
                    label { "Why " input name="reason"; }
                    button type="submit" { "Apply" }
                }
            }
            (body)
        },
    );
    (status, page).into_response()
}

/// `GET /ui/queue`: the live part alone, for htmx.
pub async fn queue_live(
    State(app): State<AppState>,
    who: Signed,
    Query(p): Query<QueueParams>,
) -> Response {
    match select(&app, &who, &p).await {
        Ok(tickets) => page::fragment(queue_fragment(&app, &who, &p, &tickets)).into_response(),
        Err(e) => failed(e),
    }
}

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
        Err(e) => return failed(e),
    };
    let history = match app.read(move |s| layout::history(s, id)).await {
        Ok(h) => h,
        Err(e) => return failed(e),
    };
    let comments = match app.read(move |s| layout::comments(s, id)).await {
        Ok(c) => c,
        Err(e) => return failed(e),
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
    }
    let mut timeline: Vec<(jiff::Timestamp, Item<'_>)> = history
        .iter()
        .map(|h| (h.at, Item::Change(h)))
        .chain(comments.iter().map(|c| (c.at, Item::Comment(c))))
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
                                span.muted { (views::time(*at)) " · " (views::actor(&h.actor)) } br;
                                @for c in &h.changes {
                                    span { (c.field) ": " (value(&c.old)) " → " (value(&c.new)) } br;
                                }
                                @if let Some(r) = &h.reason { span.muted { "Why: " (r) } }
                            },
                            Item::Comment(c) => li.comment.internal[c.visibility == Visibility::Internal] {
                                span.muted { (views::time(*at)) " · " (views::actor(&c.author)) " · " (c.visibility) " comment" } br;
                                span.body { (c.body) }
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
                        @if let Some(codes) = resolutions(flow, t.state, *to) {
                            label { "Resolution " select name="resolution" required {
                                @for r in codes { option value=(r) { (r) } }
                            } }
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
            }
        }
    };
    (
        status,
        page::layout(&format!("{} {}", t.id, t.title), Some(who.who()), body),
    )
        .into_response()
}

/// A history value as text: strings bare, null as "—", anything else as JSON.
fn value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `GET /ui/tickets/{id}`
pub async fn show(State(app): State<AppState>, who: Signed, Path(raw): Path<String>) -> Response {
    match ticket_id(&raw) {
        Ok(id) => ticket_page(&app, &who, id, StatusCode::OK, None).await,
        Err(e) => failed(e),
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
        Err(e) => return failed(e),
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

#[derive(Deserialize)]
pub struct TransitionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    hold_reason: String,
    #[serde(default)]
    resolution: String,
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
        transition_action(
            ticket,
            limits,
            &f.to,
            f.reason,
            &f.hold_reason,
            &f.resolution,
        )
    })
    .await
}

/// A move of `ticket` from form fields, checked as the API checks its body.
pub(crate) fn transition_action(
    ticket: TicketId,
    limits: &FieldLimits,
    to: &str,
    reason: String,
    hold_reason: &str,
    resolution: &str,
) -> Result<Action, ApiError> {
    let bad = |e: String| ApiError::bad_request(e);
    let step = TransitionRequest {
        to: to.parse().map_err(|e: String| bad(format!("`to`: {e}")))?,
        reason,
        hold_reason: some(hold_reason)
            .map(|h| h.parse::<HoldReason>())
            .transpose()
            .map_err(|e| bad(format!("`hold_reason`: {e}")))?,
        resolution: some(resolution)
            .map(|r| r.parse::<Resolution>())
            .transpose()
            .map_err(|e| bad(format!("`resolution`: {e}")))?,
        outcome: None,
        window_override: None,
    };
    crate::api::fields::transition(limits, &step)?;
    Ok(Action::Transition { ticket, step })
}

#[derive(Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    assignee: String,
}

/// `POST /ui/tickets/{id}/assign`: an empty assignee unassigns.
pub async fn assign(
    State(app): State<AppState>,
    who: Signed,
    Path(raw): Path<String>,
    Form(f): Form<AssignForm>,
) -> Response {
    act(app, who, &raw, &f.csrf, |ticket, limits| {
        assign_action(ticket, limits, &f.assignee)
    })
    .await
}

/// An assignment of `ticket` (empty unassigns), checked as the API checks its body.
pub(crate) fn assign_action(
    ticket: TicketId,
    limits: &FieldLimits,
    assignee: &str,
) -> Result<Action, ApiError> {
    let fields = TicketUpdate {
        assignee: Some(some(assignee)),
        ..TicketUpdate::default()
    };
    crate::api::fields::ticket_update(limits, &fields)?;
    Ok(Action::Update { ticket, fields })
}
