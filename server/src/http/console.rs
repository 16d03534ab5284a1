//! What the office console reads beside the tickets: the list of ticket
//! cards with its search and filters, the units reported before, and the
//! names of the estate's people. And the `Idempotency-Key` of office writes.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use serde::Deserialize;
use sync_protocol::{
    CardFilter, CardOrder, IDEMPOTENCY_HEADER, IdempotencyKey, KnownUnits, NamedRequest,
    OfferedActions, People, Permissions, StatusFilter, TicketCardPage, TicketKind, TicketScope,
    UserId, offered_actions,
};

use super::tickets::load_visible;
use super::{ApiError, ApiPath, AppState, Caller, page_limit};
use crate::store::CardCursor;

/// The client's name for an office write, if it gave one.
pub struct RequestKey(Option<IdempotencyKey>);

impl RequestKey {
    /// The write named by this key, fingerprinted by what it asks.
    pub fn name(self, body: &impl serde::Serialize) -> Option<NamedRequest> {
        self.0.map(|key| NamedRequest::new(key, body))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_HEADER) else {
            return Ok(RequestKey(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|raw| IdempotencyKey::parse(raw).ok())
            .map(|key| RequestKey(Some(key)))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key takes 1-64 characters of A-Z a-z 0-9 - _ . :",
                )
            })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardQuery {
    /// Searched in the serial number, unit, reporter's name and phone.
    q: Option<String>,
    kind: Option<TicketKind>,
    status: Option<StatusFilter>,
    technician: Option<UserId>,
    overdue: Option<bool>,
    order: Option<CardOrder>,
    after: Option<String>,
    limit: Option<usize>,
}

/// The console's ticket list: the estate's cards for the office roles, a
/// technician's own (assigned) ones for a technician.
pub async fn ticket_cards(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<CardQuery>, QueryRejection>,
) -> Result<Json<TicketCardPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let after = query
        .after
        .as_deref()
        .map(|raw| {
            CardCursor::parse(raw).ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "after takes a next_after of this list")
            })
        })
        .transpose()?;
    let mut filter = CardFilter::default()
        .with_text(query.q.as_deref().unwrap_or(""))
        .map_err(|error| ApiError::bad_request("invalid_query", error.to_string()))?;
    filter.kind = query.kind;
    filter.status = query.status;
    filter.technician = query.technician;
    filter.overdue = query.overdue.unwrap_or(false);
    match caller.role.ticket_scope() {
        TicketScope::WholeEstate => {}
        // A technician's list is their own tickets, whatever else it asks.
        TicketScope::Assigned => {
            if filter
                .technician
                .as_ref()
                .is_some_and(|asked| *asked != caller.user)
            {
                return Ok(Json(TicketCardPage {
                    cards: Vec::new(),
                    next_after: None,
                }));
            }
            filter.technician = Some(caller.user.clone());
        }
        TicketScope::Nothing => {
            return Err(ApiError::forbidden("this role reads no tickets (无此权限)"));
        }
    }
    let order = query.order.unwrap_or_default();
    let store = state.store.clone();
    let page = state
        .execution
        .run_blocking(move || {
            store.ticket_cards(&caller.estate, &filter, order, after.as_ref(), limit)
        })
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))??;
    Ok(Json(TicketCardPage {
        cards: page.cards,
        next_after: page.next.map(|cursor| cursor.to_hex()),
    }))
}

/// Most units one answer suggests.
const MAX_UNIT_SUGGESTIONS: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitQuery {
    prefix: Option<String>,
    limit: Option<usize>,
}

/// Units reported before whose name starts with `prefix`, for intake.
pub async fn units(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<UnitQuery>, QueryRejection>,
) -> Result<Json<KnownUnits>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    caller.require(caller.role.may_take_reports(), "record reports")?;
    let limit = query.limit.unwrap_or(10);
    if limit == 0 || limit > MAX_UNIT_SUGGESTIONS {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            format!("limit must be 1-{MAX_UNIT_SUGGESTIONS}"),
        ));
    }
    let prefix = query.prefix.unwrap_or_default();
    if prefix.chars().count() > sync_protocol::cards::MAX_SEARCH_CHARS {
        return Err(ApiError::bad_request(
            "invalid_query",
            "the prefix is too long",
        ));
    }
    let units = state.store.known_units(&caller.estate, &prefix, limit)?;
    Ok(Json(KnownUnits { units }))
}

/// The people of the caller's estate, for names instead of ids: everyone
/// for the roles that read the estate (and administrators), only
/// themselves for a technician.
pub async fn people(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<People>, ApiError> {
    let people = if caller.role.sees_whole_estate() || caller.role.may_administer_users() {
        state.store.estate_people(&caller.estate)?
    } else {
        state.store.user(&caller.user)?.into_iter().collect()
    };
    Ok(Json(People {
        people: people.iter().map(|user| user.person()).collect(),
    }))
}

/// What the caller's role may do: the console shows only that.
pub async fn permissions(caller: Caller) -> Json<Permissions> {
    Json(Permissions::of(caller.role))
}

/// The office actions the caller may take on the ticket now: the role's
/// permission and the ticket's state, judged as the action would be.
pub async fn offered(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OfferedActions>, ApiError> {
    let ticket = load_visible(&state, &caller, &id)?;
    let actions = if caller.role.sees_whole_estate() {
        offered_actions(&ticket, caller.role, &caller.user, state.clock.now())
    } else {
        Vec::new()
    };
    Ok(Json(OfferedActions {
        ticket_id: ticket.id,
        version: ticket.version,
        actions,
    }))
}
