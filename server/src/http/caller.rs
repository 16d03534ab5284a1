//! Who is calling: the bearer token, verified, and the user it names as
//! their record is now, as an extractor. The one place that decides which
//! tickets a caller may read ([`Caller::access`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sync_protocol::{EstateId, Role, Ticket, TicketAccess, UserId, ticket_access};

use super::{ApiError, AppState};

/// The authenticated user of a request: role and estate as the user record
/// says now, not as it said when the token was issued.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: UserId,
    pub role: Role,
    pub estate: EstateId,
    /// The generation of the user record the token named (the current one).
    pub generation: u64,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let missing =
            || ApiError::unauthenticated("missing_token", "send Authorization: Bearer <token>");
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(missing)?;
        let token = header.strip_prefix("Bearer ").ok_or_else(missing)?;
        let claims = state
            .authority
            .verify(token.trim())
            .map_err(|error| ApiError::unauthenticated("invalid_token", error.to_string()))?;
        // A token is only as good as the user it names, now: a changed role,
        // estate or password, a disabled user or ended sessions raise the
        // generation, and every older token stops working.
        let user = state
            .users
            .get(&claims.sub)?
            .filter(|user| !user.disabled && user.generation == claims.generation)
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "token_revoked",
                    "this session has ended (the account changed); log in again",
                )
            })?;
        Ok(Caller {
            user: user.id.clone(),
            role: user.role,
            estate: user.estate.clone(),
            generation: user.generation,
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

    /// The office roles: the ones that read their whole estate.
    pub fn require_office(&self) -> Result<(), ApiError> {
        if self.role.sees_whole_estate() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this role has no access to this (无此权限)",
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

    /// What this caller may know of `ticket`.
    pub fn access(&self, ticket: &Ticket) -> TicketAccess {
        ticket_access(&self.user, self.role, &self.estate, ticket)
    }

    /// A ticket this caller may read; another estate's (or any, for a role
    /// that reads none) is answered exactly as one that does not exist.
    pub fn check_can_see(&self, ticket: &Ticket) -> Result<(), ApiError> {
        match self.access(ticket) {
            TicketAccess::Readable => Ok(()),
            TicketAccess::NotTheirs => Err(ApiError::forbidden(
                "this ticket is not assigned to you (此工单未派给您)",
            )),
            TicketAccess::Hidden => Err(ticket_not_found()),
        }
    }
}

/// The one answer for a ticket that does not exist or is not to be known.
pub fn ticket_not_found() -> ApiError {
    ApiError::not_found("ticket_not_found", "no such ticket")
}
