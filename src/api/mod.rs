//! The HTTP API (axum): intake endpoints hand events to the engine and answer once they are
//! durable; read endpoints go straight to the store. Handlers never write to the store.

mod error;
mod events;
mod health;
mod intake;
mod json;
mod ticket_alerts;
mod tickets;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Reads go straight here.
    pub store: Arc<dyn Store>,
    /// Every write goes through here.
    pub engine: EngineHandle,
    /// Limits and settings the handlers need (e.g. Retry-After).
    pub config: Arc<Config>,
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.server.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/api/v1/events", post(events::post_generic))
        .route("/api/v1/tickets", get(tickets::list))
        .route("/api/v1/tickets/{id}", get(tickets::show))
        .route("/api/v1/tickets/{id}/history", get(tickets::history))
        .route("/api/v1/tickets/{id}/alerts", get(ticket_alerts::list))
        .route("/api/v2/alerts", post(intake::post_prometheus))
        .route("/webhook/alertmanager", post(intake::post_alertmanager))
        .route("/v2/enqueue", post(intake::post_pagerduty))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
