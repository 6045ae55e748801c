//! The agent's queue: mine, unassigned in my groups, breaching soon, on hold, assigned to
//! others and my recently resolved, with the filters, saved searches and the bulk form; its
//! live part refreshes itself while the page is visible (`console.js` fires the
//! `itsmd:poll` event every few seconds, and at once when the page becomes visible again).
//!
//! The queue shows at most [`LIMIT`] tickets, the most urgent ones, chosen through the
//! state and priority indexes (priority 1 first, then in id order, the oldest first), so a
//! large store is never read whole; how many match in all is counted from the same indexes.
//! Within them the order is: priority, then the soonest SLA target (a breached clock first),
//! then the oldest.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{ApiError, AppState};
use crate::console::page::{failed, some};
use crate::console::session::Signed;
use crate::console::{page, views};
use crate::sla::view::{SlaView, Standing};
use crate::store::layout::{self, TicketFilter};
use crate::tickets::{HoldReason, State as TicketState, Ticket};

/// The most tickets the queue shows.
pub const LIMIT: usize = 200;
/// How many of my resolved tickets "Recently resolved" shows, and from how far back.
const RECENT: usize = 10;
const RECENT_DAYS: i64 = 7;
/// What the live part listens for: `console.js` fires it every 3 s while the page is
/// visible. Polling with htmx's `every 3s` would go on in a background tab, and a trigger
/// filter (`[document.visibilityState…]`) needs eval, which the CSP forbids.
pub const POLL: &str = "itsmd:poll from:body";

/// The queue's filters, as the search API names them; empty means unset.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// What the queue shows.
struct Selection {
    /// The most urgent matching tickets (at most [`LIMIT`]), in queue order.
    tickets: Vec<Ticket>,
    /// How many match in all.
    total: usize,
    /// A saved search: more match than its page (its `limit`, 50 unless it says) shows.
    more: bool,
    /// My tickets resolved in the last [`RECENT_DAYS`] days, the newest first.
    resolved: Vec<Ticket>,
}

/// The SLA of each ticket now, in the order of `tickets`.
fn views_of(app: &AppState, tickets: &[Ticket]) -> Vec<SlaView> {
    let (sla, calendars) = app.engine.sla();
    let now = app.engine.now();
    tickets
        .iter()
        .map(|t| crate::sla::view::of(t, &sla, &calendars, now))
        .collect()
}

/// Time left to the soonest target of a clock still going (negative once breached);
/// `i64::MAX` with none.
fn time_left(view: &SlaView) -> i64 {
    view.clocks
        .iter()
        .filter(|c| c.problem.is_none() && (c.phase == "running" || c.breached))
        .map(|c| c.remaining_secs)
        .min()
        .unwrap_or(i64::MAX)
}

