//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie, kept in memory (a
//! restart signs everyone out), with an idle and an absolute expiry and a per-session CSRF
//! token every form carries. Also the sign-in rate limit (failures per user name and per
//! client address).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::api::AppState;
use crate::auth::Role;

pub const COOKIE: &str = "itsmd_session";
/// The double-submit cookie of the sign-in form (there is no session yet).
pub const LOGIN_COOKIE: &str = "itsmd_login_csrf";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Failed sign-ins allowed per user name in [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// Failed sign-ins allowed per client address (`ip:…` keys), several users' worth.
pub const MAX_ADDRESS_FAILURES: usize = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

struct Session {
    user: String,
    csrf: String,
    /// The account's `changed_at` at sign-in: a later password change or re-enabling (which
    /// moves it) ends the session, so a changed password signs out every old session.
    account_changed: jiff::Timestamp,
    created: Instant,
    seen: Instant,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    failures: HashMap<String, VecDeque<Instant>>,
}

/// The sessions in force; clones share them.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
    /// Whether cookies get `Secure` (the daemon or its proxy speaks TLS).
    secure: bool,
}

/// 32 random bytes as hex.
pub fn token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("cannot get random bytes: {e}"))?;
    Ok(b.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    pub fn new(secure: bool) -> Sessions {
        Sessions {
            secure,
            ..Sessions::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `user`, whose account was last changed at `account_changed`: its id
    /// and CSRF token.
    pub fn start(
        &self,
        user: &str,
        account_changed: jiff::Timestamp,
    ) -> Result<(String, String), String> {
        let (id, csrf) = (token()?, token()?);
        let now = Instant::now();
        let mut inner = self.lock();
        inner
            .sessions
            .retain(|_, s| now - s.seen < IDLE && now - s.created < ABSOLUTE);
        inner.sessions.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf: csrf.clone(),
                account_changed,
                created: now,
                seen: now,
            },
        );
        Ok((id, csrf))
    }

    /// The user, CSRF token and account change time of a live session, which counts as used
    /// now.
    fn touch(&self, id: &str) -> Option<(String, String, jiff::Timestamp)> {
        let now = Instant::now();
        let mut inner = self.lock();
        let live = inner
            .sessions
            .get(id)
            .is_some_and(|s| now - s.seen < IDLE && now - s.created < ABSOLUTE);
        if !live {
            inner.sessions.remove(id);
            return None;
        }
        let s = inner.sessions.get_mut(id)?;
        s.seen = now;
        Some((s.user.clone(), s.csrf.clone(), s.account_changed))
    }

    pub fn end(&self, id: &str) {
        self.lock().sessions.remove(id);
    }

    /// Seconds until `keys` may try again, when any of them failed too often.
    pub fn limited(&self, keys: &[String]) -> Option<u64> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut wait = None;
        for k in keys {
            if let Some(q) = inner.failures.get_mut(k) {
                while q.front().is_some_and(|t| now - *t >= FAILURE_WINDOW) {
                    q.pop_front();
                }
                let max = if k.starts_with("ip:") {
                    MAX_ADDRESS_FAILURES
                } else {
                    MAX_FAILURES
                };
                if q.len() >= max
                    && let Some(first) = q.front()
                {
                    let left = FAILURE_WINDOW.saturating_sub(now - *first).as_secs() + 1;
                    wait = Some(wait.map_or(left, |w: u64| w.max(left)));
                }
            }
        }
        wait
    }

    pub fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.failures.len() > 10_000 {
            inner
                .failures
                .retain(|_, q| q.back().is_some_and(|t| now - *t < FAILURE_WINDOW));
        }
        for k in keys {
            inner.failures.entry(k.clone()).or_default().push_back(now);
        }
    }

    pub fn succeeded(&self, user_key: &str) {
        self.lock().failures.remove(user_key);
    }

    /// The `Set-Cookie` value of a cookie; `None` as value clears it.
    pub fn cookie(&self, name: &str, value: Option<&str>, path: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = match value {
            Some(v) => format!("{name}={v}; Path={path}; HttpOnly; SameSite=Strict{secure}"),
            None => format!("{name}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
        };
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether two tokens are equal, in constant time (and neither empty).
pub fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The peer address as text, for the per-address limit.
pub fn peer(parts_ext: &axum::http::Extensions) -> String {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A signed-in user of at least the agent role, from the session cookie; without one the
/// answer is the sign-in page (for an htmx request, an `HX-Redirect` to it).
pub struct Signed {
    pub name: String,
    pub role: Role,
    pub csrf: String,
    pub session: String,
    /// The request came from htmx (it swaps a part of the page), so an error is answered as
    /// the message alone rather than a whole page.
    pub htmx: bool,
}

impl Signed {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), CsrfRefused> {
        if same(sent, &self.csrf) {
            Ok(())
        } else {
            Err(CsrfRefused)
        }
    }

    pub fn who(&self) -> super::page::Who<'_> {
        super::page::Who {
            name: &self.name,
            role: self.role.as_str(),
            csrf: &self.csrf,
        }
    }
}

/// A form post whose CSRF token is missing or wrong: 403, nothing done.
#[derive(Debug)]
pub struct CsrfRefused;

impl IntoResponse for CsrfRefused {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or wrong; reload the page and try again.",
        )
            .into_response()
    }
}

