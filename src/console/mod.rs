//! The agent console: server-rendered HTML under `/ui/` (maud templates, so every value is
//! escaped by the template engine), with htmx (vendored, served from here) for live
//! updates. The console reads through `AppState::read` and writes only by submitting the same
//! engine `Command`s as the JSON API, so it can never do what the API refuses. It must not
//! write to the store, and it never inlines script or style: every page is served with a
//! Content-Security-Policy that forbids both.

pub mod assets;
pub mod bulk;
pub mod chart;
pub mod dashboard;
pub mod login;
pub mod ops;
pub mod page;
pub mod queue;
pub mod searches;
pub mod session;
pub mod tickets;
pub mod views;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{Redirect, Response};
use axum::routing::get;

use crate::api::Routes;

/// What every console answer carries: no inline script or style, no framing, no sniffing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Middleware: the security headers of every console answer.
async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages show tickets: not kept in shared caches or shown again after sign-out. The
    // assets set their own (immutable) caching.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The console's routes. They authenticate with the session cookie themselves (checked by
/// each handler's extractor), so they sit with the routes that bring their own auth.
pub fn routes() -> Routes {
    let ui = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(queue::queue))
        .route("/ui/queue", get(queue::queue_live))
        .route("/ui/dashboard", get(dashboard::show))
        .route("/ui/dashboard.csv", get(dashboard::download))
        .route("/ui/tickets/{id}", get(tickets::show))
        .route(
            "/ui/tickets/{id}/comment",
            axum::routing::post(tickets::comment),
        )
        .route(
            "/ui/tickets/{id}/transition",
            axum::routing::post(tickets::transition),
        )
        .route(
            "/ui/tickets/{id}/assign",
            axum::routing::post(tickets::assign),
        )
        .route(
            "/ui/tickets/{id}/vendor",
            axum::routing::post(tickets::vendor),
        )
        .route("/ui/tickets/{id}/link", axum::routing::post(tickets::link))
        .route("/ui/bulk", axum::routing::post(bulk::submit))
        .route("/ui/searches", axum::routing::post(searches::save))
        .route("/ui/searches/delete", axum::routing::post(searches::delete))
        .route("/ui/ops", get(ops::show))
        .route("/ui/ops/replay", axum::routing::post(ops::replay))
        .route("/ui/ops/outbox", get(ops::outbox))
        .route(
            "/ui/ops/outbox/replay",
            axum::routing::post(ops::replay_row),
        )
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/login", get(login::page).post(login::submit))
        .route("/ui/logout", axum::routing::post(login::logout))
        .layer(axum::middleware::from_fn(headers));
    Routes {
        own_auth: ui,
        ..Routes::default()
    }
}
