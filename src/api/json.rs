//! JSON request bodies: size-limited, parsed with the path of the first bad field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::ApiError;

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
        } else {
            ApiError::bad_request(format!("cannot read the request body: {}", r.body_text()))
        }
    })
}

/// Parses JSON, naming the path and position of the first problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| (e.path().to_string(), e.into_inner()))
        .and_then(|v| de.end().map(|()| v).map_err(|e| (".".to_string(), e)));
    value.map_err(|(path, inner)| {
        let message = if path == "." || path == "?" {
            format!("invalid JSON: {inner}")
        } else {
            format!("invalid JSON at `{path}`: {inner}")
        };
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message).with_details(json!({
            "path": path,
            "line": inner.line(),
            "column": inner.column(),
        }))
    })
}
