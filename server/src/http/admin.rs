//! User administration for the administrator role (`/api/v1/admin/users`):
//! list, add, change role, estate or name, disable, reset a password, and
//! end a user's sessions, with the server running. The command line's
//! `add-user` stays for the first administrator.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use sync_protocol::admin::{check_display_name, check_password};
use sync_protocol::{
    EstateId, FieldProblem, NewUser, PasswordReset, UserChange, UserId, UserPage, UserSummary,
};

use super::session::busy;
use super::{ApiError, ApiJson, ApiPath, AppState, Caller, next_after, page_limit};
use crate::store::UserRecord;
use crate::writer::{Command, Reply};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    after: Option<String>,
    limit: Option<usize>,
    /// Only the users of this estate.
    estate: Option<String>,
}

/// Users in id order, of every estate or of one.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    require_administrator(&caller)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let invalid = |e: sync_protocol::ParseError| ApiError::bad_request("invalid_id", e.to_string());
    let mut after = query
        .after
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(invalid)?;
    let estate = query
        .estate
        .as_deref()
        .map(EstateId::parse)
        .transpose()
        .map_err(invalid)?;
    let mut users = Vec::with_capacity(limit);
    // Users are few (tens per estate); an estate's are picked out of pages.
    loop {
        let page = state.store.users(after.as_ref(), limit)?;
        let full = page.len() == limit;
        after = page.last().map(|user| user.id.clone());
        users.extend(
            page.iter()
                .filter(|user| estate.as_ref().is_none_or(|estate| &user.estate == estate))
                .map(UserRecord::summary)
                .take(limit - users.len()),
        );
        if !full || users.len() == limit {
            break;
        }
    }
    let next_after = next_after(&users, limit, |user| user.id.clone());
    Ok(Json(UserPage { users, next_after }))
}

pub async fn add(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserSummary>), ApiError> {
    require_administrator(&caller)?;
    let display_name = check_display_name(&request.display_name);
    let password = check_password(&request.password);
    let problems: Vec<FieldProblem> = [display_name.clone().err(), password.err()]
        .into_iter()
        .flatten()
        .collect();
    let Ok(display_name) = display_name else {
        return Err(invalid(problems));
    };
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let password_hash = hash(&state, request.password).await?;
    let user = UserRecord {
        id: request.username,
        role: request.role,
        estate: request.estate,
        display_name,
        password_hash,
        disabled: false,
        generation: 0,
    };
    let user = expect_user(state.writer.submit(Command::AddUser { user }).await?)?;
    tracing::info!(by = %caller.user, user = %user.id, role = user.role.as_str(), estate = %user.estate, "user added");
    Ok((StatusCode::CREATED, Json(user.summary())))
}

pub async fn change(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut change): ApiJson<UserChange>,
) -> Result<Json<UserSummary>, ApiError> {
    require_administrator(&caller)?;
    let id = user_id(&id)?;
    if let Some(name) = &change.display_name {
        change.display_name = Some(check_display_name(name).map_err(|p| invalid(vec![p]))?);
    }
    let described = format!("{change:?}");
    let user = expect_user(
        state
            .writer
            .submit(Command::ChangeUser { id, change })
            .await?,
    )?;
    tracing::info!(by = %caller.user, user = %user.id, change = described, "user changed");
    Ok(Json(user.summary()))
}

pub async fn reset_password(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PasswordReset>,
) -> Result<Json<UserSummary>, ApiError> {
    require_administrator(&caller)?;
    let id = user_id(&id)?;
    check_password(&request.password).map_err(|p| invalid(vec![p]))?;
    let password_hash = hash(&state, request.password).await?;
    let command = Command::SetPassword { id, password_hash };
    let user = expect_user(state.writer.submit(command).await?)?;
    tracing::info!(by = %caller.user, user = %user.id, "password reset; sessions ended");
    Ok(Json(user.summary()))
}

/// Every token and refresh token of the user stops working at once.
pub async fn end_sessions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserSummary>, ApiError> {
    require_administrator(&caller)?;
    let id = user_id(&id)?;
    let user = expect_user(state.writer.submit(Command::EndSessions { id }).await?)?;
    tracing::info!(by = %caller.user, user = %user.id, "sessions ended");
    Ok(Json(user.summary()))
}

fn require_administrator(caller: &Caller) -> Result<(), ApiError> {
    caller.require(caller.role.may_administer_users(), "administer users")
}

/// A malformed id names no user.
fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::not_found("user_not_found", "no such user"))
}

fn invalid(problems: Vec<FieldProblem>) -> ApiError {
    ApiError::client(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_user",
        "the user record is incomplete or invalid",
    )
    .with_details(json!({ "problems": problems }))
}

async fn hash(state: &AppState, password: String) -> Result<String, ApiError> {
    state
        .passwords
        .hash(password)
        .await
        .map_err(busy)?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn expect_user(reply: Reply) -> Result<UserRecord, ApiError> {
    match reply {
        Reply::User(user) => Ok(*user),
        _ => Err(ApiError::Internal("expected a user reply".to_owned())),
    }
}
