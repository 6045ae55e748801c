//! `GET /api/v1/admin/templates/{name}/render?ticket=ID`: a template of the set in force
//! rendered against a stored ticket (its latest comment and SLA state in scope), for
//! `itsmd templates render`. Reads only.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, AppState, Routes};
use crate::store::layout;
use crate::tickets::TicketId;

pub fn routes() -> Routes {
    Routes {
        admin: axum::Router::new().route("/api/v1/admin/templates/{name}/render", get(render)),
        ..Routes::default()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderQuery {
    ticket: String,
}

async fn render(
    State(app): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<RenderQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(ApiError::query)?;
    let id: TicketId = q
        .ticket
        .parse()
        .map_err(|e| ApiError::bad_request(format!("ticket: {e}")))?;
    let set = app.engine.templates();
    if !set.is_notification(&name) {
        return Err(ApiError::not_found(format!(
            "no template `{name}`; notification templates: {}",
            set.notifications().join(", ")
        )));
    }
    let (ticket, comments) = app
        .read(move |store| {
            let t = layout::get_ticket(store, id)?;
            let c = match &t {
                Some(_) => layout::comments(store, id)?,
                None => Vec::new(),
            };
            Ok((t, c))
        })
        .await?;
    let Some(ticket) = ticket else {
        return Err(ApiError::not_found(format!("no ticket {id}")));
    };
    let (subject, text, html) = set
        .preview(&name, &ticket, comments.last())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({
        "template": name, "ticket": id.to_string(),
        "subject": subject, "text": text, "html": html,
    })))
}
