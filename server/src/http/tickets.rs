//! The office API: intake, listing, reading and office actions on tickets.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponseParts, ResponseParts};
use serde::Deserialize;
use sync_protocol::{
    IntakeDraft, OfficeAction, OfficeActionRequest, REPLAYED_HEADER, Ticket, TicketAccess,
    TicketId, TicketKind, TicketPage, TicketScope,
};

use super::console::RequestKey;
use super::{
    ApiError, ApiJson, ApiPath, AppState, Caller, next_after, page_limit, ticket_not_found,
};
use crate::writer::{Command, Reply};

/// R-I1/R-I2: record a report; R-S2: a booking with it. A missing field is
/// named with every other problem of the record (422), like a blank one.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    key: RequestKey,
    ApiJson(draft): ApiJson<IntakeDraft>,
) -> Result<(StatusCode, Replayed, Json<Ticket>), ApiError> {
    caller.require(caller.role.may_take_reports(), "record reports")?;
    if draft
        .estate
        .as_ref()
        .is_some_and(|estate| *estate != caller.estate)
    {
        return Err(ApiError::forbidden("you work for another estate"));
    }
    let named = key.name(&draft);
    let intake = draft.complete(state.calendars.of(&caller.estate), state.clock.now())?;
    let command = Command::CreateTicket {
        by: caller.user,
        intake,
        named,
    };
    let (ticket, replayed) = expect_ticket(state.writer.submit(command).await?)?;
    Ok((StatusCode::CREATED, replayed, Json(ticket)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// The caller's view: a technician's assigned tickets, or the estate's.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TicketPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let after = query
        .after
        .as_deref()
        .map(TicketId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    let page = match caller.role.ticket_scope() {
        TicketScope::WholeEstate => {
            state
                .store
                .estate_tickets(&caller.estate, after.as_ref(), limit)?
        }
        TicketScope::Assigned => {
            state
                .store
                .assigned_tickets(&caller.user, after.as_ref(), limit)?
        }
        TicketScope::Nothing => Vec::new(),
    };
    let next_after = next_after(&page, limit, |ticket| ticket.id.clone());
    // The index answers for the user; the check answers for the estate.
    let tickets = page
        .into_iter()
        .filter(|ticket| caller.access(ticket) == TicketAccess::Readable)
        .collect();
    Ok(Json(TicketPage {
        tickets,
        next_after,
    }))
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Ticket>, ApiError> {
    let ticket = load_visible(&state, &caller, &id)?;
    Ok(Json(ticket))
}

/// Every office action of `OfficeOp`, each for the roles SPEC.md gives it.
pub async fn act(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    key: RequestKey,
    ApiJson(request): ApiJson<OfficeActionRequest>,
) -> Result<(Replayed, Json<Ticket>), ApiError> {
    caller.require_office()?;
    let ticket = load_visible(&state, &caller, &id)?;
    // Whether the technician named can be given it, the writer checks as
    // it applies the action: their user record may change meanwhile.
    let action = request.op.action();
    caller.require(
        caller.role.may_take(action, ticket.kind, ticket.category),
        action.refused(),
    )?;
    if action == OfficeAction::Close
        && ticket.kind == TicketKind::VerbalDispatch
        && ticket.received_by != caller.user
    {
        return Err(ApiError::forbidden(
            "a verbal dispatch is closed by whoever took the report (R-K1, 由受理人关闭)",
        ));
    }
    let named = key.name(&(&ticket.id, &request));
    let command = Command::Office {
        by: caller.user,
        ticket_id: ticket.id,
        request,
        named,
    };
    let (ticket, replayed) = expect_ticket(state.writer.submit(command).await?)?;
    Ok((replayed, Json(ticket)))
}

pub(super) fn load_visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Ticket, ApiError> {
    let id = TicketId::parse(id).map_err(|_| ticket_not_found())?;
    let ticket = state.store.ticket(&id)?.ok_or_else(ticket_not_found)?;
    caller.check_can_see(&ticket)?;
    Ok(ticket)
}

/// The ticket, and whether a named write was answered before.
fn expect_ticket(reply: Reply) -> Result<(Ticket, Replayed), ApiError> {
    match reply {
        Reply::Ticket(ticket) => Ok((*ticket, Replayed(false))),
        Reply::Replayed(ticket) => Ok((*ticket, Replayed(true))),
        _ => Err(ApiError::Internal("expected a ticket reply".to_owned())),
    }
}

/// `Idempotent-Replayed: true` on the answer to a named write made before.
pub struct Replayed(bool);

impl IntoResponseParts for Replayed {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if self.0 {
            parts
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        Ok(parts)
    }
}
