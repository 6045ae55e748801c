//! Ticket reads: listing with filters and pages, one ticket with its history.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, AppState, Routes};
use crate::store::layout;
use crate::store::layout::{SlaFilter, Sort, TicketFilter, TimeRange};
use crate::tickets::{HistoryEntry, Kind, Ticket, TicketId};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// The query of a listing. Every value is taken as text and parsed here, so a bad one is
/// reported with its parameter's name; an unknown parameter is refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    state: Option<String>,
    kind: Option<String>,
    group: Option<String>,
    assignee: Option<String>,
    priority: Option<String>,
    tag: Option<String>,
    vendor: Option<String>,
    caller: Option<String>,
    sla: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    updated_after: Option<String>,
    updated_before: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// A ticket as the API shows it: its stored fields and its `kind` (which is also the id's
/// prefix, but clients should not have to parse ids).
#[derive(Debug, Serialize)]
pub struct TicketJson {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub kind: Kind,
}

impl From<Ticket> for TicketJson {
    fn from(ticket: Ticket) -> TicketJson {
        TicketJson {
            kind: ticket.kind(),
            ticket,
        }
    }
}

#[derive(Serialize)]
pub struct Page {
    tickets: Vec<TicketJson>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<TicketId>,
}

/// `GET /api/v1/tickets?state=&kind=&group=&assignee=&priority=&tag=&vendor=&caller=&sla=
/// &created_after=&created_before=&updated_after=&updated_before=&q=&sort=&limit=&after=`: the
/// tickets matching every filter given, in id order or by `sort`, one page at a time.
pub async fn list(
    State(app): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(p) = params.map_err(ApiError::query)?;
    let (tickets, next) = search(&app, p)?.run(&app).await?;
    let tickets: Vec<TicketJson> = tickets.into_iter().map(TicketJson::from).collect();
    // At most `server.max_list_bytes` of tickets; the cursor goes on after the last one shown.
    let (tickets, cut) = crate::api::page::within_budget(tickets, app.config.server.max_list_bytes);
    let next = if cut {
        tickets.last().map(|t| t.ticket.id)
    } else {
        next
    };
    Ok(Json(Page { tickets, next }))
}

/// A listing's query, checked: what `GET /api/v1/tickets` runs (the console's saved
/// searches are checked and run by the same code).
pub struct Search {
    pub filter: TicketFilter,
    pub sort: Option<Sort>,
    pub after: Option<TicketId>,
    pub limit: usize,
}

/// Checks a listing's parameters: every problem at once, each naming its parameter.
pub fn search(app: &AppState, p: ListParams) -> Result<Search, ApiError> {
    let mut problems = Vec::new();
    let state = param("state", p.state, &mut problems);
    let kind = param("kind", p.kind, &mut problems);
    let after = param("after", p.after, &mut problems);
    let priority: Option<u8> = param("priority", p.priority, &mut problems);
    if priority.is_some_and(|p| !(1..=5).contains(&p)) {
        problems.push("`priority` must be 1..=5".to_string());
    }
    let standing = param("sla", p.sla, &mut problems);
    let sort: Option<Sort> = param("sort", p.sort, &mut problems);
    let mut time = |name: &str, raw: Option<String>| -> Option<jiff::Timestamp> {
        raw.and_then(|v| {
            crate::clock::parse_instant(&format!("`{name}`"), &v)
                .map_err(|e| problems.push(e))
                .ok()
        })
    };
    let created = TimeRange {
        after: time("created_after", p.created_after),
        before: time("created_before", p.created_before),
    };
    let updated = TimeRange {
        after: time("updated_after", p.updated_after),
        before: time("updated_before", p.updated_before),
    };
    let limit = crate::api::page::limit(p.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .unwrap_or_else(|problem| {
            problems.push(problem);
            DEFAULT_LIMIT
        });
    let mut text = |name: &str, raw: Option<String>| {
        raw.filter(|v| {
            let empty = v.trim().is_empty();
            if empty {
                problems.push(format!("`{name}` must not be empty"));
            }
            !empty
        })
    };
    let filter = TicketFilter {
        state,
        kind,
        group: text("group", p.group),
        assignee: text("assignee", p.assignee),
        priority,
        tag: text("tag", p.tag),
        vendor: text("vendor", p.vendor),
        caller: text("caller", p.caller),
        created,
        updated,
        text: text("q", p.q),
        sla: standing.map(|standing| {
            let (config, calendars) = app.engine.sla();
            SlaFilter {
                standing,
                config,
                calendars,
                at: app.engine.now(),
            }
        }),
    };
    if !problems.is_empty() {
        return Err(ApiError::bad_query(problems));
    }
    Ok(Search {
        filter,
        sort,
        after,
        limit,
    })
}

impl Search {
    /// One page of the tickets it selects, and the `after` of the next page.
    pub async fn run(self, app: &AppState) -> Result<(Vec<Ticket>, Option<TicketId>), ApiError> {
        let Search {
            filter,
            sort,
            after,
            limit,
        } = self;
        let (tickets, next) = match sort {
            None => {
                app.read(move |s| layout::list_tickets(s, &filter, after, limit))
                    .await?
            }
            Some(sort) => app
                .read(move |s| layout::list_tickets_sorted(s, &filter, sort, after, limit))
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "`after`: that ticket is no longer in this listing (a filtered field changed, or it is gone); start again without `after`",
                    )
                })?,
        };
        Ok((tickets, next))
    }
}

