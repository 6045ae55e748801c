//! The HTTP API (axum): intake endpoints hand events to the engine and answer once they are
//! durable; read endpoints go straight to the store. Handlers never write to the store.

mod admin;
pub mod browser;
mod error;
pub mod fields;
pub mod health;
pub(crate) mod json;
pub(crate) mod limits;
pub mod page;
pub mod query;
mod serve;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use error::ApiError;
pub use limits::Limits;
pub use serve::{ConnLimits, serve};

use tokio_util::sync::CancellationToken;

use crate::auth::{Keys, Role};
use crate::config::Config;
use crate::engine::EngineHandle;
use crate::reload::Reloader;
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
    /// The hosts and origins the API answers to (`server.allowed_hosts`).
    pub browser: browser::Guard,
    /// The console's sessions and sign-in rate limits (in memory).
    pub console: crate::console::session::Sessions,
}

impl AppState {
    /// Runs a store read on a blocking thread: a read may wait for the disk (or, on another
    /// backend, the network), which must not stall the runtime's workers.
    pub async fn read<T, F>(&self, read: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        Ok(crate::store::read(&self.store, read).await?)
    }
}

/// A capability's routes, by who may call them: each capability's `api::routes()` lists its
/// own, and [`router`] puts the role checks in front.
#[derive(Default)]
pub struct Routes {
    /// Monitoring senders (role `ingest`, rate-limited per caller).
    pub ingest: Router<AppState>,
    /// Senders that authenticate in the request itself (PagerDuty routing keys, vendors'
    /// signatures), checked by the handler.
    pub own_auth: Router<AppState>,
    /// Agents (role `agent` or above).
    pub agent: Router<AppState>,
    /// Administrators.
    pub admin: Router<AppState>,
}

impl Routes {
    pub fn merge(self, other: Routes) -> Routes {
        Routes {
            ingest: self.ingest.merge(other.ingest),
            own_auth: self.own_auth.merge(other.own_auth),
            agent: self.agent.merge(other.agent),
            admin: self.admin.merge(other.admin),
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

    let mut routes = Routes::default()
        .merge(crate::alerts::api::routes())
        .merge(crate::tickets::api::routes())
        .merge(crate::tickets::change::api::routes())
        .merge(crate::reports::api::routes())
        .merge(crate::vendors::api::routes())
        .merge(crate::mail::outbound::api::routes())
        .merge(crate::auth::api::routes())
        .merge(crate::console::routes());
    routes.admin = routes
        .admin
        .route("/api/v1/admin/export", get(admin::export))
        .route("/api/v1/admin/rules/reload", post(admin::reload_rules))
        .route("/api/v1/admin/replay", post(admin::replay));
    // Routes that need a token share `max_concurrent_requests`; those reachable without
    // one have a budget of their own, so they cannot starve authenticated intake.
    let shed = || from_fn_with_state(limits.clone(), limits::shed_and_time);
    let ingest = routes
        .ingest
        .route_layer(from_fn_with_state(limits.clone(), limits::ingest_rate))
        .route_layer(need(Role::Ingest))
        .route_layer(shed());
    let agent = routes
        .agent
        .route_layer(need(Role::Agent))
        .route_layer(shed());
    let admin = routes
        .admin
        .route_layer(need(Role::Admin))
        .route_layer(shed());
    let own_auth = routes
        .own_auth
        .route_layer(from_fn_with_state(limits.clone(), limits::shed_anonymous));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics_text));

    Router::new()
        .merge(ingest)
        .merge(own_auth)
        .merge(agent)
        .merge(admin)
        .layer(from_fn_with_state(state.browser.clone(), browser::check))
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
