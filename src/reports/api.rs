//! `GET /api/v1/reports` and `GET /api/v1/reports/{name}`: process reports for a period
//! (`from`, `to`, `last`) as JSON, CSV or text (`format`), computed from the engine's
//! aggregates on a blocking thread. Read-only.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::api::{ApiError, AppState, Routes};
use crate::reports;
use crate::reports::SECTIONS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodParams {
    from: Option<String>,
    to: Option<String>,
    last: Option<String>,
    /// `json` (the default), `csv` or `table`.
    format: Option<String>,
}

/// How a report is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Table,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "table" => Ok(Format::Table),
            _ => Err(format!(
                "`format`: unknown format {s:?}; expected one of json, csv, table"
            )),
        }
    }
}

/// `GET /api/v1/reports?from=&to=&last=&format=`: every section.
pub async fn all(
    state: State<AppState>,
    params: Result<Query<PeriodParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    one(state, Path("all".to_string()), params).await
}

/// `GET /api/v1/reports/{name}?from=&to=&last=&format=`: one section (mtta, mttr, sla,
/// breaches, backlog, volume, escalations, trends) or `all`.
pub async fn one(
    State(app): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<PeriodParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(ApiError::query)?;
    let format = match p.format.as_deref() {
        None => Format::Json,
        Some(f) => f.parse().map_err(ApiError::bad_request)?,
    };
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
    .map_err(ApiError::bad_query)?;
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
    let (text, kind) = match format {
        Format::Json => return Ok(Json(report).into_response()),
        Format::Csv => (reports::csv::render(&report), "text/csv; charset=utf-8"),
        Format::Table => (reports::table::render(&report), "text/plain; charset=utf-8"),
    };
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(resp)
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
