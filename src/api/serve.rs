//! The HTTP/1 accept loop: like `axum::serve`, plus a header-read timeout (slow clients
//! cannot hold connections open forever), optional TLS (the acceptor is read per connection,
//! so a reload changes the certificate for new connections) and a graceful stop that
//! finishes requests in flight and closes idle keep-alive connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::api::tls::Tls;

/// Serves `app` on `listener` until `shutdown`, then waits for open connections to finish.
/// With `tls`, every connection must complete a TLS handshake within `header_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
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
        let app = app.clone();
        let stop = shutdown.clone();
        let acceptor = tls.as_ref().map(|t| t.current());
        connections.spawn(async move {
            let Some(acceptor) = acceptor else {
                return connection(stream, peer, app, header_timeout, stop).await;
            };
            let handshake = tokio::select! {
                done = tokio::time::timeout(header_timeout, acceptor.accept(stream)) => done,
                () = stop.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => connection(stream, peer, app, header_timeout, stop).await,
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
    header_timeout: Duration,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        // The peer, for handlers that limit per address (console sign-in).
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
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
