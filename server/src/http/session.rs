//! Login: username and password for a JWT.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use sync_protocol::{LoginRequest, LoginResponse, UserId};

use super::{ApiError, ApiJson, AppState};
use crate::auth::verify_password;

pub async fn login(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    // One answer for unknown users and wrong passwords: no user enumeration.
    let refused = || ApiError::unauthenticated("invalid_credentials", "wrong username or password");
    let id = UserId::parse(&request.username).map_err(|_| refused())?;
    let user = state.store.user(&id)?.ok_or_else(refused)?;
    let hash = user.password_hash.clone();
    // argon2 is deliberately slow: keep it off the async workers.
    let matches = state
        .execution
        .run_blocking(move || verify_password(&request.password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !matches {
        return Err(refused());
    }
    let (token, expires_at) = state
        .authority
        .issue(&user)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(LoginResponse {
        token,
        token_type: "Bearer".to_owned(),
        expires_at,
        user: user.id,
        role: user.role,
        estate: user.estate,
    }))
}
