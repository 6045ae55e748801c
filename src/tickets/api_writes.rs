//! Agents' ticket writes: each request becomes a command event for the engine (so it is
//! ordered with alerts and rules and journaled), and the answer, sent after the batch is
//! durable, is the ticket as stored. Handlers never write to the store; they only read the
//! result back. Also the comment listing, which belongs with comments.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::api::json::JsonBody;
use crate::api::{ApiError, AppState};
use crate::auth::Principal;
use crate::engine::Refusal;
use crate::event::EventBody;
use crate::tickets::api::{TicketJson, ticket_id};
use crate::tickets::{
    Action, Actor, Command, Comment, CommentRequest, LinkRequest, NewTicket, TicketUpdate,
    TransitionRequest, Visibility,
};

impl ApiError {
    /// The answer to a refused command, with the status and details that say why.
    pub fn refused(r: Refusal) -> ApiError {
        let message = r.to_string();
        match r {
            Refusal::NotFound(_) => ApiError::not_found(message),
            Refusal::Illegal(i) => {
                ApiError::new(StatusCode::CONFLICT, "illegal_transition", message)
                    .with_details(json!({ "from": i.from, "to": i.to, "allowed": i.allowed }))
            }
            Refusal::Invalid(problems) => {
                let list: Vec<_> = problems
                    .iter()
                    .map(|p| json!({ "field": p.field, "message": p.message }))
                    .collect();
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
                    .with_details(
                        json!({ "field": problems.first().map(|p| &p.field), "problems": list }),
                    )
            }
            Refusal::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            Refusal::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
        }
    }
}

/// Submits `action` as the caller and reads back the ticket it concerns.
pub(crate) async fn run(
    app: &AppState,
    who: Principal,
    action: Action,
) -> Result<TicketJson, ApiError> {
    let command = Command {
        by: Actor::User { name: who.name },
        action,
    };
    let receipt = app
        .engine
        .submit(EventBody::Command(command))
        .await
        .map_err(|e| ApiError::submit(e, app.config.engine.retry_after_secs))?;
    let id = receipt.ticket.ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_ticket",
            "the command named no ticket",
        )
    })?;
    Ok(crate::tickets::api::existing(app, id).await?.into())
}

/// `POST /api/v1/tickets`: 201 with the new ticket and its Location.
pub async fn create(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(new): JsonBody<NewTicket>,
) -> Result<(StatusCode, HeaderMap, Json<TicketJson>), ApiError> {
    crate::api::fields::new_ticket(&app.config.limits, &new)?;
    let ticket = run(&app, who, Action::Create(new)).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/tickets/{}", ticket.ticket.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, Json(ticket)))
}

/// `PATCH /api/v1/tickets/{id}`
pub async fn update(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    JsonBody(fields): JsonBody<TicketUpdate>,
) -> Result<Json<TicketJson>, ApiError> {
    crate::api::fields::ticket_update(&app.config.limits, &fields)?;
    let ticket = ticket_id(&raw)?;
    Ok(Json(
        run(
            &app,
            who,
            Action::Update {
                ticket,
                fields,
                if_assignee: None,
            },
        )
        .await?,
    ))
}

/// `POST /api/v1/tickets/{id}/transitions`
pub async fn transition(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    JsonBody(step): JsonBody<TransitionRequest>,
) -> Result<Json<TicketJson>, ApiError> {
    crate::api::fields::transition(&app.config.limits, &step)?;
    let ticket = ticket_id(&raw)?;
    Ok(Json(
        run(&app, who, Action::Transition { ticket, step }).await?,
    ))
}

/// `POST /api/v1/tickets/{id}/comments`: 201 with the ticket.
pub async fn comment(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    JsonBody(comment): JsonBody<CommentRequest>,
) -> Result<(StatusCode, Json<TicketJson>), ApiError> {
    crate::api::fields::comment(&app.config.limits, &comment)?;
    let ticket = ticket_id(&raw)?;
    let t = run(&app, who, Action::Comment { ticket, comment }).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// `POST /api/v1/tickets/{id}/links`: 201 with the ticket.
pub async fn link(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    JsonBody(link): JsonBody<LinkRequest>,
) -> Result<(StatusCode, Json<TicketJson>), ApiError> {
    let ticket = ticket_id(&raw)?;
    let t = run(&app, who, Action::Link { ticket, link }).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentParams {
    visibility: Option<String>,
    /// A `seq`: the comments after it.
    after: Option<u64>,
}

/// `GET /api/v1/tickets/{id}/comments?visibility=public|internal[&after=SEQ]`: as many as
/// fit in `server.max_list_bytes`; when more follow, a `Link` header (`rel="next"`) says where.
pub async fn comments(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    params: Result<Query<CommentParams>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Query(p) = params.map_err(ApiError::query)?;
    let only: Option<Visibility> = p
        .visibility
        .map(|v| v.parse())
        .transpose()
        .map_err(|e: String| ApiError::bad_request(format!("`visibility`: {e}")))?;
    let id = ticket_id(&raw)?;
    crate::tickets::api::existing(&app, id).await?;
    let budget = app.config.server.max_list_bytes;
    let after = p.after;
    let (list, cut) = app
        .read(move |s| {
            crate::store::layout::comments_page(s, id, after, budget, |c: &Comment| {
                only.is_none_or(|v| c.visibility == v)
            })
        })
        .await?;
    let next = cut.then(|| list.last().map(|c| c.seq)).flatten();
    let link = next.map(|seq| {
        let path = format!("/api/v1/tickets/{id}/comments");
        match only {
            Some(v) => (
                axum::http::header::LINK,
                format!("<{path}?visibility={v}&after={seq}>; rel=\"next\""),
            ),
            None => crate::api::page::next_link(&path, seq),
        }
    });
    Ok((axum::response::AppendHeaders(link), Json(list)).into_response())
}
