//! Device sync: pull a technician's changes since a cursor, push mutations.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use sync_protocol::{
    Change, ContactKind, DEFAULT_PAGE_SIZE, DeviceId, DevicePage, DeviceStatus, LiveEventBody,
    MAX_MUTATIONS_PER_PUSH, MAX_PAGE_SIZE, PROTOCOL_VERSION, PullRequest, PullResponse,
    PushRequest, PushResponse, TicketAccess,
};

use super::{ApiError, ApiJson, AppState, Caller, next_after, page_limit, unsupported_protocol};
use crate::writer::{Command, Reply};

pub async fn push(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    caller.require_technician()?;
    check_protocol(request.protocol_version)?;
    if request.mutations.len() > MAX_MUTATIONS_PER_PUSH {
        return Err(ApiError::bad_request(
            "too_many_mutations",
            format!("a push carries at most {MAX_MUTATIONS_PER_PUSH} mutations"),
        )
        .with_details(json!({ "limit": MAX_MUTATIONS_PER_PUSH })));
    }
    let command = Command::Push {
        user: caller.user,
        estate: caller.estate,
        report: request.device,
        mutations: request.mutations,
    };
    let Reply::Push { response, device } = state.writer.submit(command).await? else {
        return Err(ApiError::Internal("push got another reply".to_owned()));
    };
    state.metrics.mutations(&response.outcomes);
    // The push's contact is durable now: tell the supervisors.
    publish_contact(&state, ContactKind::Push, *device);
    Ok(Json(response))
}

pub async fn pull(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<PullRequest>,
) -> Result<Json<PullResponse>, ApiError> {
    caller.require_technician()?;
    check_protocol(request.protocol_version)?;
    let limit = request.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            format!("limit must be 1-{MAX_PAGE_SIZE}"),
        ));
    }
    let up_to = state.writer.durable_cursor();
    if request.cursor > up_to {
        return Err(ApiError::client(
            StatusCode::CONFLICT,
            "cursor_ahead",
            "the cursor is ahead of this server's feed; pull again from 0",
        )
        .with_details(json!({ "server_cursor": up_to })));
    }
    let command = Command::Pulled {
        user: caller.user.clone(),
        estate: caller.estate.clone(),
        report: request.device,
    };
    let Reply::Device(device) = state.writer.submit(command).await? else {
        return Err(ApiError::Internal("pull got another reply".to_owned()));
    };
    let last_seq = device.last_seq;
    publish_contact(&state, ContactKind::Pull, device);

    let limit = limit as usize;
    let mut entries = state
        .store
        .feed(&caller.user, request.cursor, up_to, limit + 1)?;
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    let next_cursor = match (has_more, entries.last()) {
        (true, Some((cursor, _))) => *cursor,
        // Everything up to the durable point has been seen.
        _ => up_to,
    };

    let mut changes = Vec::with_capacity(entries.len());
    for (cursor, entry) in entries {
        let change = match entry.revoked {
            Some(reason) => Change::Revoked {
                cursor,
                ticket_id: entry.ticket_id,
                reason,
            },
            None => match state.store.ticket(&entry.ticket_id)? {
                // A change newer than the durable point may have moved the
                // ticket away already; its revocation follows once durable.
                // A technician moved to another estate gets nothing more of
                // the old one.
                Some(ticket)
                    if ticket.holder() == Some(&caller.user)
                        && caller.access(&ticket) == TicketAccess::Readable =>
                {
                    Change::Upsert {
                        cursor,
                        ticket: Box::new(ticket),
                    }
                }
                _ => continue,
            },
        };
        changes.push(change);
    }
    Ok(Json(PullResponse {
        protocol_version: PROTOCOL_VERSION,
        server_time: state.clock.now(),
        changes,
        next_cursor,
        has_more,
        last_seq,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// The devices of the caller's estate with their last reported sync state.
pub async fn devices(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Json<DevicePage>, ApiError> {
    caller.require_office()?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let after = query
        .after
        .as_deref()
        .map(DeviceId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    let devices = state
        .store
        .estate_devices(&caller.estate, after.as_ref(), limit)?;
    let next_after = next_after(&devices, limit, |device| device.device_id.clone());
    Ok(Json(DevicePage {
        devices,
        next_after,
    }))
}

fn publish_contact(state: &AppState, contact: ContactKind, device: DeviceStatus) {
    let estate = device.estate.clone();
    let at = device.last_contact_at;
    state.live.publish(
        &estate,
        at,
        LiveEventBody::DeviceContact { contact, device },
    );
}

fn check_protocol(version: u32) -> Result<(), ApiError> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(unsupported_protocol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_protocol_version_is_accepted() {
        assert!(check_protocol(PROTOCOL_VERSION).is_ok());
        assert!(check_protocol(PROTOCOL_VERSION + 1).is_err());
    }
}
