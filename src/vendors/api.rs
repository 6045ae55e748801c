//! Vendors' callbacks: `POST /api/v1/vendors/{name}/callback`, authenticated by the Standard
//! Webhooks signature made with that vendor's secret (no bearer token). A bad signature is
//! 401 and reaches nothing; a good one becomes an event for the engine, which maps the
//! status, comments and records the vendor's reference. This handler never writes the store
//! and never echoes a secret or a signature.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use crate::api::{ApiError, AppState, Routes};
use crate::event::EventBody;
use crate::metrics;
use crate::store::layout::Outcome;
use crate::tickets::TicketId;
use crate::vendors::signing::DEFAULT_TOLERANCE;
use crate::vendors::{ReceivedHeaders, VendorCallback, verify};

/// A callback's JSON body. Fields it does not know are ignored (vendors add their own).
#[derive(Debug, Deserialize)]
struct CallbackBody {
    /// The itsmd ticket the callback is about.
    ticket: TicketId,
    /// The vendor's own reference (its case number).
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    /// A status word of the vendor's, mapped by its `status_map`.
    #[serde(default)]
    status: Option<String>,
}

/// `POST /api/v1/vendors/{name}/callback`: 200 once applied (or when the webhook-id was
/// applied before: `"duplicate": true`), 401 on a bad signature.
pub async fn callback(
    State(app): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let Some(vendor) = app.vendors.get(&name).cloned() else {
        return Err(ApiError::not_found(format!(
            "no vendor `{name}` is configured"
        )));
    };
    let headers = req.headers().clone();
    let body = crate::api::json::read_body(req, &()).await?;
    let unauthorized = |message: String| {
        metrics::vendor(&app.metrics.vendor_callbacks, &name, "bad_signature");
        warn!(vendor = %name, reason = %message, "Vendor callback refused: bad signature.");
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", message)
    };
    let received =
        ReceivedHeaders::from_header_map(&headers).map_err(|e| unauthorized(e.to_string()))?;
    verify(
        &vendor.secrets,
        &received,
        &body,
        app.engine.now(),
        DEFAULT_TOLERANCE,
    )
    .map_err(|e| unauthorized(e.to_string()))?;
    let webhook_id = received.id.unwrap_or_default().to_string();
    let parsed: CallbackBody = crate::api::json::parse(&body)?;
    let event = VendorCallback {
        vendor: name.clone(),
        webhook_id: webhook_id.clone(),
        ticket: parsed.ticket,
        reference: parsed.reference,
        comment: parsed.comment,
        status: parsed.status,
    };
    let receipt = app
        .engine
        .submit(EventBody::VendorCallback(event))
        .await
        .map_err(|e| {
            metrics::vendor(&app.metrics.vendor_callbacks, &name, "refused");
            ApiError::submit(e, app.config.engine.retry_after_secs)
        })?;
    let duplicate = receipt.outcome == Outcome::Seen;
    let result = if duplicate { "duplicate" } else { "applied" };
    metrics::vendor(&app.metrics.vendor_callbacks, &name, result);
    Ok(Json(json!({
        "ticket": parsed.ticket,
        "event_id": receipt.event_id,
        "webhook_id": webhook_id,
        "duplicate": duplicate,
    })))
}

/// The vendor routes: callbacks (authenticated by their signature) and the outbox (admin).
pub fn routes() -> Routes {
    use crate::vendors::api_outbox;
    Routes {
        own_auth: Router::new().route("/api/v1/vendors/{name}/callback", post(callback)),
        admin: Router::new()
            .route("/api/v1/admin/outbox", get(api_outbox::list))
            .route("/api/v1/admin/outbox/replay", post(api_outbox::replay))
            .route("/api/v1/admin/outbox/{id}", get(api_outbox::show)),
        ..Routes::default()
    }
}
