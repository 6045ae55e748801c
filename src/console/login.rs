//! Signing in and out: `/ui/login` (user name and password, a double-submit CSRF cookie,
//! failures limited per user name and per address) and `/ui/logout`.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::api::AppState;
use crate::console::page;
use crate::console::session::{self, COOKIE, LOGIN_COOKIE, Signed};

fn form(csrf: &str, error: Option<&str>, username: &str) -> page::Html {
    page::layout(
        "Sign in",
        None,
        html! {
            form.login method="post" action="/ui/login" {
                h1 { "Sign in to itsmd" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                input type="hidden" name="csrf" value=(csrf);
                label { "User name" input name="username" autocomplete="username" value=(username) required autofocus; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn unavailable(what: &str) -> Response {
    tracing::warn!(problem = %what, "The sign-in page cannot be served.");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The console cannot sign you in right now; try again.",
    )
        .into_response()
}

/// A sign-in form with a fresh CSRF cookie.
fn fresh(app: &AppState, status: StatusCode, error: Option<&str>, username: &str) -> Response {
    let csrf = match session::token() {
        Ok(t) => t,
        Err(e) => return unavailable(&e),
    };
    let mut resp = (status, form(&csrf, error, username)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        app.console.cookie(LOGIN_COOKIE, Some(&csrf), "/ui/login"),
    );
    resp
}

/// `GET /ui/login`
pub async fn page(State(app): State<AppState>) -> Response {
    fresh(&app, StatusCode::OK, None, "")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /ui/login`: a session cookie and a redirect to the queue, or the form again with
/// why (the same words for an unknown user, a wrong password and a disabled account).
pub async fn submit(
    State(app): State<AppState>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    Form(c): Form<Credentials>,
) -> Response {
    let cookie = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !session::same(&c.csrf, &cookie) {
        return fresh(
            &app,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired (CSRF check failed); please sign in again."),
            "",
        );
    }
    // Bounded, so the failure counts cannot be keyed by megabyte-long names.
    let user: String = c
        .username
        .trim()
        .chars()
        .take(crate::auth::accounts::MAX_NAME + 1)
        .collect();
    let keys = [
        format!("user:{user}"),
        format!("ip:{}", session::peer(&ext)),
    ];
    if let Some(wait) = app.console.limited(&keys) {
        tracing::warn!(user = %user, "Sign-in refused: too many failures.");
        return fresh(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed sign-ins; try again in {wait} seconds."
            )),
            &user,
        );
    }
    let lookup = user.clone();
    let account = match app
        .read(move |s| crate::store::layout::accounts::get(s, &lookup))
        .await
    {
        Ok(a) => a,
        Err(e) => return unavailable(&e.message),
    };
    let hash = account
        .as_ref()
        .map(|a| a.hash.clone())
        .unwrap_or_else(|| crate::auth::accounts::dummy_hash().to_string());
    let password = c.password;
    let matches =
        tokio::task::spawn_blocking(move || crate::auth::accounts::verify(&password, &hash))
            .await
            .unwrap_or(false);
    let Some(account) = account.filter(|a| matches && !a.disabled) else {
        app.console.failed(&keys);
        tracing::info!(user = %user, "Sign-in refused: wrong user name or password.");
        return fresh(
            &app,
            StatusCode::UNAUTHORIZED,
            Some("Wrong user name or password."),
            &user,
        );
    };
    app.console.succeeded(&keys[0]);
    let (id, _) = match app.console.start(&account.name, account.changed_at) {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    tracing::info!(user = %account.name, role = %account.role.as_str(), "Signed in.");
    let mut resp = Redirect::to("/ui/").into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        app.console.cookie(COOKIE, Some(&id), "/"),
    );
    h.append(
        header::SET_COOKIE,
        app.console.cookie(LOGIN_COOKIE, None, "/ui/login"),
    );
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`
pub async fn logout(State(app): State<AppState>, who: Signed, Form(f): Form<CsrfOnly>) -> Response {
    if let Err(r) = who.check_csrf(&f.csrf) {
        return r.into_response();
    }
    app.console.end(&who.session);
    tracing::info!(user = %who.name, "Signed out.");
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, app.console.cookie(COOKIE, None, "/"));
    resp
}
