//! `GET /metrics`, and the middleware that counts sync requests.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Duration;

use super::{ApiError, AppState, openapi};
use crate::metrics::{Gauges, SyncKind};
use crate::store::StoreError;

/// Devices read from the store at a time while counting stale ones.
const DEVICE_PAGE_SIZE: usize = 1000;

/// No token: the text holds counts only (`crate::metrics`).
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let stale_after_minutes = state.supervision.stale_after_minutes;
    let stale_before = state.clock.now() - Duration::minutes(stale_after_minutes);
    let store = state.store.clone();
    let stale_devices = tokio::task::spawn_blocking(move || count_stale(&store, stale_before))
        .await
        .map_err(|e| ApiError::Internal(format!("counting stale devices failed: {e}")))??;
    let gauges = Gauges {
        live_subscribers: state.live.connected(),
        live_events: state.live.published(),
        live_dropped: state.live.dropped(),
        stale_after_minutes,
        stale_devices,
    };
    let text = state.metrics.render(&gauges);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Count push and pull requests by status, and time pushes.
pub async fn count_sync_requests(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let kind = match request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some(openapi::PUSH) => Some(SyncKind::Push),
        Some(openapi::PULL) => Some(SyncKind::Pull),
        _ => None,
    };
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(kind) = kind {
        state
            .metrics
            .sync_request(kind, response.status().as_u16(), started.elapsed());
    }
    response
}

fn count_stale(
    store: &crate::store::Store,
    stale_before: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StoreError> {
    let mut stale = 0;
    let mut after = None;
    loop {
        let page = store.all_devices(after.as_ref(), DEVICE_PAGE_SIZE)?;
        stale += page
            .iter()
            .filter(|device| device.last_contact_at < stale_before)
            .count() as u64;
        if page.len() < DEVICE_PAGE_SIZE {
            return Ok(stale);
        }
        after = page.last().map(|device| device.device_id.clone());
    }
}
