//! The office API: intake, listing, reading and office actions on tickets.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use sync_protocol::{
    IntakeDraft, OfficeActionRequest, OfficeOp, Ticket, TicketAccess, TicketId, TicketKind,
    TicketPage, TicketScope,
};

use super::{
    ApiError, ApiJson, ApiPath, AppState, Caller, next_after, page_limit, ticket_not_found,
};
use crate::writer::{Command, Reply};

/// R-I1/R-I2: record a report; R-S2: a booking with it. A missing field is
/// named with every other problem of the record (422), like a blank one.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(draft): ApiJson<IntakeDraft>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    caller.require(caller.role.may_take_reports(), "record reports")?;
    if draft
        .estate
        .as_ref()
        .is_some_and(|estate| *estate != caller.estate)
    {
        return Err(ApiError::forbidden("you work for another estate"));
    }
    let intake = draft.complete(state.calendars.of(&caller.estate), state.clock.now())?;
    let command = Command::CreateTicket {
        by: caller.user,
        intake,
    };
    let ticket = expect_ticket(state.writer.submit(command).await?)?;
    Ok((StatusCode::CREATED, Json(ticket)))
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
    ApiJson(request): ApiJson<OfficeActionRequest>,
) -> Result<Json<Ticket>, ApiError> {
    caller.require_office()?;
    let ticket = load_visible(&state, &caller, &id)?;
    match &request.op {
        // Whether the technician named can be given it, the writer checks
        // as it applies the action: their user record may change meanwhile.
        OfficeOp::Dispatch { .. } | OfficeOp::Reassign { .. } => {
            caller.require(
                caller.role.may_dispatch(ticket.kind, ticket.category),
                "dispatch this kind of ticket (R-D1)",
            )?;
        }
        OfficeOp::SetAppointment { .. } => {
            caller.require(caller.role.may_set_appointments(), "book appointments")?
        }
        OfficeOp::RescheduleBooking { .. } => caller.require(
            caller.role.may_set_appointments(),
            "move booked services (R-S2)",
        )?,
        OfficeOp::Cancel { .. } => caller.require(caller.role.may_cancel(), "cancel tickets")?,
        OfficeOp::AddNote { .. } => {
            caller.require(caller.role.may_write_office_notes(), "write office notes")?
        }
        OfficeOp::Close {} => {
            caller.require(
                caller.role.may_close(ticket.kind, ticket.category),
                "close this kind of ticket (R-C1, R-C3, R-K1)",
            )?;
            if ticket.kind == TicketKind::VerbalDispatch && ticket.received_by != caller.user {
                return Err(ApiError::forbidden(
                    "a verbal dispatch is closed by whoever took the report (R-K1, 由受理人关闭)",
                ));
            }
        }
        OfficeOp::SignOff { .. } => caller.require(
            caller.role.may_sign_off(),
            "sign coordination tickets off (R-C3)",
        )?,
        OfficeOp::Convert { .. } => caller.require(
            caller.role.may_convert(ticket.category),
            "convert work orders (R-C2)",
        )?,
        OfficeOp::RecordFollowUp { .. } => {
            caller.require(caller.role.may_follow_up(), "record follow-ups (R-F2)")?
        }
        OfficeOp::Track { .. } => caller.require(
            caller.role.may_track(),
            "track coordination tickets (R-P3, R-P4)",
        )?,
    }
    let command = Command::Office {
        by: caller.user,
        ticket_id: ticket.id,
        request,
    };
    Ok(Json(expect_ticket(state.writer.submit(command).await?)?))
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

fn expect_ticket(reply: Reply) -> Result<Ticket, ApiError> {
    match reply {
        Reply::Ticket(ticket) => Ok(*ticket),
        _ => Err(ApiError::Internal("expected a ticket reply".to_owned())),
    }
}
