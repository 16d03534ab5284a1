//! The supervisors' snapshot (`GET /api/v1/supervision`) and the review of
//! a flagged fact (`POST /api/v1/tickets/{id}/reviews`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sync_protocol::due::DEFAULT_DUE_WINDOW_MINUTES;
use sync_protocol::supervision::{MAX_AT_RISK_ITEMS, MAX_CREW_ROWS, MAX_REVIEW_ITEMS};
use sync_protocol::{
    AtRiskTicket, DeviceId, DueListBuilder, EstateId, LiveEventBody, ReviewItem, ReviewRequest,
    Role, SupervisionSnapshot, Ticket, TicketId, UserId, crew_row, review_items, sort_crew,
};

use super::tickets::load_visible;
use super::{ApiError, ApiJson, ApiPath, AppState, Caller};
use crate::calendars::Calendars;
use crate::reports::for_each_estate_ticket;
use crate::store::{Store, StoreError};
use crate::writer::{Command, Reply};

/// Devices read from the store at a time.
const DEVICE_PAGE_SIZE: usize = 500;

/// The endpoint takes no parameters; an unknown one is refused, not ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

pub async fn snapshot(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Json<SupervisionSnapshot>, ApiError> {
    caller.require(caller.role.may_watch_crew(), "watch the crew")?;
    query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    // Read before the store, so that an event the snapshot may miss is
    // after this id and replayed to a subscriber that starts from it.
    let last_event_id = state.live.last_id();
    let reading = Reading {
        store: state.store.clone(),
        calendars: state.calendars.clone(),
        estate: caller.estate,
        user: caller.user,
        now: state.clock.now(),
        online_window: Duration::minutes(state.supervision.online_window_minutes),
        due_soon_window: Duration::minutes(DEFAULT_DUE_WINDOW_MINUTES),
    };
    let built = tokio::task::spawn_blocking(move || reading.snapshot(last_event_id)).await;
    match built {
        Ok(Ok(snapshot)) => Ok(Json(snapshot)),
        Ok(Err(error)) => Err(error.into()),
        Err(join_error) => Err(ApiError::Internal(format!(
            "building the supervision snapshot failed: {join_error}"
        ))),
    }
}

/// A supervisor accepts or annotates a flagged fact; answered with the ticket.
pub async fn review(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(ticket_id): ApiPath<String>,
    ApiJson(request): ApiJson<ReviewRequest>,
) -> Result<Json<Ticket>, ApiError> {
    caller.require(caller.role.may_review_facts(), "review device facts")?;
    let ticket = load_visible(&state, &caller, &ticket_id)?;
    let command = Command::Review {
        by: caller.user.clone(),
        ticket_id: ticket.id,
        request: request.clone(),
    };
    let Reply::Reviewed { ticket, recorded } = state.writer.submit(command).await? else {
        return Err(ApiError::Internal("a review got another reply".to_owned()));
    };
    if recorded {
        let body = LiveEventBody::FactReviewed {
            ticket_id: ticket.id.clone(),
            mutation_id: request.mutation_id,
            decision: request.decision,
            by: caller.user,
        };
        state.live.publish(&ticket.estate, ticket.updated_at, body);
    }
    Ok(Json(*ticket))
}

/// What a snapshot reads, moved onto a blocking thread.
struct Reading {
    store: Store,
    calendars: Calendars,
    estate: EstateId,
    user: UserId,
    now: DateTime<Utc>,
    online_window: Duration,
    due_soon_window: Duration,
}

impl Reading {
    fn snapshot(&self, last_event_id: u64) -> Result<SupervisionSnapshot, StoreError> {
        let devices = self.devices()?;
        let online_technicians: BTreeSet<UserId> = devices
            .iter()
            .filter(|device| {
                sync_protocol::is_online(device.last_contact_at, self.now, self.online_window)
            })
            .map(|device| device.user.clone())
            .collect();

        let calendar = self.calendars.of(&self.estate);
        let mut due = DueListBuilder::new(
            calendar,
            self.now,
            self.due_soon_window,
            // The supervisor watches every deadline, whoever acts on it.
            Role::Supervisor,
            &self.user,
            MAX_AT_RISK_ITEMS,
        );
        let mut holders: BTreeMap<TicketId, UserId> = BTreeMap::new();
        let mut tickets_held: BTreeMap<UserId, u32> = BTreeMap::new();
        let mut review_queue: Vec<ReviewItem> = Vec::new();
        for_each_estate_ticket(&self.store, &self.estate, |ticket| {
            due.add(ticket);
            if let Some(holder) = ticket.holder() {
                holders.insert(ticket.id.clone(), holder.clone());
                *tickets_held.entry(holder.clone()).or_default() += 1;
            }
            review_queue.extend(review_items(ticket));
        })?;

        let mut awaiting_review: BTreeMap<&DeviceId, u32> = BTreeMap::new();
        for item in &review_queue {
            *awaiting_review.entry(&item.device).or_default() += 1;
        }
        let mut crew: Vec<_> = devices
            .iter()
            .map(|device| {
                let held = tickets_held.get(&device.user).copied().unwrap_or(0);
                let awaiting = awaiting_review.get(&device.device_id).copied().unwrap_or(0);
                crew_row(device, self.now, self.online_window, held, awaiting)
            })
            .collect();
        // What needs a supervisor first, then recent contact: never a cut
        // by device id, which made-up ids could win.
        sort_crew(&mut crew);
        let crew_left_off = crew.len().saturating_sub(MAX_CREW_ROWS) as u64;
        crew.truncate(MAX_CREW_ROWS);

        let due = due.finish();
        let at_risk = due
            .items
            .into_iter()
            .map(|item| {
                let technician = holders.get(&item.ticket_id).cloned();
                let at_risk_while_offline = technician
                    .as_ref()
                    .is_some_and(|user| !online_technicians.contains(user));
                AtRiskTicket {
                    due: item,
                    technician,
                    at_risk_while_offline,
                }
            })
            .collect();

        review_queue.sort_by(|a, b| {
            (a.received_at, &a.ticket_id, &a.mutation_id).cmp(&(
                b.received_at,
                &b.ticket_id,
                &b.mutation_id,
            ))
        });
        let review_left_off = review_queue.len().saturating_sub(MAX_REVIEW_ITEMS) as u64;
        review_queue.truncate(MAX_REVIEW_ITEMS);

        Ok(SupervisionSnapshot {
            generated_at: self.now,
            last_event_id,
            online_window_minutes: self.online_window.num_minutes(),
            due_soon_window_minutes: self.due_soon_window.num_minutes(),
            crew,
            crew_left_off,
            at_risk,
            at_risk_left_off: due.left_off,
            review_queue,
            review_left_off,
        })
    }

    /// Every device of the estate, in id order.
    fn devices(&self) -> Result<Vec<sync_protocol::DeviceStatus>, StoreError> {
        let mut devices = Vec::new();
        loop {
            let after = devices
                .last()
                .map(|device: &sync_protocol::DeviceStatus| device.device_id.clone());
            let page = self
                .store
                .estate_devices(&self.estate, after.as_ref(), DEVICE_PAGE_SIZE)?;
            let full = page.len() == DEVICE_PAGE_SIZE;
            devices.extend(page);
            if !full {
                return Ok(devices);
            }
        }
    }
}
