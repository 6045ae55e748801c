//! JSON request bodies: size-limited, parsed with the path of the first bad field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::alerts::intake::body;
use crate::alerts::intake::body::{DecodeError, JsonError};
use crate::api::ApiError;

/// The raw request body, read like [`JsonBody`]'s (size limit, errors), for handlers that
/// decode it with one of [`crate::alerts::intake::body`]'s functions.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<RawBody, ApiError> {
        read_body(req, state).await.map(RawBody)
    }
}

/// Like `axum::Json`, but every rejection is an [`ApiError`] that says what is wrong, and
/// the Content-Type is not insisted on (alert senders are often sloppy about it).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<JsonBody<T>, ApiError> {
        let bytes = read_body(req, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// The request body, within `server.max_body_bytes` (413 past it), as an [`ApiError`] on
/// failure.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than server.max_body_bytes",
            )
        } else if r.body_text().contains(crate::api::serve::BODY_DEADLINE) {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                crate::api::serve::BODY_DEADLINE,
            )
        } else {
            ApiError::bad_request(format!("cannot read the request body: {}", r.body_text()))
        }
    })
}

/// Parses JSON, naming the path and position of the first problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    body::json(bytes).map_err(json_error)
}

/// A body that is not the JSON expected: 400 `invalid_json` with where it went wrong.
fn json_error(e: JsonError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()).with_details(json!({
        "path": e.path,
        "line": e.line,
        "column": e.column,
    }))
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> ApiError {
        match e {
            DecodeError::Json(e) => json_error(e),
            DecodeError::Invalid(problems) => ApiError::invalid(problems),
        }
    }
}
