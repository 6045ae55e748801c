//! Intake of itsmd's generic events.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::json::JsonBody;
use super::{ApiError, AppState};
use crate::engine::Receipt;
use crate::model::EventBody;
use crate::sources::http::generic::GenericEvent;

/// `POST /api/v1/events`: 202 with the receipt once the event and its effects are durable.
pub async fn post_generic(
    State(app): State<AppState>,
    JsonBody(event): JsonBody<GenericEvent>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let alert = event.into_alert().map_err(ApiError::invalid)?;
    let receipt = app
        .engine
        .submit(EventBody::Alert(alert))
        .await
        .map_err(|e| ApiError::submit(e, app.config.engine.retry_after_secs))?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}
