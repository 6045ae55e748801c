//! Liveness and what is running.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: the daemon answers; which rules and how busy.
pub async fn healthz(State(app): State<AppState>) -> Json<Value> {
    let status = app.engine.status();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "rules_version": status.rules_version,
        "rules_origin": status.rules_origin,
        "queue_depth": app.engine.queue_depth(),
        "events_processed": status.events,
    }))
}
