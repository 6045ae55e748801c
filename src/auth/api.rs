//! The admin routes of console accounts: add, change a password, disable, list. Each change
//! is hashed here (on a blocking thread) and submitted to the engine as an account command,
//! so it is journaled and ordered like every other write.

use crate::tickets::commands::invalid;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, AppState, Routes};
use crate::auth::accounts::{self, AccountAction, AccountCommand};
use crate::auth::{Principal, Role};
use crate::event::EventBody;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    role: Role,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
}

/// An account as listed: never its hash.
#[derive(Serialize)]
pub struct UserJson {
    name: String,
    role: Role,
    disabled: bool,
    changed_at: jiff::Timestamp,
}

async fn hash(password: String) -> Result<String, ApiError> {
    if let Some(p) = accounts::password_problem(&password) {
        return Err(ApiError::refused(invalid("password", p)));
    }
    tokio::task::spawn_blocking(move || accounts::hash(&password))
        .await
        .map_err(|e| internal(format!("the hashing task failed: {e}")))?
        .map_err(internal)
}

fn internal(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

fn checked_name(name: &str) -> Result<(), ApiError> {
    match accounts::name_problem(name) {
        Some(p) => Err(ApiError::refused(invalid("name", p))),
        None => Ok(()),
    }
}

async fn submit(app: &AppState, who: Principal, action: AccountAction) -> Result<(), ApiError> {
    app.engine
        .submit(EventBody::Account(AccountCommand {
            by: who.name,
            action,
        }))
        .await
        .map_err(|e| ApiError::submit(e, app.config.engine.retry_after_secs))?;
    Ok(())
}

/// `POST /api/v1/admin/users` `{name, role, password}`: 201.
async fn add(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    crate::api::json::JsonBody(new): crate::api::json::JsonBody<NewUser>,
) -> Result<StatusCode, ApiError> {
    checked_name(&new.name)?;
    let hash = hash(new.password).await?;
    let action = AccountAction::Add {
        name: new.name,
        role: new.role,
        hash,
    };
    submit(&app, who, action).await?;
    Ok(StatusCode::CREATED)
}

/// `POST /api/v1/admin/users/{name}/password` `{password}`: 204; also enables the account.
async fn passwd(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    crate::api::json::JsonBody(p): crate::api::json::JsonBody<NewPassword>,
) -> Result<StatusCode, ApiError> {
    checked_name(&name)?;
    let hash = hash(p.password).await?;
    submit(&app, who, AccountAction::Password { name, hash }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/admin/users/{name}/disable`: 204; the user's sessions end at their next request.
async fn disable(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    checked_name(&name)?;
    submit(&app, who, AccountAction::Disable { name }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/admin/users`
async fn list(
    _: crate::api::query::NoQuery,
    State(app): State<AppState>,
) -> Result<Json<Vec<UserJson>>, ApiError> {
    let all = app.read(crate::store::layout::accounts::list).await?;
    Ok(Json(
        all.into_iter()
            .map(|a| UserJson {
                name: a.name,
                role: a.role,
                disabled: a.disabled,
                changed_at: a.changed_at,
            })
            .collect(),
    ))
}

pub fn routes() -> Routes {
    Routes {
        admin: Router::new()
            .route("/api/v1/admin/users", get(list).post(add))
            .route("/api/v1/admin/users/{name}/password", post(passwd))
            .route("/api/v1/admin/users/{name}/disable", post(disable)),
        ..Routes::default()
    }
}
