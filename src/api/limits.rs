//! Protecting the daemon from its clients: a cap on requests in flight (load shedding), a
//! time limit per request, and a per-token rate limit on intake. Each refusal is an
//! [`ApiError`] with Retry-After, so well-behaved senders back off and retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

use crate::api::ApiError;
use crate::auth::tokens::Principal;
use crate::config::ServerConfig;

/// Shared limiter state, built once from `[server]`.
#[derive(Clone)]
pub struct Limits {
    /// Permits for requests in flight.
    in_flight: Arc<Semaphore>,
    /// How long one request may take.
    timeout: Duration,
    /// Token buckets per caller for intake.
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    /// Sustained intake requests per second per caller; 0 = unlimited.
    rate: f64,
    /// Bucket size.
    burst: f64,
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
            timeout: Duration::from_secs(c.request_timeout_secs),
            buckets: Arc::new(Mutex::new(HashMap::new())),
            rate: f64::from(c.ingest_rate_per_sec),
            burst: f64::from(c.ingest_burst),
        }
    }

    /// Takes one request from `who`'s bucket; on refusal, the seconds until one is there.
    pub(crate) fn take(&self, who: &str) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(who.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Middleware: sheds load past the in-flight cap and bounds each request's time.
pub async fn shed_and_time(
    State(limits): State<Limits>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many requests in flight; retry later",
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
    if let Err(wait) = limits.take(&who) {
        return Err(ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("`{who}` is over server.ingest_rate_per_sec; retry in {wait} s"),
            )
        });
    }
    Ok(next.run(req).await)
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
        for _ in 0..3 {
            assert_eq!(l.take("a"), Ok(()));
        }
        assert_eq!(l.take("a"), Err(1));
        // Buckets are per caller.
        assert_eq!(l.take("b"), Ok(()));
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
            assert_eq!(l.take("a"), Ok(()));
        }
    }
}