/// Puts `tickets` in queue order: priority, soonest SLA target, oldest.
fn order(app: &AppState, tickets: Vec<Ticket>) -> Vec<Ticket> {
    let views = views_of(app, &tickets);
    let mut keyed: Vec<(i64, Ticket)> = views.iter().map(time_left).zip(tickets).collect();
    keyed.sort_by(|(a, x), (b, y)| {
        (x.priority, a, x.created_at, x.id).cmp(&(y.priority, b, y.created_at, y.id))
    });
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// The tickets the filters select (closed ones only when the state filter asks for them),
/// each state and priority through its index, and my recently resolved.
async fn select(app: &AppState, who: &Signed, p: &QueueParams) -> Result<Selection, ApiError> {
    if let Some(name) = some(&p.search) {
        let (tickets, more) = crate::console::searches::run(app, &who.name, &name).await?;
        let total = tickets.len();
        return Ok(Selection {
            tickets: order(app, tickets),
            total,
            more,
            resolved: Vec::new(),
        });
    }
    let state: Option<TicketState> = match some(&p.state) {
        Some(s) => Some(
            s.parse()
                .map_err(|e: String| ApiError::bad_request(format!("`state`: {e}")))?,
        ),
        None => None,
    };
    let base = TicketFilter {
        group: some(&p.group),
        assignee: some(&p.assignee),
        text: some(&p.q),
        ..TicketFilter::default()
    };
    let states: Vec<TicketState> = match state {
        Some(s) => vec![s],
        None => TicketState::ALL
            .iter()
            .copied()
            .filter(|s| s.is_open())
            .collect(),
    };
    let me = who.name.clone();
    let since = app.engine.now() - jiff::SignedDuration::from_hours(24 * RECENT_DAYS);
    let (tickets, total, resolved) = app
        .read(move |st| {
            // Priority by priority, every state of it, until the queue is full: the
            // most urgent tickets, and never more than LIMIT read per state and priority.
            let mut tickets: Vec<Ticket> = Vec::new();
            for priority in 1..=5u8 {
                let mut band = Vec::new();
                for s in &states {
                    let f = TicketFilter {
                        state: Some(*s),
                        priority: Some(priority),
                        ..base.clone()
                    };
                    band.extend(layout::list_tickets(st, &f, None, LIMIT - tickets.len())?.0);
                }
                band.sort_by_key(|t| (t.created_at, t.id));
                band.truncate(LIMIT - tickets.len());
                tickets.extend(band);
                if tickets.len() == LIMIT {
                    break;
                }
            }
            let total = if tickets.len() < LIMIT {
                tickets.len()
            } else {
                let mut n = 0;
                for s in &states {
                    let f = TicketFilter {
                        state: Some(*s),
                        ..base.clone()
                    };
                    n += match layout::indexed_ids(st, &f)? {
                        Some(ids) => ids.len(),
                        None => layout::list_tickets(st, &f, None, usize::MAX)?.0.len(),
                    };
                }
                n
            };
            // My resolved tickets: the newest ids of the index, then their times.
            let mut resolved = Vec::new();
            for s in [TicketState::Resolved, TicketState::Fulfilled] {
                let f = TicketFilter {
                    state: Some(s),
                    assignee: Some(me.clone()),
                    ..TicketFilter::default()
                };
                for id in layout::indexed_ids(st, &f)?
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .take(RECENT)
                {
                    if let Some(t) = layout::get_ticket(st, *id)?
                        && t.updated_at >= since
                    {
                        resolved.push(t);
                    }
                }
            }
            resolved.sort_by_key(|t| std::cmp::Reverse(t.updated_at));
            resolved.truncate(RECENT);
            Ok((tickets, total, resolved))
        })
        .await?;
    Ok(Selection {
        tickets: order(app, tickets),
        total,
        more: false,
        resolved,
    })
}

/// A table of tickets; with `take`, each row has a button that assigns it to the signed-in
/// user (the same update as the ticket page's assign form).
fn rows(list: &[(&Ticket, &SlaView)], take: Option<&Signed>) -> Markup {
    html! {
        @if list.is_empty() {
            p.muted { "None." }
        } @else {
            table {
                thead { tr { th { span.sr-only { "Select" } } th { "Ticket" } th { "Title" } th { "State" } th { "Priority" } th { "Group" } th { "Assignee" } th { "SLA" } @if take.is_some() { th { span.sr-only { "Take" } } } } }
                tbody {
                    @for (t, view) in list {
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
                                        input type="hidden" name="was" value=(t.assignee.as_deref().unwrap_or(""));
                                        button type="submit" aria-label=(format!("Take {}", t.id)) { "Take" }
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

/// One section of the queue: a heading with its count, and its rows.
fn section(id: &str, title: &str, list: &[(&Ticket, &SlaView)], take: Option<&Signed>) -> Markup {
    html! {
        section id=(id) { h2 { (title) " (" (list.len()) ")" } (rows(list, take)) }
    }
}

/// The queue's live part, which asks for itself again on every `itsmd:poll`.
fn queue_fragment(app: &AppState, who: &Signed, p: &QueueParams, sel: &Selection) -> Markup {
    let views = views_of(app, &sel.tickets);
    let all: Vec<(&Ticket, &SlaView)> = sel.tickets.iter().zip(&views).collect();
    let pick = |keep: &dyn Fn(&Ticket, &SlaView) -> bool| -> Vec<(&Ticket, &SlaView)> {
        all.iter().copied().filter(|(t, v)| keep(t, v)).collect()
    };
    let held = |t: &Ticket| t.state == TicketState::OnHold;
    let poll = format!("/ui/queue?{}", p.query());
    let shown = html! {
        p #shown {
            @if sel.more {
                "Showing the first " (sel.tickets.len()) " tickets of the saved search; more match: narrow it, or give it a larger `limit` (at most 1000)."
            } @else if sel.total > sel.tickets.len() {
                "Showing the " (sel.tickets.len()) " most urgent of " (sel.total) " tickets; the filters narrow them down."
            } @else {
                (sel.total) @if sel.total == 1 { " ticket." } @else { " tickets." }
            }
            " Updated " (views::time(app.engine.now())) "; refreshes every 3 seconds while the page is visible."
        }
    };
    if let Some(name) = some(&p.search) {
        return html! {
            div #queue hx-get=(poll) hx-trigger=(POLL) hx-swap="outerHTML" {
                (shown)
                section #search { h2 { "Saved search " q { (name) } " (" (all.len()) ")" } (rows(&all, None)) }
            }
        };
    }
    let groups = app.engine.groups();
    let mine_groups: Vec<&String> = groups
        .0
        .iter()
        .filter(|(_, g)| g.members.contains(&who.name))
        .map(|(name, _)| name)
        .collect();
    let in_my_groups = |t: &Ticket| {
        mine_groups.is_empty() || t.group.as_ref().is_some_and(|g| mine_groups.contains(&g))
    };
    let unassigned_title = if mine_groups.is_empty() {
        "Unassigned".to_string()
    } else {
        let names: Vec<&str> = mine_groups.iter().map(|g| g.as_str()).collect();
        format!("Unassigned in my groups: {}", names.join(", "))
    };
    let mine = pick(&|t, _| t.assignee.as_deref() == Some(who.name.as_str()) && !held(t));
    let unassigned = pick(&|t, _| t.assignee.is_none() && !held(t) && in_my_groups(t));
    let soon =
        pick(&|t, v| !held(t) && (v.stands(Standing::Breached) || v.stands(Standing::AtRisk)));
    let on_hold = pick(&|t, _| held(t));
    let others = pick(&|t, _| !held(t) && t.assignee.as_deref().is_some_and(|a| a != who.name));
    let resolved_views = views_of(app, &sel.resolved);
    let resolved: Vec<(&Ticket, &SlaView)> = sel.resolved.iter().zip(&resolved_views).collect();
    html! {
        div #queue hx-get=(poll) hx-trigger=(POLL) hx-swap="outerHTML" {
            (shown)
            (section("mine", "Mine", &mine, None))
            (section("unassigned", &unassigned_title, &unassigned, Some(who)))
            (section("breaching", "Breaching soon or breached", &soon, None))
            (section("on-hold", "On hold", &on_hold, None))
            (section("others", "Assigned to others", &others, None))
            (section("resolved", &format!("Resolved by me, last {RECENT_DAYS} days"), &resolved, None))
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
        Ok(sel) => (StatusCode::OK, queue_fragment(&app, &who, &p, &sel)),
        Err(e) => (e.status, html! { p.error role="alert" { (e.message) } }),
    };
    let searches = match crate::console::searches::of(&app, &who.name).await {
        Ok(s) => s,
        Err(e) => return failed(&who, e),
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
                details #save {
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
        Ok(sel) => page::fragment(queue_fragment(&app, &who, &p, &sel)).into_response(),
        Err(e) => failed(&who, e),
    }
}
