//! The HTTP API (axum): intake endpoints hand events to the engine and answer once they are
//! durable; read endpoints go straight to the store. Handlers never write to the store.

mod admin;
mod error;
mod health;
pub(crate) mod json;
mod limits;
mod serve;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};

pub use error::ApiError;
pub use limits::Limits;
pub use serve::serve;

use crate::config::Config;

use crate::auth::Keys;
use crate::auth::Role;
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
    pub vendors: crate::vendors::registry::Vendors,
    /// Load shedding, timeouts and per-caller intake rates (shared by every route).
    pub limits: Limits,
    /// The daemon's registry, served on `/metrics` (the engine's: `engine.metrics()`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// Runs a store read on a blocking thread: a read may wait for the disk (or, on another
    /// backend, the network), which must not stall the runtime's workers.
    pub async fn read<T, F>(&self, read: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || read(&*store)).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("store read failed: {e}"),
            )),
        }
    }
}

/// Every route, grouped by the role it needs. Health, readiness and metrics are open and not
/// subject to load shedding, so probes answer under load.
pub fn router(state: AppState) -> Router {
    let limit = state.config.server.max_body_bytes;
    let limits = state.limits.clone();
    let need =
        |role: Role| from_fn_with_state((state.keys.clone(), role), crate::auth::tokens::require);

    let intake = Router::new()
        .route(
            "/api/v1/events",
            post(crate::alerts::api_events::post_generic),
        )
        .route("/api/v2/alerts", post(crate::alerts::api::post_prometheus))
        .route(
            "/webhook/alertmanager",
            post(crate::alerts::api::post_alertmanager),
        )
        .route_layer(from_fn_with_state(limits.clone(), limits::ingest_rate))
        .route_layer(need(Role::Ingest));
    // PagerDuty senders authenticate with the routing key in the body (checked by the handler).
    let pagerduty = Router::new().route("/v2/enqueue", post(crate::alerts::api::post_pagerduty));
    // Vendors authenticate with the Standard Webhooks signature (checked by the handler).
    let vendors = Router::new().route(
        "/api/v1/vendors/{name}/callback",
        post(crate::vendors::api::callback),
    );
    let agent = Router::new()
        .route("/api/v1/tickets", get(crate::tickets::api::list))
        .route("/api/v1/tickets/{id}", get(crate::tickets::api::show))
        .route(
            "/api/v1/tickets/{id}/history",
            get(crate::tickets::api::history),
        )
        .route(
            "/api/v1/tickets/{id}/alerts",
            get(crate::tickets::api_alerts::list),
        )
        .route("/api/v1/tickets/{id}/sla", get(crate::tickets::api::sla))
        .route("/api/v1/tickets", post(crate::tickets::api_writes::create))
        .route(
            "/api/v1/tickets/{id}",
            patch(crate::tickets::api_writes::update),
        )
        .route(
            "/api/v1/tickets/{id}/transitions",
            post(crate::tickets::api_writes::transition),
        )
        .route(
            "/api/v1/tickets/{id}/comments",
            get(crate::tickets::api_writes::comments).post(crate::tickets::api_writes::comment),
        )
        .route(
            "/api/v1/tickets/{id}/links",
            post(crate::tickets::api_writes::link),
        )
        .route("/api/v1/reports", get(crate::reports::api::all))
        .route("/api/v1/reports/{name}", get(crate::reports::api::one))
        .route_layer(need(Role::Agent));
    let admin = Router::new()
        .route("/api/v1/admin/export", get(admin::export))
        .route("/api/v1/admin/rules/reload", post(admin::reload_rules))
        .route(
            "/api/v1/admin/outbox",
            get(crate::vendors::api_outbox::list),
        )
        .route(
            "/api/v1/admin/outbox/replay",
            post(crate::vendors::api_outbox::replay),
        )
        .route(
            "/api/v1/admin/outbox/{id}",
            get(crate::vendors::api_outbox::show),
        )
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
