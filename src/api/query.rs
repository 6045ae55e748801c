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

/// Most parameter names one refusal lists: a hostile query of thousands of names costs a
/// bounded answer and no quadratic search.
const NAMES_SHOWN: usize = 10;

/// The problem for `query` sent to `path`: its parameter names, each once, in order.
fn refusal(path: &str, query: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut more = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split('=').next().unwrap_or(pair);
        if names.contains(&name) {
            continue;
        }
        if names.len() == NAMES_SHOWN {
            more = true;
            break;
        }
        names.push(name);
    }
    let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let more = if more { ", …" } else { "" };
    format!(
        "{path} takes no query parameters; got {}{more}",
        listed.join(", ")
    )
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
        let many: Vec<String> = (0..5000).map(|i| format!("p{i}=1")).collect();
        assert_eq!(
            refusal("/x", &many.join("&")),
            "/x takes no query parameters; got `p0`, `p1`, `p2`, `p3`, `p4`, `p5`, `p6`, `p7`, \
             `p8`, `p9`, …"
        );
    }
}
