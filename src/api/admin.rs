//! Administration: a consistent export of the whole store while the daemon runs, and rule
//! reloads on demand.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::io::ReaderStream;
use tracing::info;

use crate::api::{ApiError, AppState};
use crate::backup;
use crate::reload::Reloaded;

/// `POST /api/v1/admin/rules/reload`: recompiles the rules folder; 200 with the new version,
/// or 422 with every compile error while the old rules keep running.
pub async fn reload_rules(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
) -> Result<Json<Reloaded>, ApiError> {
    let reloader = app.reloader.clone();
    let outcome = tokio::task::spawn_blocking(move || reloader.reload_rules())
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reload_failed",
                e.to_string(),
            )
        })?;
    outcome.map(Json).map_err(|errors| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules_invalid",
            format!(
                "{} error(s); the previous rules stay in force",
                errors.len()
            ),
        )
        .with_details(json!({ "errors": errors }))
    })
}

/// `GET /api/v1/admin/export` parameters.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// An archive from this time on (RFC 3339): the journal and the tickets updated since.
    since: Option<String>,
}

/// `GET /api/v1/admin/export[?since=RFC3339]`: the store as JSON lines (see `itsmd export`).
/// Commits pause while the dump is written to a temporary file (intake keeps queueing), then
/// it streams.
pub async fn export(
    State(app): State<AppState>,
    params: Result<axum::extract::Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(params) = params.map_err(ApiError::query)?;
    let since = params
        .since
        .map(|s| {
            crate::clock::parse_instant("`since`", &s).map_err(|e| ApiError::bad_query(vec![e]))
        })
        .transpose()?;
    let engine = app.engine.clone();
    let store = app.store.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut file =
            tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
        let entries = engine
            .with_commits_paused(|| {
                let mut out = std::io::BufWriter::new(&mut file);
                match since {
                    Some(since) => backup::export_since(&*store, &mut out, since),
                    None => backup::export(&*store, &mut out),
                }
            })
            .map_err(|e| e.to_string())?;
        use std::io::Seek;
        file.rewind()
            .map_err(|e| format!("cannot rewind the export: {e}"))?;
        Ok::<_, String>((file, entries))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let (file, entries) = written
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "export_failed", e))?;
    info!(entries, "Store exported.");
    let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(file)));
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], body).into_response())
}

/// `POST /api/v1/admin/replay` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Candidate rule files: name → text, run in name order.
    rules: std::collections::BTreeMap<String, String>,
    /// Report only events received at or after this instant (all events are replayed).
    #[serde(default)]
    since: Option<jiff::Timestamp>,
}

/// `POST /api/v1/admin/replay`: what a candidate rule set would have done with every recorded
/// event, against what happened. Read-only: runs on an in-memory copy.
pub async fn replay(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    crate::api::json::JsonBody(req): crate::api::json::JsonBody<ReplayRequest>,
) -> Result<Json<crate::rules::replay::Report>, ApiError> {
    use crate::rules::replay;
    use crate::rules::replay::ReplayError;
    let (config, store) = (app.config.clone(), app.store.clone());
    let sources: Vec<(String, String)> = req.rules.into_iter().collect();
    // Shutdown stops the replay between two events, so it never outlives the daemon.
    let stop = app.shutdown.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        replay::replay(&config, &*store, sources, req.since, &stop)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "replay_failed",
            e.to_string(),
        )
    })?;
    outcome.map(Json).map_err(|e| match e {
        ReplayError::Rules(errors) => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rules_invalid",
                format!("{} error(s)", errors.len()),
            )
            .with_details(json!({ "errors": errors }))
        }
        pruned @ ReplayError::Pruned { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "journal_pruned",
            pruned.to_string(),
        ),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "replay_failed",
            other.to_string(),
        ),
    })
}
