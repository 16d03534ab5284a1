//! Logging in: a username and password for an access token and a refresh
//! token (`POST /api/v1/auth/login`), and a refresh token for a new pair
//! (`POST /api/v1/auth/refresh`). Both are throttled per client address
//! before their body is read, with a small body limit; password logins also
//! per username (`auth::throttle`).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sync_protocol::{LoginRequest, LoginResponse, RefreshRequest, UserId};

use super::{ApiError, ApiJson, AppState, ClientAddress};
use crate::auth::passwords::Busy;
use crate::auth::refresh::{RefreshToken, new_session};
use crate::auth::throttle::Throttled;
use crate::store::{SessionRecord, UserRecord};
use crate::writer::{Command, Reply};

/// The largest login or refresh body: a username, a password of at most 256
/// characters, a device id and a refresh token fit many times over.
pub const AUTH_BODY_LIMIT_BYTES: usize = 16 * 1024;

/// Take one attempt from the client address's allowance before anything
/// else, the body's reading included, is spent on a login or refresh.
pub async fn throttle_by_address(
    State(state): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    request: Request,
    next: Next,
) -> Response {
    match state.throttle.attempt_from(address, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(limit) => throttled(limit).into_response(),
    }
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    // Counted as a failure until the password is found right, so that
    // attempts made at once cannot pass the username's limit together.
    state
        .throttle
        .attempt_username(&request.username, Instant::now())
        .map_err(throttled)?;
    // One answer, after the same work, for unknown users, disabled users
    // and wrong passwords: no user enumeration, by the answer or its time.
    let refused = || ApiError::unauthenticated("invalid_credentials", "wrong username or password");
    let user = match UserId::parse(&request.username) {
        Ok(id) => state.users.get(&id)?.filter(|user| !user.disabled),
        Err(_) => None,
    };
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    let matches = state
        .passwords
        .verify(request.password, hash)
        .await
        .map_err(busy)?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(refused());
    };
    state.throttle.succeeded(&request.username);
    let refresh = RefreshToken::generate();
    let session = new_session(
        &refresh,
        &user,
        request.device_id,
        state.clock.now(),
        state.refresh_ttl,
    );
    let command = Command::StartSession {
        session: session.clone(),
    };
    state.writer.submit(command).await?;
    Ok(Json(signed_in(&state, &user, &refresh, &session)?))
}

pub async fn refresh(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    // Whatever the reason (unknown, expired, used up, another device, the
    // account changed), the client does the same: log in again.
    let refused = || {
        ApiError::unauthenticated(
            "invalid_refresh_token",
            "this refresh token is not valid any more; log in again",
        )
    };
    let presented = RefreshToken::parse(&request.refresh_token).ok_or_else(refused)?;
    // Made-up tokens are refused here, without a write.
    if state.store.session(&presented.session)?.is_none() {
        return Err(refused());
    }
    let next = RefreshToken::rotated(&presented.session);
    let command = Command::Refresh {
        presented,
        device: request.device_id,
        next: next.clone(),
        ttl: state.refresh_ttl,
    };
    let Reply::Refreshed(result) = state.writer.submit(command).await? else {
        return Err(ApiError::Internal("a refresh got another reply".to_owned()));
    };
    let (user, session) = result.map_err(|_| refused())?;
    Ok(Json(signed_in(&state, &user, &next, &session)?))
}

/// The answer to a login or refresh: a new access token for `user` as the
/// record is now, and the refresh token of `session`.
fn signed_in(
    state: &AppState,
    user: &UserRecord,
    refresh: &RefreshToken,
    session: &SessionRecord,
) -> Result<LoginResponse, ApiError> {
    let (token, expires_at) = state
        .authority
        .issue(user)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(LoginResponse {
        token,
        token_type: "Bearer".to_owned(),
        expires_at,
        refresh_token: refresh.expose(),
        refresh_expires_at: session.expires_at,
        user: user.id.clone(),
        display_name: user.display_name.clone(),
        role: user.role,
        estate: user.estate.clone(),
        time_zone: state
            .calendars
            .of(&user.estate)
            .time_zone()
            .name()
            .to_owned(),
    })
}

fn throttled(throttled: Throttled) -> ApiError {
    ApiError::too_many(
        "too_many_attempts",
        "too many login attempts; wait before trying again (尝试次数过多，请稍后再试)",
        throttled.retry_after_seconds(),
    )
}

pub(super) fn busy(_: Busy) -> ApiError {
    ApiError::too_many(
        "server_busy",
        "the server is checking many passwords right now; try again in a moment",
        1,
    )
}