fn to_login(parts: &Parts) -> Response {
    if parts.headers.contains_key("hx-request") {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut()
            .insert("hx-redirect", HeaderValue::from_static("/ui/login"));
        r
    } else {
        Redirect::to("/ui/login").into_response()
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Signed, Response> {
        let Some(id) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login(parts));
        };
        let Some((user, csrf, account_changed)) = app.console.touch(&id) else {
            return Err(to_login(parts));
        };
        // The account as stored now: a disabled one (or a changed role) takes effect at once.
        let lookup = user.clone();
        let account = app
            .read(move |s| crate::store::layout::accounts::get(s, &lookup))
            .await
            .map_err(|e| {
                tracing::warn!(user = %user, error = %e.message, "Cannot read the account of a session.");
                (StatusCode::SERVICE_UNAVAILABLE, "cannot read the account; try again").into_response()
            })?;
        // Disabled, or its password changed since this session signed in.
        let Some(account) = account.filter(|a| !a.disabled && a.changed_at == account_changed)
        else {
            app.console.end(&id);
            return Err(to_login(parts));
        };
        if account.role < Role::Agent {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "User {} has role {}; the console needs agent",
                    account.name,
                    account.role.as_str()
                ),
            )
                .into_response());
        }
        Ok(Signed {
            name: account.name,
            role: account.role,
            csrf,
            session: id,
            htmx: parts.headers.contains_key("hx-request"),
        })
    }
}

/// A signed-in administrator: the operations views. Anyone else signed in gets 403 (and
/// nothing is done); signed out, the sign-in page as for [`Signed`].
pub struct Admin(pub Signed);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Admin, Response> {
        let who = Signed::from_request_parts(parts, app).await?;
        if who.role < Role::Admin {
            tracing::info!(user = %who.name, path = %parts.uri.path(), "Console admin page refused.");
            return Err((
                StatusCode::FORBIDDEN,
                super::page::layout(
                    "Not allowed",
                    Some(who.who()),
                    maud::html! { p.error role="alert" #forbidden { "User " (who.name) " has role " (who.role.as_str()) "; this page needs admin." } },
                ),
            )
                .into_response());
        }
        Ok(Admin(who))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_a_minute_lock_the_name_out() {
        let s = Sessions::new(false);
        let keys = vec!["user:alice".to_string()];
        for _ in 0..MAX_FAILURES {
            assert_eq!(s.limited(&keys), None);
            s.failed(&keys);
        }
        assert!(s.limited(&keys).is_some_and(|w| w <= 61));
        s.succeeded("user:alice");
        assert_eq!(s.limited(&keys), None);
    }

    #[test]
    fn sessions_start_and_end() {
        let s = Sessions::new(true);
        let at = jiff::Timestamp::UNIX_EPOCH;
        let (id, csrf) = s.start("alice", at).unwrap();
        assert_eq!(s.touch(&id), Some(("alice".into(), csrf.clone(), at)));
        s.end(&id);
        assert_eq!(s.touch(&id), None);
        assert!(!same("", ""));
        assert!(same(&csrf, &csrf));
        let c = s.cookie(COOKIE, Some("x"), "/");
        assert_eq!(
            c,
            "itsmd_session=x; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
    }
}
