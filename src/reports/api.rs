//! `GET /api/v1/reports` and `GET /api/v1/reports/{name}`: process reports for a period
//! (`from`, `to`, `last`), computed from the history on a blocking thread. Read-only.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::api::{ApiError, AppState, Routes};
use crate::reports;
use crate::reports::{Report, SECTIONS};

#[derive(Debug, Deserialize)]
pub struct PeriodParams {
    from: Option<String>,
    to: Option<String>,
    last: Option<String>,
}

/// `GET /api/v1/reports?from=&to=&last=`: every section.
pub async fn all(
    state: State<AppState>,
    params: Result<Query<PeriodParams>, QueryRejection>,
) -> Result<Json<Report>, ApiError> {
    one(state, Path("all".to_string()), params).await
}

/// `GET /api/v1/reports/{name}?from=&to=&last=`: one section (mtta, mttr, sla, breaches,
/// backlog, volume, escalations) or `all`.
pub async fn one(
    State(app): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<PeriodParams>, QueryRejection>,
) -> Result<Json<Report>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if name != "all" && !SECTIONS.contains(&name.as_str()) {
        return Err(ApiError::not_found(format!(
            "no report `{name}`; reports: all, {}",
            SECTIONS.join(", ")
        )));
    }
    let (from, to) = reports::period(
        p.from.as_deref(),
        p.to.as_deref(),
        p.last.as_deref(),
        app.engine.now(),
    )
    .map_err(ApiError::invalid)?;
    let (sla, calendars) = app.engine.sla();
    let store = app.store.clone();
    let computed =
        tokio::task::spawn_blocking(move || reports::compute(&*store, &sla, &calendars, from, to))
            .await
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("the report failed: {e}"),
                )
            })?;
    let mut report = computed?;
    report.keep(&name);
    Ok(Json(report))
}

/// The report routes (role `agent`).
pub fn routes() -> Routes {
    Routes {
        agent: Router::new()
            .route("/api/v1/reports", get(all))
            .route("/api/v1/reports/{name}", get(one)),
        ..Routes::default()
    }
}
