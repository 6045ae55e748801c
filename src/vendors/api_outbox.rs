//! Outbox administration: list pending and dead webhook messages, show one, and replay a
//! row or a whole vendor (`itsmd outbox …` calls these). Reads go to the store; a replay is
//! an event for the engine, the only writer.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::json::JsonBody;
use crate::api::{ApiError, AppState};
use crate::event::EventBody;
use crate::store::Tree;
use crate::store::layout::outbox;
use crate::vendors::{Delivery, OutboxRow};

/// Rows one page lists unless asked for fewer or more.
const DEFAULT_LIMIT: usize = 100;
/// Most rows one page lists.
const MAX_LIMIT: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// List the dead letters instead of the pending rows.
    #[serde(default)]
    dead: bool,
    #[serde(default)]
    vendor: Option<String>,
    /// Start after this row id (the `next` of the previous page).
    #[serde(default)]
    after: Option<u64>,
    /// Checked by `api::page::limit` (100 when absent).
    #[serde(default)]
    limit: Option<String>,
}

/// A row as listed: everything but the payload (see the single-row view for it).
fn summary(row: &OutboxRow) -> Value {
    let mut v = json!(row);
    if let Some(map) = v.as_object_mut() {
        map.remove("body");
        map.insert("bytes".into(), json!(row.body.len()));
    }
    v
}

/// `GET /api/v1/admin/outbox[?dead=true&vendor=NAME&after=ID&limit=N]`: rows in id order,
/// and every configured vendor's delivery state.
pub async fn list(
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(ApiError::query)?;
    let limit = crate::api::page::limit(q.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(|problem| ApiError::bad_query(vec![problem]))?;
    let tree = if q.dead {
        Tree::OutboxDead
    } else {
        Tree::Outbox
    };
    let rows = app
        .read(move |s| outbox::rows(s, tree, q.vendor.as_deref(), q.after, limit))
        .await?;
    let full = rows.len() == limit;
    // At most `server.max_list_bytes` of rows (bodies included); the cursor goes on.
    let (rows, cut) = crate::api::page::within_budget(rows, app.config.server.max_list_bytes);
    let next = (full || cut).then(|| rows.last().map(|r| r.id)).flatten();
    let names: Vec<String> = app.config.vendors.keys().cloned().collect();
    let vendors = app
        .read(move |s| {
            let mut vendors = serde_json::Map::new();
            for name in names {
                let state = outbox::vendor_state(s, &name)?;
                vendors.insert(name, json!(state));
            }
            Ok(vendors)
        })
        .await?;
    Ok(Json(json!({
        "rows": rows.iter().map(summary).collect::<Vec<_>>(),
        "next": next,
        "vendors": vendors,
    })))
}

/// `GET /api/v1/admin/outbox/{id}`: one row, pending or dead, with its payload.
pub async fn show(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    if let Some(row) = app.read(move |s| outbox::pending(s, id)).await? {
        return Ok(Json(json!({ "status": "pending", "row": row })));
    }
    if let Some(row) = app.read(move |s| outbox::dead(s, id)).await? {
        return Ok(Json(json!({ "status": "dead", "row": row })));
    }
    Err(ApiError::not_found(format!("there is no outbox row {id}")))
}

/// What to replay: one row, or everything of one vendor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    vendor: Option<String>,
}

/// `POST /api/v1/admin/outbox/replay` with `{"id": N}` or `{"vendor": "NAME"}`: sends the
/// row (or the vendor's dead and pending rows) again from attempt 1, with the same
/// webhook-id; a vendor replay also re-enables a vendor disabled by 410.
pub async fn replay(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> Result<Json<Value>, ApiError> {
    let (delivery, answer) = match (req.id, req.vendor) {
        (Some(id), None) => {
            let status = if app.read(move |s| outbox::dead(s, id)).await?.is_some() {
                "dead"
            } else if app.read(move |s| outbox::pending(s, id)).await?.is_some() {
                "pending"
            } else {
                return Err(ApiError::not_found(format!("there is no outbox row {id}")));
            };
            (
                Delivery::ReplayRow { row: id },
                json!({ "id": id, "was": status }),
            )
        }
        (None, Some(vendor)) => {
            let mail = (crate::mail::outbound::config::is_mail_queue(&vendor)
                && app.config.smtp.is_some())
                || crate::mail::chat::is_channel(&vendor, &app.config.chat);
            if !mail && !app.config.vendors.contains_key(&vendor) {
                return Err(ApiError::not_found(format!(
                    "no vendor `{vendor}` is configured"
                )));
            }
            let name = vendor.clone();
            let (dead, pending) = app
                .read(move |s| {
                    let count = |tree| {
                        outbox::rows(s, tree, Some(&name), None, usize::MAX).map(|r| r.len())
                    };
                    Ok((count(Tree::OutboxDead)?, count(Tree::Outbox)?))
                })
                .await?;
            let answer = json!({
                "vendor": vendor,
                "dead": dead,
                "pending": pending,
            });
            (Delivery::ReplayVendor { vendor }, answer)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `id` (a row) and `vendor` (all of a vendor's rows)",
            ));
        }
    };
    app.engine
        .submit(EventBody::Delivery(delivery))
        .await
        .map_err(|e| ApiError::submit(e, app.config.engine.retry_after_secs))?;
    Ok(Json(answer))
}
