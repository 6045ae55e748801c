//! Administration: a consistent export of the whole store while the daemon runs.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;
use tracing::info;

use super::{ApiError, AppState};
use crate::backup;

/// `GET /api/v1/admin/export`: the store as JSON lines (see `itsmd export`). Commits pause
/// while the dump is written to a temporary file (intake keeps queueing), then it streams.
pub async fn export(State(app): State<AppState>) -> Result<Response, ApiError> {
    let engine = app.engine.clone();
    let store = app.store.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut file =
            tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
        let entries = engine
            .with_commits_paused(|| {
                let mut out = std::io::BufWriter::new(&mut file);
                backup::export(&*store, &mut out)
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
