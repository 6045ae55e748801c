//! Query strings on routes that take none: refused with the parameters named, so a caller's
//! `?limit=5` or `?dry_run=true` on such a route is an error, not silently ignored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::ApiError;

/// An extractor for handlers without query parameters: a request with a non-empty query
/// string gets a 400 that names what was sent.
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.uri.query().filter(|q| !q.is_empty()) {
            None => Ok(NoQuery),
            Some(query) => Err(ApiError::bad_query(vec![refusal(parts.uri.path(), query)])),
        }
    }
}

/// The problem for `query` sent to `path`: its parameter names, each once, in order.
fn refusal(path: &str, query: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split('=').next().unwrap_or(pair);
        let name = format!("`{name}`");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    format!("{path} takes no query parameters; got {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn names_each_parameter_once() {
        assert_eq!(
            refusal("/api/v1/tickets/INC-000001", "x=1&dry_run&x=2&"),
            "/api/v1/tickets/INC-000001 takes no query parameters; got `x`, `dry_run`"
        );
    }
}