/// Parses an optional query parameter, recording a problem instead of failing.
fn param<T: std::str::FromStr<Err: std::fmt::Display>>(
    name: &str,
    raw: Option<String>,
    problems: &mut Vec<String>,
) -> Option<T> {
    raw.and_then(|v| {
        v.parse()
            .map_err(|e| problems.push(format!("`{name}`: {e}")))
            .ok()
    })
}

#[derive(Serialize)]
pub struct TicketWithHistory {
    #[serde(flatten)]
    ticket: TicketJson,
    history: Vec<HistoryEntry>,
    /// When the history is longer than `server.max_list_bytes`: the `seq` of its last entry
    /// shown; the rest is at `/history?after=` that.
    #[serde(skip_serializing_if = "Option::is_none")]
    history_next: Option<u64>,
    /// An alert ticket's service's changes before it opened (`alerts::changes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    recent_changes: Option<Vec<crate::alerts::changes::RecentChange>>,
}

/// The ticket `id` as stored, or 404.
pub(crate) async fn existing(app: &AppState, id: TicketId) -> Result<Ticket, ApiError> {
    app.read(move |s| layout::get_ticket(s, id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("ticket {id} does not exist")))
}

pub(crate) fn ticket_id(raw: &str) -> Result<TicketId, ApiError> {
    raw.parse().map_err(ApiError::bad_request)
}

/// `GET /api/v1/tickets/{id}`: the ticket and its whole history.
pub async fn show(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<TicketWithHistory>, ApiError> {
    let id = ticket_id(&raw)?;
    let ticket = existing(&app, id).await?;
    let budget = app.config.server.max_list_bytes;
    let (history, cut) = app
        .read(move |s| layout::history_page(s, id, None, budget))
        .await?;
    let history_next = cut.then(|| history.last().map(|h| h.seq)).flatten();
    let window = app.engine.alerts().changes_window;
    let of = ticket.clone();
    let recent_changes = app
        .read(move |s| crate::alerts::changes::recent_changes(s, &of, window))
        .await?;
    Ok(Json(TicketWithHistory {
        ticket: ticket.into(),
        history,
        history_next,
        recent_changes,
    }))
}

/// The query of a history page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// A `seq`: the entries after it.
    after: Option<u64>,
}

/// `GET /api/v1/tickets/{id}/history[?after=SEQ]`: the entries, as many as fit in
/// `server.max_list_bytes`; when more follow, a `Link` header (`rel="next"`) says where.
pub async fn history(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Query(p) = params.map_err(ApiError::query)?;
    let id = ticket_id(&raw)?;
    existing(&app, id).await?;
    let budget = app.config.server.max_list_bytes;
    let (history, cut) = app
        .read(move |s| layout::history_page(s, id, p.after, budget))
        .await?;
    let next = cut.then(|| history.last().map(|h| h.seq)).flatten();
    let link =
        next.map(|seq| crate::api::page::next_link(&format!("/api/v1/tickets/{id}/history"), seq));
    Ok((axum::response::AppendHeaders(link), Json(history)).into_response())
}

/// `GET /api/v1/tickets/{id}/sla`: every clock now, with its timeline.
pub async fn sla(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<crate::sla::view::SlaView>, ApiError> {
    let id = ticket_id(&raw)?;
    let ticket = existing(&app, id).await?;
    let (sla, calendars) = app.engine.sla();
    Ok(Json(crate::sla::view::of(
        &ticket,
        &sla,
        &calendars,
        app.engine.now(),
    )))
}

/// The ticket routes (role `agent`): reads here, writes in [`api_writes`](super::api_writes),
/// alert occurrences in [`api_alerts`](super::api_alerts).
pub fn routes() -> Routes {
    use crate::tickets::{api_alerts, api_writes};
    Routes {
        agent: Router::new()
            .route("/api/v1/tickets", get(list).post(api_writes::create))
            .route("/api/v1/tickets/{id}", get(show).patch(api_writes::update))
            .route("/api/v1/tickets/{id}/history", get(history))
            .route("/api/v1/tickets/{id}/alerts", get(api_alerts::list))
            .route("/api/v1/tickets/{id}/sla", get(sla))
            .route(
                "/api/v1/tickets/{id}/transitions",
                post(api_writes::transition),
            )
            .route(
                "/api/v1/tickets/{id}/comments",
                get(api_writes::comments).post(api_writes::comment),
            )
            .route("/api/v1/tickets/{id}/links", post(api_writes::link)),
        ..Routes::default()
    }
}
