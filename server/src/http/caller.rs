//! Who is calling: the bearer token, verified, as an extractor.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sync_protocol::{EstateId, Role, Ticket, UserId};

use super::{ApiError, AppState};

/// The authenticated user of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: UserId,
    pub role: Role,
    pub estate: EstateId,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthenticated("missing_token", "send Authorization: Bearer <token>")
            })?;
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::unauthenticated("missing_token", "send Authorization: Bearer <token>")
        })?;
        let claims = state
            .authority
            .verify(token.trim())
            .map_err(|error| ApiError::unauthenticated("invalid_token", error.to_string()))?;
        Ok(Caller {
            user: claims.sub,
            role: claims.role,
            estate: claims.estate,
        })
    }
}

impl Caller {
    /// Only technicians sync devices.
    pub fn require_technician(&self) -> Result<(), ApiError> {
        if self.role.works_in_the_field() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only technicians sync handhelds (仅维修人员可同步)",
            ))
        }
    }

    /// Office roles only.
    pub fn require_office(&self) -> Result<(), ApiError> {
        if self.role.sees_whole_estate() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "technicians cannot do this (维修人员无此权限)",
            ))
        }
    }

    pub fn require(&self, allowed: bool, what: &str) -> Result<(), ApiError> {
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the role {} may not {what}",
                self.role.as_str()
            )))
        }
    }

    /// A ticket this caller may see: their estate's, and for a technician
    /// only the ones assigned to them.
    pub fn check_can_see(&self, ticket: &Ticket) -> Result<(), ApiError> {
        if ticket.estate != self.estate {
            return Err(ApiError::not_found("ticket_not_found", "no such ticket"));
        }
        if !self.role.sees_whole_estate() && !ticket.is_assigned_to(&self.user) {
            return Err(ApiError::forbidden(
                "this ticket is not assigned to you (此工单未派给您)",
            ));
        }
        Ok(())
    }
}
