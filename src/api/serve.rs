//! The HTTP/1 accept loop: like `axum::serve`, plus a header-read timeout and a deadline for
//! each request's body (slow clients cannot hold connections open forever), a cap on open
//! connections overall and per peer address (refused with a 503 that says which, then
//! closed), optional TLS (the acceptor is read per connection, so a reload changes the
//! certificate for new connections) and a graceful stop that finishes requests in flight
//! and closes idle keep-alive connections.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::api::tls::Tls;
use crate::config::ServerConfig;

/// What a connection may take, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// To send the request headers (and complete a TLS handshake).
    pub header_timeout: Duration,
    /// To send one request's body, from when its headers arrived.
    pub body_timeout: Duration,
    /// Open connections at once; 0: no cap.
    pub max_connections: usize,
    /// Open connections at once from one peer address; 0: no cap.
    pub max_per_peer: usize,
}

impl ConnLimits {
    pub fn new(c: &ServerConfig) -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(c.header_timeout_secs),
            body_timeout: Duration::from_secs(c.body_read_timeout_secs),
            max_connections: c.max_connections,
            max_per_peer: c.max_connections_per_peer,
        }
    }
}

/// The message of a body cut off by its deadline (`api::json` answers 408 for it).
pub(crate) const BODY_DEADLINE: &str =
    "the request body did not arrive within server.body_read_timeout_secs";

/// Open connections, overall and per peer address.
#[derive(Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// One counted connection; uncounted when dropped.
struct Counted {
    open: Arc<Mutex<Open>>,
    peer: IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

/// Counts a new connection from `peer`, or says which cap it is over.
fn admit(open: &Arc<Mutex<Open>>, peer: IpAddr, l: &ConnLimits) -> Result<Counted, &'static str> {
    let mut o = open.lock().unwrap_or_else(|p| p.into_inner());
    if l.max_connections > 0 && o.total >= l.max_connections {
        return Err("server.max_connections");
    }
    let mine = o.by_peer.get(&peer).copied().unwrap_or(0);
    if l.max_per_peer > 0 && mine >= l.max_per_peer {
        return Err("server.max_connections_per_peer");
    }
    o.total += 1;
    o.by_peer.insert(peer, mine + 1);
    Ok(Counted {
        open: open.clone(),
        peer,
    })
}

/// Answers a connection over a cap with a plain 503 naming it, and closes it.
async fn refuse(mut stream: tokio::net::TcpStream, peer: SocketAddr, cap: &'static str) {
    debug!(%peer, cap, "Connection refused: over the cap.");
    let body = format!(
        "{{\"error\":\"too_many_connections\",\"message\":\"too many open connections ({cap}); retry later\"}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Serves `app` on `listener` until `shutdown`, then waits for open connections to finish.
/// With `tls`, every connection must complete a TLS handshake within the header timeout.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let open = Arc::new(Mutex::new(Open::default()));
    let header_timeout = limits.header_timeout;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let counted = match admit(&open, peer.ip(), &limits) {
            Ok(c) => c,
            Err(cap) => {
                connections.spawn(refuse(stream, peer, cap));
                continue;
            }
        };
        let app = app.clone();
        let stop = shutdown.clone();
        let acceptor = tls.as_ref().map(|t| t.current());
        connections.spawn(async move {
            let _counted = counted;
            let Some(acceptor) = acceptor else {
                return connection(stream, peer, app, limits, stop).await;
            };
            let handshake = tokio::select! {
                done = tokio::time::timeout(header_timeout, acceptor.accept(stream)) => done,
                () = stop.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => connection(stream, peer, app, limits, stop).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed."),
                Err(_) => debug!(%peer, "TLS handshake timed out."),
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves HTTP/1 on one connection until it ends or `stop`.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let body_timeout = limits.body_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(|body| Body::new(Deadline::new(body, body_timeout)));
        // The peer, for handlers that limit per address (console sign-in).
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "Connection ended with an error.");
    }
}

/// A request body that must arrive in full within its deadline; past it, reading fails
/// with [`BODY_DEADLINE`] (and the connection is closed: the body was not read to its end).
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Incoming, within: Duration) -> Deadline {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(within)),
        }
    }
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BODY_DEADLINE.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
