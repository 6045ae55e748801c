//! Intake of itsmd's generic events.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::alerts::intake;
use crate::api::json::RawBody;
use crate::api::{ApiError, AppState};
use crate::engine::Receipt;
use crate::event::EventBody;

/// `POST /api/v1/events`: 202 with the receipt once the event and its effects are durable.
pub async fn post_generic(
    State(app): State<AppState>,
    body: Result<RawBody, ApiError>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let result = accept_generic(&app, body).await;
    app.metrics
        .intake("generic", result.as_ref().map(|_| ()).map_err(|e| e.code));
    Ok((StatusCode::ACCEPTED, Json(result?)))
}

async fn accept_generic(
    app: &AppState,
    body: Result<RawBody, ApiError>,
) -> Result<Receipt, ApiError> {
    let RawBody(bytes) = body?;
    let alert = intake::body::generic(&bytes)?;
    crate::api::fields::alerts(&app.config.limits, std::slice::from_ref(&alert))?;
    app.engine
        .submit(EventBody::Alert(alert))
        .await
        .map_err(|e| ApiError::submit(e, app.config.engine.retry_after_secs))
}
