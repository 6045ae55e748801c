//! Liveness, readiness and metrics: open endpoints for probes and scrapers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{ApiError, AppState};
use crate::metrics::{HttpLabels, Metrics, TicketLabels};
use crate::store::layout;

/// `GET /healthz`: the daemon answers; which rules and how busy.
pub async fn healthz(State(app): State<AppState>) -> Json<Value> {
    let status = app.engine.status();
    let (role, holder) = app.engine.role();
    Json(json!({
        "status": "ok",
        "role": role,
        "lease_holder": holder,
        "version": env!("CARGO_PKG_VERSION"),
        "rules_version": status.rules_version,
        "rules_origin": status.rules_origin,
        "queue_depth": app.engine.queue_depth(),
        "events_processed": status.events,
        "disabled_rules": status.disabled_rules,
        "last_reload": app.reloader.last_reload(),
    }))
}

/// How long a failed commit keeps /readyz at 503 when no commit has come since. Past it the
/// daemon says ready again so that traffic (routed by readiness) can show whether writes
/// work: an idle daemon that stayed unready forever would never be sent the event that
/// proves the store is back.
const FAILED_COMMIT_UNREADY: std::time::Duration = std::time::Duration::from_secs(60);

/// `GET /readyz`: 200 only while the store is open, the rules are loaded and the engine
/// takes events (the server starts after the first two); 503 with the reason once shutdown
/// begins, when the last commit failed (for [`FAILED_COMMIT_UNREADY`] or until a commit
/// succeeds), or when a batch has been committing for longer than `engine.stall_after_secs`.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = app.engine.status();
    let not_ready = |why: &str| ApiError {
        retry_after: Some(1),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", why)
    };
    if app.shutdown.is_cancelled() {
        return Err(not_ready("shutting down"));
    }
    if !status.running {
        return Err(not_ready("the engine is not running"));
    }
    if let Some((error, at)) = &status.last_commit_error
        && at.elapsed() < FAILED_COMMIT_UNREADY
    {
        return Err(not_ready(&format!(
            "the last commit failed {}s ago: {error}",
            at.elapsed().as_secs()
        )));
    }
    let stall = std::time::Duration::from_secs(app.config.engine.stall_after_secs);
    if let Some(since) = status.committing_since
        && since.elapsed() > stall
    {
        return Err(not_ready(&format!(
            "the engine has been committing one batch for {}s (engine.stall_after_secs = {}): \
             stalled on the disk or a rule",
            since.elapsed().as_secs(),
            stall.as_secs()
        )));
    }
    let (role, holder) = app.engine.role();
    Ok(Json(json!({
        "status": "ready",
        "rules_version": status.rules_version,
        "role": role,
        "lease_holder": holder,
    })))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics_text(State(app): State<AppState>) -> Result<Response, ApiError> {
    let m = &*app.metrics;
    m.queue_depth.set(app.engine.queue_depth() as i64);
    let counts = app.read(layout::ticket_counts).await?;
    m.tickets.clear();
    for (kind, state, n) in counts {
        let labels = TicketLabels {
            kind: kind.as_str().into(),
            state: state.as_str().into(),
        };
        m.tickets.get_or_create(&labels).set(n as i64);
    }
    use crate::store::layout::outbox;
    m.outbox_pending.set(
        app.read(move |s| outbox::count(s, crate::store::Tree::Outbox))
            .await? as i64,
    );
    m.outbox_dead.set(
        app.read(move |s| outbox::count(s, crate::store::Tree::OutboxDead))
            .await? as i64,
    );
    m.sla_timers_pending
        .set(app.read(crate::store::layout::sla_timers::count).await? as i64);
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], m.encode()).into_response())
}

/// Middleware counting every request by matched route and status.
pub async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    let labels = HttpLabels {
        route,
        status: response.status().as_u16(),
    };
    metrics.http_requests.get_or_create(&labels).inc();
    response
}
