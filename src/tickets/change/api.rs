//! The change routes (role `agent`): the standard change catalogue, the change calendar,
//! and recording a change's post-implementation review (a command, like every write).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use crate::api::json::JsonBody;
use crate::api::{ApiError, AppState, Routes};
use crate::auth::Principal;
use crate::tickets::api::{TicketJson, ticket_id};
use crate::tickets::change::calendar::{self, Entry};
use crate::tickets::{Action, ChangeTemplate, ReviewRequest};

/// One template of the catalogue, with its id.
#[derive(Serialize)]
pub struct TemplateJson {
    id: String,
    #[serde(flatten)]
    template: ChangeTemplate,
}

#[derive(Serialize)]
pub struct Templates {
    templates: Vec<TemplateJson>,
}

/// `GET /api/v1/changes/templates`: the standard change catalogue in force, by id.
pub async fn templates(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
) -> Json<Templates> {
    let templates: BTreeMap<String, ChangeTemplate> = app.engine.changes().templates;
    Json(Templates {
        templates: templates
            .into_iter()
            .map(|(id, template)| TemplateJson { id, template })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarParams {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize)]
pub struct Calendar {
    from: jiff::Timestamp,
    to: jiff::Timestamp,
    changes: Vec<Entry>,
}

/// Longest range one calendar request may span.
const MAX_DAYS: i64 = 366;

/// `GET /api/v1/changes/calendar?from=&to=` (RFC 3339, both required, `from` before `to`):
/// the changes whose windows overlap `[from, to)`, with their conflicts.
pub async fn show(
    State(app): State<AppState>,
    params: Result<Query<CalendarParams>, QueryRejection>,
) -> Result<Json<Calendar>, ApiError> {
    let Query(p) = params.map_err(ApiError::query)?;
    let mut problems = Vec::new();
    let mut time = |name: &str, raw: Option<String>| -> Option<jiff::Timestamp> {
        match raw {
            None => {
                problems.push(format!("`{name}` is required (an RFC 3339 time)"));
                None
            }
            Some(v) => crate::clock::parse_instant(&format!("`{name}`"), &v)
                .map_err(|e| problems.push(e))
                .ok(),
        }
    };
    let from = time("from", p.from);
    let to = time("to", p.to);
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            problems.push(format!("`to` ({t}) must be after `from` ({f})"));
        } else if t.duration_since(f) > jiff::SignedDuration::from_hours(24 * MAX_DAYS) {
            problems.push(format!("`to`: the range may span at most {MAX_DAYS} days"));
        }
    }
    let (Some(from), Some(to), true) = (from, to, problems.is_empty()) else {
        return Err(ApiError::bad_query(problems));
    };
    let all = app
        .read(move |store| calendar::planned_changes(store, from, to))
        .await?;
    Ok(Json(Calendar {
        from,
        to,
        changes: calendar::build(&all, from, to),
    }))
}

/// `POST /api/v1/tickets/{id}/review`: the post-implementation review of a change in review.
pub async fn review(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    JsonBody(review): JsonBody<ReviewRequest>,
) -> Result<Json<TicketJson>, ApiError> {
    crate::api::fields::review(&app.config.limits, &review)?;
    let ticket = ticket_id(&raw)?;
    Ok(Json(
        crate::tickets::api_writes::run(&app, who, Action::Review { ticket, review }).await?,
    ))
}

pub fn routes() -> Routes {
    Routes {
        agent: Router::new()
            .route("/api/v1/changes/templates", get(templates))
            .route("/api/v1/changes/calendar", get(show))
            .route("/api/v1/tickets/{id}/review", post(review)),
        ..Routes::default()
    }
}
