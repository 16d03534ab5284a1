//! R-D3 over HTTP: the dispatch queue and technician suggestions, for the
//! roles that dispatch (R-D1). Handlers read the store, ask the core
//! (`sync_protocol::dispatch`) and answer; they write nothing.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use sync_protocol::{
    DispatchQueue, DispatchSuggestions, MAX_DISPATCH_QUEUE, QueuedTicket, Role, TechnicianLoad,
    Ticket, assignment_event, building_of, dispatch_queue, holds_open, suggest_technicians,
    waits_for_dispatch,
};

use super::tickets::load_visible;
use super::{ApiError, ApiPath, AppState, Caller, next_after};
use crate::reports::for_each_active_ticket;
use crate::store::UserRecord;

/// Tickets read from the store at a time while scanning an index.
const SCAN_PAGE: usize = 500;

/// R-D3: the estate's tickets waiting for dispatch that the caller's role
/// dispatches (R-D1), owners' jobs first, then the oldest; a booking from
/// its issue (R-S2), by the server's clock.
pub async fn queue(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<DispatchQueue>, ApiError> {
    caller.require(
        caller.role.may_dispatch_any(),
        "dispatch tickets, so it has no dispatch queue (R-D1, R-D3)",
    )?;
    let now = state.clock.now();
    // A scan of the estate's active tickets, keeping only the few that wait.
    let mut waiting: Vec<Ticket> = Vec::new();
    for_each_active_ticket(&state.store, &caller.estate, |ticket| {
        if waits_for_dispatch(ticket, now) && caller.role.may_dispatch(ticket.kind, ticket.category)
        {
            waiting.push(ticket.clone());
        }
    })?;
    let queue = dispatch_queue(&waiting, now);
    Ok(Json(DispatchQueue {
        waiting: u32::try_from(queue.len()).unwrap_or(u32::MAX),
        tickets: queue
            .into_iter()
            .take(MAX_DISPATCH_QUEUE)
            .map(QueuedTicket::of)
            .collect(),
    }))
}

/// R-D3: the estate's technicians ranked for one ticket, for the role that
/// dispatches it (R-D1).
pub async fn suggestions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DispatchSuggestions>, ApiError> {
    caller.require_office()?;
    let ticket = load_visible(&state, &caller, &id)?;
    caller.require(
        caller.role.may_dispatch(ticket.kind, ticket.category),
        "dispatch this kind of ticket (R-D1)",
    )?;
    // Nobody can be given a finished ticket, nor a booking before its issue
    // (R-S2): refused like the action would be.
    assignment_event(&ticket, state.clock.now())?;
    let technicians = state.store.estate_users(&caller.estate, Role::Technician)?;
    let mut loads = Vec::with_capacity(technicians.len());
    for technician in technicians {
        loads.push(load_of(&state, technician)?);
    }
    Ok(Json(DispatchSuggestions {
        ticket_id: ticket.id.clone(),
        building: building_of(&ticket.location).map(str::to_owned),
        suggestions: suggest_technicians(&ticket, &loads),
    }))
}

/// A technician's open jobs, from every ticket ever assigned to them, read
/// a page at a time so that only the open ones are kept.
fn load_of(state: &AppState, technician: UserRecord) -> Result<TechnicianLoad, ApiError> {
    let mut open: Vec<Ticket> = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .assigned_tickets(&technician.id, after.as_ref(), SCAN_PAGE)?;
        after = next_after(&page, SCAN_PAGE, |ticket| ticket.id.clone());
        open.extend(
            page.into_iter()
                .filter(|ticket| holds_open(ticket, &technician.id)),
        );
        if after.is_none() {
            break;
        }
    }
    Ok(TechnicianLoad::from_tickets(
        technician.id,
        technician.display_name,
        &open,
    ))
}
