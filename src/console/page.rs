//! The page frame every console view shares: head (style sheet, htmx, its settings), the
//! top bar with who is signed in, and the body.

use maud::{DOCTYPE, Markup, html};

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

/// An error page or fragment for a read that failed.
pub fn failed(e: crate::api::ApiError) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        e.status,
        html! { p.error role="alert" { (e.message) } }.into_string(),
    )
        .into_response()
}

/// A form field, trimmed; empty means unset.
pub fn some(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}
