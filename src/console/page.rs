//! The page frame every console view shares: head (style sheet, htmx, its settings), the
//! top bar with who is signed in, and the body.

use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::api::ApiError;
use crate::console::session::Signed;

/// A rendered page or fragment, answered as `text/html`.
pub type Html = axum::response::Html<String>;

/// The signed-in user, as the top bar shows them.
pub struct Who<'a> {
    pub name: &'a str,
    pub role: &'a str,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: &'a str,
}

/// htmx settings: no inline indicator styles (the CSP forbids them), no eval.
const HTMX_CONFIG: &str =
    r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;

/// A whole page.
pub fn layout(title: &str, who: Option<Who<'_>>, body: Markup) -> Html {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " — itsmd" }
                // No icon: without this the browser asks for /favicon.ico on every first load
                // and the daemon logs a 404 for it.
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(super::assets::css_path());
                script src=(super::assets::htmx_path()) defer {}
                script src=(super::assets::js_path()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "itsmd" }
                    @if let Some(who) = who {
                        nav {
                            a href="/ui/" { "Queue" }
                            a href="/ui/dashboard" { "Dashboard" }
                            @if who.role == "admin" { a href="/ui/ops" { "Operations" } }
                        }
                        form.signout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            span.who { (who.name) " (" (who.role) ")" }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    };
    axum::response::Html(page.into_string())
}

/// A part of a page, for htmx to swap in.
pub fn fragment(m: Markup) -> Html {
    axum::response::Html(m.into_string())
}

/// An error page for a request that failed: the whole page (with the top bar, so the user can
/// go on from it) and the error's status; for htmx, which swaps a part, the message alone.
/// Both are `text/html`, so the message is never shown as markup.
pub fn failed(who: &Signed, e: ApiError) -> Response {
    let shown = html! { p.error role="alert" #failed { (e.message) } };
    if who.htmx {
        return (e.status, fragment(shown)).into_response();
    }
    let title = e.status.canonical_reason().unwrap_or("Error");
    (e.status, layout(title, Some(who.who()), shown)).into_response()
}

/// A form field, trimmed; empty means unset.
pub fn some(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}
