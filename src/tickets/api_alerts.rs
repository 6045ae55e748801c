//! `GET /api/v1/tickets/{id}/alerts`: every alert occurrence correlated into a ticket, as it
//! arrived (labels, annotations, times, generator URL, wire format), oldest first, in pages.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::api::{ApiError, AppState};
use crate::event::{EventBody, EventId};
use crate::store::layout;
use crate::store::layout::Outcome;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Checked by `api::page::limit`, so a bad one is named with its range.
    limit: Option<String>,
    /// An event id: the `next` value of the previous page.
    after: Option<EventId>,
}

/// One occurrence: the journal's record of the alert event.
#[derive(Serialize)]
pub struct Occurrence {
    event_id: EventId,
    received_at: Timestamp,
    outcome: Outcome,
    #[serde(flatten)]
    alert: Alert,
}

#[derive(Serialize)]
pub struct Page {
    alerts: Vec<Occurrence>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<EventId>,
}

pub async fn list(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(p) = params.map_err(ApiError::query)?;
    let id = raw.parse().map_err(ApiError::bad_request)?;
    let limit = crate::api::page::limit(p.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(|problem| ApiError::bad_query(vec![problem]))?;
    crate::tickets::api::existing(&app, id).await?;
    // At most `server.max_list_bytes` of journal records; the cursor goes on.
    let budget = app.config.server.max_list_bytes;
    let (events, next) = app
        .read(move |s| layout::ticket_alerts_within(s, id, p.after, limit, budget))
        .await?;
    let alerts = events
        .into_iter()
        .filter_map(|stored| {
            // Only alert events are indexed as occurrences; other kinds never reach here.
            #[allow(unreachable_patterns)]
            let alert = match stored.event.body {
                EventBody::Alert(alert) => alert,
                _ => return None,
            };
            Some(Occurrence {
                event_id: stored.event.id,
                received_at: stored.event.received_at,
                outcome: stored.outcome,
                alert,
            })
        })
        .collect();
    Ok(Json(Page { alerts, next }))
}
