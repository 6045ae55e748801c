//! Browser-origin safety: a web page the operator visits must not be able to drive the API
//! (cross-site requests to a loopback daemon without tokens, DNS rebinding). Three checks on
//! every API route (not on /healthz, /readyz, /metrics, which probes call by any name):
//!
//! - a `Host` that is not one of `server.allowed_hosts` (by default the listen address and
//!   `localhost`, `127.0.0.1`, `[::1]` with its port): 421 `misdirected_host`;
//! - an `Origin` header (browsers send it on cross-site requests; monitoring tools do not)
//!   whose host is not allowed either: 403 `forbidden_origin`;
//! - a POST, PUT or PATCH with a body whose Content-Type is not JSON (`application/json`,
//!   `application/*+json`): 415 `unsupported_media_type`. Those are what an HTML form or a
//!   "simple" cross-site fetch can send; Prometheus, Alertmanager, Grafana and PagerDuty
//!   clients send `application/json`. A body without a Content-Type is still taken. The
//!   console's own routes (`/ui/…`) also take `application/x-www-form-urlencoded`: its
//!   forms post that, and each of them checks a CSRF token (`console::session`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::ApiError;
use crate::config::ServerConfig;

/// The hosts the API answers to, lower-case, each `name` (any port) or `name:port`; `*`
/// allows every host.
#[derive(Clone, Debug)]
pub struct Guard {
    hosts: Arc<Vec<String>>,
}

impl Guard {
    /// From `server.allowed_hosts`, or when it is empty from the address actually bound.
    pub fn new(c: &ServerConfig, bound: SocketAddr) -> Guard {
        let hosts = if c.allowed_hosts.is_empty() {
            let port = bound.port();
            let mut hosts = vec![
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ];
            if !bound.ip().is_unspecified() && !hosts.contains(&bound.to_string()) {
                hosts.push(bound.to_string());
            }
            hosts
        } else {
            c.allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect()
        };
        Guard {
            hosts: Arc::new(hosts),
        }
    }

    /// Whether `authority` (`name` or `name:port`) is allowed.
    pub fn allows(&self, authority: &str) -> bool {
        let authority = authority.trim().to_ascii_lowercase();
        let name = match authority.rsplit_once(':') {
            // `[::1]` alone has colons but no port.
            Some((name, port))
                if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                name
            }
            _ => authority.as_str(),
        };
        self.hosts
            .iter()
            .any(|h| h == "*" || *h == authority || *h == name)
    }

    fn listed(&self) -> String {
        self.hosts.join(", ")
    }
}

/// Problems in `server.allowed_hosts`: each entry a host name or address, with an optional
/// port, no scheme or path.
pub fn problems(c: &ServerConfig) -> Vec<String> {
    c.allowed_hosts
        .iter()
        .filter(|h| h.is_empty() || h.contains("://") || h.contains('/') || h.contains(' '))
        .map(|h| {
            format!(
                "server.allowed_hosts: `{h}` is not a host (give `name` or `name:port`, no \
                 scheme or path)"
            )
        })
        .collect()
}

/// Middleware: the three checks, in the order Host, Origin, Content-Type.
pub async fn check(
    State(guard): State<Guard>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = req.headers();
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !guard.allows(host) {
            return Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_host",
                format!(
                    "Host `{}` is not one this daemon answers to ({}); add it to \
                     server.allowed_hosts",
                    host.escape_default(),
                    guard.listed()
                ),
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if !authority.is_some_and(|a| !a.contains('/') && guard.allows(a)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!(
                    "requests from web pages of origin `{}` are refused: the API is not for \
                     browsers on other sites",
                    origin.escape_default()
                ),
            ));
        }
    }
    if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
        && has_body(&req)
        && let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !is_json(ct.to_str().unwrap_or(""))
        && !(req.uri().path().starts_with("/ui/") && is_form(ct.to_str().unwrap_or("")))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type `{}` is not JSON; send the body as `Content-Type: application/json`",
                ct.to_str().unwrap_or("?").escape_default()
            ),
        ));
    }
    Ok(next.run(req).await)
}

/// Whether the request says it carries a body (a length above 0, or chunked).
fn has_body(req: &Request) -> bool {
    let h = req.headers();
    match h.get(header::CONTENT_LENGTH) {
        Some(len) => len.to_str().ok().and_then(|l| l.trim().parse::<u64>().ok()) != Some(0),
        None => h.contains_key(header::TRANSFER_ENCODING),
    }
}

/// `application/x-www-form-urlencoded`, parameters allowed.
fn is_form(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// `application/json` or `application/SOMETHING+json`, parameters (charset) allowed.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hosts_are_loopback_names_and_the_bound_address_with_its_port() {
        let c = ServerConfig::default();
        let g = Guard::new(&c, "127.0.0.1:8080".parse().unwrap());
        for ok in [
            "localhost:8080",
            "LOCALHOST:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
        ] {
            assert!(g.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost:9090",
            "localhost",
        ] {
            assert!(!g.allows(bad), "{bad}");
        }
        let g = Guard::new(
            &ServerConfig {
                allowed_hosts: vec!["itsmd.example.org".into(), "[::1]".into()],
                ..c
            },
            "0.0.0.0:8080".parse().unwrap(),
        );
        assert!(g.allows("itsmd.example.org:8080") && g.allows("itsmd.example.org"));
        assert!(g.allows("[::1]:1234") && g.allows("[::1]"));
        assert!(!g.allows("127.0.0.1:8080"));
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.x+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }
}
