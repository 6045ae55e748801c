//! Monitoring intake in the senders' own wire formats: Prometheus' Alertmanager API,
//! Alertmanager and Grafana webhooks, PagerDuty Events API v2. Each request is parsed whole
//! (every problem reported, nothing submitted on any), its N alerts are submitted together,
//! and the answer goes out once all of them are durable. Parsing lives in
//! `alerts::intake`; this module only adapts HTTP.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::alerts::intake::pagerduty;
use crate::alerts::{Alert, intake};
use crate::api::json::RawBody;
use crate::api::limits::Quota;
use crate::api::{ApiError, AppState, Routes};
use crate::engine::Receipt;
use crate::event::EventBody;
use crate::metrics::Metrics;

/// The answer to a request carrying several alerts: one receipt per alert, in order.
#[derive(Debug, Serialize)]
pub struct Receipts {
    pub receipts: Vec<Receipt>,
}

/// Submits every alert of one request together; 202 once all are durable.
async fn submit_all(app: &AppState, alerts: Vec<Alert>) -> Result<Vec<Receipt>, ApiError> {
    if alerts.len() > app.engine.capacity() {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "{} alerts in one request; at most engine.queue_capacity = {}",
                alerts.len(),
                app.engine.capacity()
            ),
        ));
    }
    crate::api::fields::alerts(&app.config.limits, &alerts)?;
    let bodies = alerts.into_iter().map(EventBody::Alert).collect();
    app.engine
        .submit_many(bodies)
        .await
        .map_err(|e| ApiError::submit(e, app.config.engine.retry_after_secs))
}

/// Counts the outcome of an intake request and shapes its answer.
fn answer(
    metrics: &Metrics,
    source: &str,
    result: Result<Vec<Receipt>, ApiError>,
) -> Result<(StatusCode, Json<Receipts>), ApiError> {
    metrics.intake(source, result.as_ref().map(|_| ()).map_err(|e| e.code));
    Ok((StatusCode::ACCEPTED, Json(Receipts { receipts: result? })))
}

/// `POST /api/v2/alerts`: what Prometheus sends to an Alertmanager.
pub async fn post_prometheus(
    State(app): State<AppState>,
    body: Result<RawBody, ApiError>,
) -> Result<(StatusCode, Json<Receipts>), ApiError> {
    let result = async {
        let RawBody(bytes) = body?;
        let alerts = intake::body::prometheus(&bytes, app.engine.now())?;
        submit_all(&app, alerts).await
    };
    answer(&app.metrics, "prometheus", result.await)
}

/// `POST /webhook/alertmanager`: Alertmanager's webhook v4 and Grafana's webhook.
pub async fn post_alertmanager(
    State(app): State<AppState>,
    body: Result<RawBody, ApiError>,
) -> Result<(StatusCode, Json<Receipts>), ApiError> {
    let result = async {
        let RawBody(bytes) = body?;
        let alerts = intake::body::webhook(&bytes, app.engine.now())?;
        submit_all(&app, alerts).await
    };
    answer(&app.metrics, "alertmanager", result.await)
}

/// Numbers minted dedup keys within this process.
static MINTED: AtomicU64 = AtomicU64::new(0);

/// PagerDuty's error shape: `{"status": "invalid event", "message", "errors": [...]}`.
fn pd_invalid(status: StatusCode, errors: Vec<String>) -> Response {
    let body = json!({
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": errors,
    });
    (status, Json(body)).into_response()
}

/// `POST /v2/enqueue`: PagerDuty Events API v2, answered exactly as PagerDuty does.
pub async fn post_pagerduty(
    State(app): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let metrics = app.metrics.clone();
    let answer = pagerduty_event(app, body).await;
    counted(&metrics, "pagerduty", answer.unwrap_or_else(|r| r))
}

/// `POST /v2/change/enqueue`: PagerDuty change events, answered exactly as PagerDuty does;
/// each is recorded as a closed standard change (`alerts::changes`).
pub async fn post_pagerduty_change(
    State(app): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let metrics = app.metrics.clone();
    let answer = pagerduty_change(app, body).await;
    counted(&metrics, "pagerduty_change", answer.unwrap_or_else(|r| r))
}

/// Counts a PagerDuty-style answer under `source`.
fn counted(metrics: &Metrics, source: &str, response: Response) -> Response {
    let reason = match response.status().as_u16() {
        202 => None,
        400 => Some("invalid_event"),
        401 => Some("unauthorized"),
        429 => Some("rate_limited"),
        413 => Some("payload_too_large"),
        _ => Some("unavailable"),
    };
    metrics.intake(source, reason.map_or(Ok(()), Err));
    response
}

