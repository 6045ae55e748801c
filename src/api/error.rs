//! Every API error as `{"error": {"code", "message", "details"?}}` with the right status.

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::engine::SubmitError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_json`.
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a Retry-After header (429s and 503s).
    pub retry_after: Option<u64>,
    /// Whether to send `WWW-Authenticate: Bearer` (401s).
    pub www_authenticate: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            www_authenticate: false,
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A request whose content is invalid: every problem listed in details.
    pub fn invalid(problems: Vec<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_event",
            problems.join("; "),
        )
        .with_details(json!({ "problems": problems }))
    }

    /// A query string that does not parse (an unknown parameter, a value of the wrong type):
    /// a `bad_query` with the one problem in details, like every other invalid query.
    pub fn query(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
        let text = rejection.body_text();
        let problem = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        ApiError::bad_query(vec![format!("query string: {problem}")])
    }

    /// Query parameters that are invalid (a `bad_request`): every problem listed in details.
    pub fn bad_query(problems: Vec<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", problems.join("; "))
            .with_details(json!({ "problems": problems }))
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn submit(e: SubmitError, retry_after: u64) -> ApiError {
        let (status, code) = match &e {
            SubmitError::Rejected(refused) => return ApiError::refused(refused.clone()),
            SubmitError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            SubmitError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            SubmitError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(status, code, e.to_string())
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "Store read failed.");
        match e {
            // The store cannot be reached for now (a PostgreSQL restart, a lost connection):
            // worth a retry, as intake says in the same case.
            StoreError::Io { .. } | StoreError::Connect { .. } => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    e.to_string(),
                )
            },
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.details {
            body["details"] = d;
        }
        let mut response = (self.status, Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"itsmd\""),
            );
        }
        response
    }
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
