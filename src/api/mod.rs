//! The HTTP API (axum): intake endpoints hand events to the engine and answer once they are
//! durable; read endpoints go straight to the store. Handlers never write to the store.

mod admin;
pub mod auth;
mod error;
mod events;
mod health;
mod intake;
mod json;
mod limits;
mod outbox;
mod reports;
mod serve;
mod ticket_alerts;
mod ticket_writes;
mod tickets;
mod vendors;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};

pub use auth::{Keys, Principal};
pub use error::ApiError;
pub use limits::Limits;
pub use serve::serve;

use crate::config::{Config, Role};
use crate::engine::EngineHandle;
use crate::reload::Reloader;
use crate::store::Store;
use tokio_util::sync::CancellationToken;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Reads go straight here.
    pub store: Arc<dyn Store>,
    /// Every write goes through here.
    pub engine: EngineHandle,
    /// Limits and settings the handlers need (e.g. Retry-After).
    pub config: Arc<Config>,
    /// The API tokens in force.
    pub keys: Keys,
    /// Cancelled when shutdown begins (readiness turns false).
    pub shutdown: CancellationToken,
    /// Reloads rules (and configuration) on request.
    pub reloader: Arc<Reloader>,
    /// Partner vendors with their secrets, to verify callbacks.
    pub vendors: crate::outbound::vendors::Vendors,
    /// Load shedding, timeouts and per-caller intake rates (shared by every route).
    pub limits: Limits,
    /// The daemon's registry, served on `/metrics` (the engine's: `engine.metrics()`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Every route, grouped by the role it needs. Health, readiness and metrics are open and not
/// subject to load shedding, so probes answer under load.
pub fn router(state: AppState) -> Router {
    let limit = state.config.server.max_body_bytes;
    let limits = state.limits.clone();
    let need = |role: Role| from_fn_with_state((state.keys.clone(), role), auth::require);

    let intake = Router::new()
        .route("/api/v1/events", post(events::post_generic))
        .route("/api/v2/alerts", post(intake::post_prometheus))
        .route("/webhook/alertmanager", post(intake::post_alertmanager))
        .route_layer(from_fn_with_state(limits.clone(), limits::ingest_rate))
        .route_layer(need(Role::Ingest));
    // PagerDuty senders authenticate with the routing key in the body (checked by the handler).
    let pagerduty = Router::new().route("/v2/enqueue", post(intake::post_pagerduty));
    // Vendors authenticate with the Standard Webhooks signature (checked by the handler).
    let vendors = Router::new().route("/api/v1/vendors/{name}/callback", post(vendors::callback));
    let agent = Router::new()
        .route("/api/v1/tickets", get(tickets::list))
        .route("/api/v1/tickets/{id}", get(tickets::show))
        .route("/api/v1/tickets/{id}/history", get(tickets::history))
        .route("/api/v1/tickets/{id}/alerts", get(ticket_alerts::list))
        .route("/api/v1/tickets/{id}/sla", get(tickets::sla))
        .route("/api/v1/tickets", post(ticket_writes::create))
        .route("/api/v1/tickets/{id}", patch(ticket_writes::update))
        .route(
            "/api/v1/tickets/{id}/transitions",
            post(ticket_writes::transition),
        )
        .route(
            "/api/v1/tickets/{id}/comments",
            get(ticket_writes::comments).post(ticket_writes::comment),
        )
        .route("/api/v1/tickets/{id}/links", post(ticket_writes::link))
        .route("/api/v1/reports", get(reports::all))
        .route("/api/v1/reports/{name}", get(reports::one))
        .route_layer(need(Role::Agent));
    let admin = Router::new()
        .route("/api/v1/admin/export", get(admin::export))
        .route("/api/v1/admin/rules/reload", post(admin::reload_rules))
        .route("/api/v1/admin/outbox", get(outbox::list))
        .route("/api/v1/admin/outbox/replay", post(outbox::replay))
        .route("/api/v1/admin/outbox/{id}", get(outbox::show))
        .route("/api/v1/admin/replay", post(admin::replay))
        .route_layer(need(Role::Admin));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics_text));

    Router::new()
        .merge(intake)
        .merge(pagerduty)
        .merge(vendors)
        .merge(agent)
        .merge(admin)
        .layer(from_fn_with_state(limits, limits::shed_and_time))
        .merge(open)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(from_fn_with_state(
            state.metrics.clone(),
            health::count_requests,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
