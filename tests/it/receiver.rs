//! A vendor's webhook endpoint for tests: an axum server on 127.0.0.1:0 in the test process
//! whose answers are scripted (fail N times, 429 with Retry-After, hang, 410, redirect) and
//! which records every request it got, headers and body as received.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// 429 Too Many Requests with `Retry-After: secs`.
    RetryAfter(u64),
    /// Answers 200 only after this long (past the vendor's timeout).
    Hang(Duration),
    /// 302 to another path of the receiver (which must not be followed).
    Redirect,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The path with its query, still percent-encoded as sent.
    pub path: String,
    pub authorization: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
    /// The status this request was answered with (200 once the script is used up).
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    /// Answers still to give, in order; 200 once empty.
    script: VecDeque<Reply>,
    received: Vec<Received>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Starts a receiver that answers with `script`, then 200.
    pub fn start(script: Vec<Reply>) -> Receiver {
        let shared = Arc::new(Mutex::new(Shared {
            script: script.into(),
            received: Vec::new(),
        }));
        let state = shared.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver up");
        Receiver {
            url: format!("http://{addr}/hook"),
            shared,
        }
    }

    /// Adds answers to the end of the script.
    pub fn script(&self, more: Vec<Reply>) {
        self.shared.lock().unwrap().script.extend(more);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived (at most `within`), and returns them all.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} request(s), got {}: {got:#?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let reply = {
        let mut s = shared.lock().unwrap();
        let reply = s.script.pop_front();
        let answered = match &reply {
            None | Some(Reply::Hang(_)) => 200,
            Some(Reply::Status(code)) => *code,
            Some(Reply::RetryAfter(_)) => 429,
            Some(Reply::Redirect) => 302,
        };
        s.received.push(Received {
            method: method.to_string(),
            path: uri.path().to_string(),
            authorization: text("authorization"),
            id: text("webhook-id"),
            timestamp: text("webhook-timestamp"),
            signature: text("webhook-signature"),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
            answered,
        });
        reply
    };
    match reply {
        None => StatusCode::OK.into_response(),
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Reply::RetryAfter(secs)) => {
            let mut r = StatusCode::TOO_MANY_REQUESTS.into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Some(Reply::Hang(d)) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
        Some(Reply::Redirect) => {
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/elsewhere"));
            r
        }
    }
}
