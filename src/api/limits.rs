//! Protecting the daemon from its clients: a cap on requests in flight (load shedding), with
//! a separate, smaller one for routes reachable without a token (so anonymous or slow
//! clients cannot take what authenticated intake needs), a time limit per request, and a
//! per-caller rate limit on intake. Each refusal is an
//! [`ApiError`] with Retry-After, so well-behaved senders back off and retry.
//!
//! Rate-limited responses (every intake answer, the 429 included) carry the three fields of
//! the IETF draft "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-06):
//! `RateLimit-Limit` (the bucket size, `server.ingest_burst`), `RateLimit-Remaining` (requests
//! that may be sent now) and `RateLimit-Reset` (seconds until the bucket is full again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::api::ApiError;
use crate::auth::tokens::Principal;
use crate::config::ServerConfig;
use crate::metrics::{CallerLabels, Metrics};

/// Shared limiter state, built once from `[server]`.
#[derive(Clone)]
pub struct Limits {
    /// Permits for requests in flight.
    in_flight: Arc<Semaphore>,
    /// Permits for requests in flight to routes reachable without a token.
    anonymous: Arc<Semaphore>,
    /// How long one request may take.
    timeout: Duration,
    /// Token buckets per caller for intake.
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    /// Sustained intake requests per second per caller; 0 = unlimited.
    rate: f64,
    /// Bucket size.
    burst: f64,
    /// Counts refusals (`itsmd_rate_limited_total{caller}`), once set.
    metrics: Option<Arc<Metrics>>,
}

/// A caller's standing after a request, for the `RateLimit-*` header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests the bucket holds when full.
    pub limit: u64,
    /// Requests that may be sent now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
}

impl Quota {
    /// Sets `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in [
            ("ratelimit-limit", self.limit),
            ("ratelimit-remaining", self.remaining),
            ("ratelimit-reset", self.reset),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
}

/// A refusal: the seconds until a request is allowed, and the caller's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: u64,
    pub quota: Quota,
}

impl Refused {
    /// Sets Retry-After and the `RateLimit-*` fields.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(self.retry_after),
        );
        self.quota.apply(headers);
    }
}

/// A token bucket: `tokens` refill at `rate` per second up to `burst`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limits {
    pub fn new(c: &ServerConfig) -> Limits {
        Limits {
            in_flight: Arc::new(Semaphore::new(c.max_concurrent_requests)),
            anonymous: Arc::new(Semaphore::new(c.max_unauthenticated_requests)),
            timeout: Duration::from_secs(c.request_timeout_secs),
            buckets: Arc::new(Mutex::new(HashMap::new())),
            rate: f64::from(c.ingest_rate_per_sec),
            burst: f64::from(c.ingest_burst),
            metrics: None,
        }
    }

    /// Counts refusals into `metrics`.
    pub fn counting(mut self, metrics: Arc<Metrics>) -> Limits {
        self.metrics = Some(metrics);
        self
    }

    /// Takes one request from `who`'s bucket: the standing after it (`None` without a
    /// limit), or the refusal, counted.
    pub(crate) fn take(&self, who: &str) -> Result<Option<Quota>, Refused> {
        if self.rate <= 0.0 {
            return Ok(None);
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(who.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        let quota = Quota {
            limit: self.burst as u64,
            remaining: b.tokens.floor() as u64,
            reset: ((self.burst - b.tokens) / self.rate).ceil() as u64,
        };
        if allowed {
            return Ok(Some(quota));
        }
        let retry_after = ((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64;
        drop(buckets);
        if let Some(m) = &self.metrics {
            m.rate_limited
                .get_or_create(&CallerLabels {
                    caller: who.to_string(),
                })
                .inc();
        }
        Err(Refused { retry_after, quota })
    }
}

/// Middleware: sheds load past the in-flight cap and bounds each request's time.
pub async fn shed_and_time(
    State(limits): State<Limits>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let permits = limits.in_flight.clone();
    shed(permits, "too many requests in flight", &limits, req, next).await
}

/// Middleware for routes reachable without a token: the same, on their own budget
/// (`server.max_unauthenticated_requests`).
pub async fn shed_anonymous(
    State(limits): State<Limits>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let permits = limits.anonymous.clone();
    let what = "too many requests in flight to routes without a token \
                (server.max_unauthenticated_requests)";
    shed(permits, what, &limits, req, next).await
}

async fn shed(
    permits: Arc<Semaphore>,
    what: &str,
    limits: &Limits,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Ok(_permit) = permits.try_acquire_owned() else {
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("{what}; retry later"),
            )
        });
    };
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(response) => Ok(response),
        Err(_) => Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than {} s; retry",
                    limits.timeout.as_secs()
                ),
            )
        }),
    }
}

/// Middleware for intake routes (after authentication): the caller's rate limit.
pub async fn ingest_rate(
    State(limits): State<Limits>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let who = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    match limits.take(&who) {
        Ok(quota) => {
            let mut response = next.run(req).await;
            if let Some(q) = quota {
                q.apply(response.headers_mut());
            }
            Ok(response)
        }
        Err(refused) => {
            let wait = refused.retry_after;
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("`{who}` is over server.ingest_rate_per_sec; retry in {wait} s"),
            )
            .into_response();
            refused.apply(response.headers_mut());
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let c = ServerConfig {
            ingest_rate_per_sec: 1,
            ingest_burst: 3,
            ..ServerConfig::default()
        };
        let l = Limits::new(&c);
        let remaining = |r: Result<Option<Quota>, Refused>| r.unwrap().unwrap().remaining;
        assert_eq!(remaining(l.take("a")), 2);
        assert_eq!(remaining(l.take("a")), 1);
        let last = l.take("a").unwrap().unwrap();
        assert_eq!(
            last,
            Quota {
                limit: 3,
                remaining: 0,
                reset: 3
            }
        );
        let refused = l.take("a").unwrap_err();
        assert_eq!(refused.retry_after, 1);
        assert_eq!(refused.quota.remaining, 0);
        // Buckets are per caller.
        assert_eq!(remaining(l.take("b")), 2);
    }

    #[test]
    fn a_zero_rate_means_unlimited() {
        let c = ServerConfig {
            ingest_rate_per_sec: 0,
            ingest_burst: 0,
            ..ServerConfig::default()
        };
        let l = Limits::new(&c);
        for _ in 0..100_000 {
            assert_eq!(l.take("a"), Ok(None));
        }
    }
}
