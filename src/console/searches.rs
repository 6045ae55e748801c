//! Saved searches: per user, kept in the user's account record (changed only through the
//! engine, as `AccountAction::SaveSearch`/`DeleteSearch`). A search is the query string of
//! `GET /api/v1/tickets` (`state=new&group=dba&sla=breached`…), checked and run by the API's
//! own code (`tickets::api::search`), so a search the API refuses cannot be saved.

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::api::{ApiError, AppState};
use crate::auth::accounts::{AccountAction, AccountCommand};
use crate::console::session::Signed;
use crate::event::EventBody;
use crate::tickets::Ticket;
use crate::tickets::api::{ListParams, Search};

/// The longest search name and query kept.
pub const MAX_NAME: usize = 64;
pub const MAX_QUERY: usize = 2048;

/// A query string checked as the list API checks its query.
pub fn check(app: &AppState, query: &str) -> Result<Search, ApiError> {
    let query = query.trim().trim_start_matches('?');
    let uri: Uri = format!("/?{query}")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("`query`: not a query string: {e}")))?;
    let axum::extract::Query(params) = axum::extract::Query::<ListParams>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(format!("`query`: {}", e.body_text())))?;
    crate::tickets::api::search(app, params)
}

/// The saved searches of `user`: name → query.
pub async fn of(
    app: &AppState,
    user: &str,
) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let user = user.to_string();
    let account = app
        .read(move |s| crate::store::layout::accounts::get(s, &user))
        .await?;
    Ok(account.map(|a| a.searches).unwrap_or_default())
}

/// Runs the saved search `name` of `user`: its first page, as the list API answers it.
pub async fn run(app: &AppState, user: &str, name: &str) -> Result<(Vec<Ticket>, bool), ApiError> {
    let searches = of(app, user).await?;
    let query = searches
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("you have no saved search `{name}`")))?;
    let (tickets, next) = check(app, query)?.run(app).await?;
    Ok((tickets, next.is_some()))
}

async fn change(app: &AppState, who: &Signed, action: AccountAction) -> Result<(), ApiError> {
    let command = AccountCommand {
        by: who.name.clone(),
        action,
    };
    app.engine
        .submit(EventBody::Account(command))
        .await
        .map(|_| ())
        .map_err(|e| ApiError::submit(e, app.config.engine.retry_after_secs))
}

fn refused(e: ApiError) -> Response {
    (e.status, e.message).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    query: String,
}

/// `POST /ui/searches`: saves (or replaces) a search, then shows it in the queue.
pub async fn save(State(app): State<AppState>, who: Signed, Form(f): Form<SaveForm>) -> Response {
    if let Err(r) = who.check_csrf(&f.csrf) {
        return r.into_response();
    }
    let name = f.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return refused(ApiError::bad_request(format!(
            "`name`: give the search a name of 1 to {MAX_NAME} characters"
        )));
    }
    let query = f.query.trim().trim_start_matches('?').to_string();
    if query.len() > MAX_QUERY {
        return refused(ApiError::bad_request(format!(
            "`query`: at most {MAX_QUERY} bytes"
        )));
    }
    if let Err(e) = check(&app, &query) {
        return refused(e);
    }
    let action = AccountAction::SaveSearch {
        name: who.name.clone(),
        search: name.clone(),
        query,
    };
    match change(&app, &who, action).await {
        Ok(()) => Redirect::to(&format!("/ui/?search={}", encode(&name))).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// `POST /ui/searches/delete`
pub async fn delete(
    State(app): State<AppState>,
    who: Signed,
    Form(f): Form<DeleteForm>,
) -> Response {
    if let Err(r) = who.check_csrf(&f.csrf) {
        return r.into_response();
    }
    let action = AccountAction::DeleteSearch {
        name: who.name.clone(),
        search: f.name,
    };
    match change(&app, &who, action).await {
        Ok(()) => Redirect::to("/ui/").into_response(),
        Err(e) => {
            let status = if e.status == StatusCode::CONFLICT {
                StatusCode::NOT_FOUND
            } else {
                e.status
            };
            (status, e.message).into_response()
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