/// The request body, or PagerDuty's answer to one too large or unreadable.
#[allow(clippy::result_large_err)] // a Response, built once on the error path
fn pd_bytes(
    app: &AppState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, Response> {
    match body {
        Ok(b) => Ok(b),
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(pd_invalid(
            StatusCode::PAYLOAD_TOO_LARGE,
            vec![format!(
                "Request body is larger than server.max_body_bytes = {}",
                app.config.server.max_body_bytes
            )],
        )),
        Err(r) => Err(pd_invalid(StatusCode::BAD_REQUEST, vec![r.body_text()])),
    }
}

#[allow(clippy::result_large_err)] // either way an answer
async fn pagerduty_change(
    app: AppState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Response> {
    let bytes = pd_bytes(&app, body)?;
    let (routing_key, mut change) = intake::body::pagerduty_change(&bytes)
        .map_err(|errors| pd_invalid(StatusCode::BAD_REQUEST, errors))?;
    let (sender, quota) = pd_source(&app, &routing_key)?;
    change.sender = sender;
    app.engine
        .submit(EventBody::Change(change))
        .await
        .map_err(|e| ApiError::submit(e, app.config.engine.retry_after_secs).into_response())?;
    let body = json!({"status": "success", "message": "Change event processed"});
    Ok(accepted_with(body, quota))
}

#[allow(clippy::result_large_err)] // either way an answer
async fn pagerduty_event(
    app: AppState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Response> {
    let bytes = pd_bytes(&app, body)?;
    let event = intake::body::pagerduty(&bytes)
        .map_err(|errors| pd_invalid(StatusCode::BAD_REQUEST, errors))?;
    let (source, quota) = pd_source(&app, &event.routing_key)?;
    let dedup_key = event.dedup_key.clone().unwrap_or_else(|| {
        pagerduty::mint_dedup_key(app.engine.now(), MINTED.fetch_add(1, Ordering::Relaxed))
    });
    let alert = event.into_alert(dedup_key.clone(), source);
    submit_all(&app, vec![alert])
        .await
        .map_err(IntoResponse::into_response)?;
    let body = json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key});
    Ok(accepted_with(body, quota))
}

/// The source name a PagerDuty routing key stands for, or the answer refusing it. The
/// routing key is the sender's credential: a configured integration key, else an API token
/// of role ingest or better; with neither configured (loopback only) any key. A sender
/// sending too fast is answered as PagerDuty does (429 with Retry-After).
#[allow(clippy::result_large_err)] // a Response, built once on the error path
fn pd_source(app: &AppState, routing_key: &str) -> Result<(String, Option<Quota>), Response> {
    let keys = &app.config.pagerduty.integration_keys;
    let source = if let Some(name) = keys.get(routing_key) {
        name.clone()
    } else if let Some(name) = app.keys.ingest_key_name(routing_key) {
        name
    } else if keys.is_empty() && app.keys.is_open() {
        routing_key.to_string()
    } else {
        return Err(pd_invalid(
            StatusCode::BAD_REQUEST,
            vec!["'routing_key' is not a configured integration key or ingest token".into()],
        ));
    };
    match app.limits.take(&source) {
        Ok(quota) => Ok((source, quota)),
        Err(refused) => {
            // PagerDuty's own answer when events arrive too fast.
            let body = json!({
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. Please retry later."
            });
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            refused.apply(response.headers_mut());
            Err(response)
        }
    }
}

/// A 202 with the caller's `RateLimit-*` standing.
fn accepted_with(body: serde_json::Value, quota: Option<Quota>) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Some(q) = quota {
        q.apply(response.headers_mut());
    }
    response
}

/// The alert intake routes: Prometheus, Alertmanager and Grafana, the generic event (role
/// `ingest`), and PagerDuty Events v2 (authenticated by its routing key).
pub fn routes() -> Routes {
    Routes {
        ingest: Router::new()
            .route(
                "/api/v1/events",
                post(crate::alerts::api_events::post_generic),
            )
            .route("/api/v2/alerts", post(post_prometheus))
            .route("/webhook/alertmanager", post(post_alertmanager)),
        own_auth: Router::new()
            .route("/v2/enqueue", post(post_pagerduty))
            .route("/v2/change/enqueue", post(post_pagerduty_change)),
        ..Routes::default()
    }
}
