//! The HTTP shell: routes under `/api/v1`, one error type, limits on body
//! size, concurrency and time, a span per request, and the protocol header
//! on every response.

mod admin;
mod blobs;
mod caller;
mod client;
mod console;
mod dashboard;
mod dispatch;
mod due;
mod error;
mod live;
mod metrics;
mod office_console;
mod openapi;
mod reports;
mod serve;
mod session;
mod static_files;
mod supervision;
mod sync;
mod technician_app;
mod tickets;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{BoxError, Json, Router};
use sync_protocol::{PROTOCOL_HEADER, PROTOCOL_VERSION};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use caller::{Caller, ticket_not_found};
pub use client::{ClientAddress, PeerAddress};
pub use error::{ApiError, ApiJson, ApiPath};
pub use openapi::{OPENAPI_JSON, ROUTES};
pub use serve::{ConnectionLimits, serve};

use crate::auth::throttle::LoginThrottle;
use crate::auth::{Authority, PasswordChecker};
use crate::calendars::Calendars;
use crate::clock::Clock;
use crate::config::Limits;
use crate::config::SupervisionConfig;
use crate::execution::Execution;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::users::UserDirectory;
use crate::writer::Writer;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub authority: Authority,
    /// Who each user is now: role, estate, generation.
    pub users: UserDirectory,
    /// Where passwords are hashed and checked: a bounded pool.
    pub passwords: PasswordChecker,
    pub throttle: LoginThrottle,
    /// How long a refresh token stays good after its last use.
    pub refresh_ttl: chrono::Duration,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
    /// The working calendar of each estate (reports, due list).
    pub calendars: Calendars,
    /// Where blocking work runs.
    pub execution: Execution,
    /// The supervisors' live feed.
    pub live: LiveHub,
    pub metrics: Arc<Metrics>,
    pub supervision: SupervisionConfig,
}

pub fn router(state: Arc<AppState>) -> Router {
    let limits = state.limits.clone();
    // Logins and refreshes: counted against the client address before the
    // body is even read, and with a body of at most 16 KiB.
    let sessions = Router::new()
        .route(openapi::LOGIN, post(session::login))
        .route(openapi::REFRESH, post(session::refresh))
        .layer(DefaultBodyLimit::max(session::AUTH_BODY_LIMIT_BYTES))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::throttle_by_address,
        ));
    let api = Router::new()
        .merge(sessions)
        .route(openapi::ADMIN_USERS, get(admin::list).post(admin::add))
        .route(openapi::ADMIN_USER, patch(admin::change))
        .route(openapi::ADMIN_USER_PASSWORD, post(admin::reset_password))
        .route(openapi::ADMIN_USER_SESSIONS_END, post(admin::end_sessions))
        .route(openapi::PULL, post(sync::pull))
        .route(openapi::PUSH, post(sync::push))
        .route(openapi::DEVICES, get(sync::devices))
        .route(openapi::BLOB, put(blobs::upload).get(blobs::download))
        .route(openapi::TICKETS, post(tickets::create).get(tickets::list))
        .route(openapi::TICKET, get(tickets::show))
        .route(
            openapi::TICKET_ACTIONS,
            post(tickets::act).get(console::offered),
        )
        .route(openapi::TICKET_CARDS, get(console::ticket_cards))
        .route(openapi::UNITS, get(console::units))
        .route(openapi::PEOPLE, get(console::people))
        .route(openapi::PERMISSIONS, get(console::permissions))
        .route(openapi::TICKET_SUGGESTIONS, get(dispatch::suggestions))
        .route(openapi::DISPATCH_QUEUE, get(dispatch::queue))
        .route(openapi::DUE, get(due::due_list))
        .route(openapi::REPORT_DAILY_UNCLOSED, get(reports::daily_unclosed))
        .route(openapi::REPORT_MONTHLY, get(reports::monthly_statistics))
        .route(
            openapi::REPORT_MONTHLY_ARCHIVE,
            get(reports::monthly_archive),
        )
        .route(openapi::OPENAPI, get(openapi::document))
        .route(openapi::DASHBOARD, get(dashboard::index))
        .route(openapi::DASHBOARD_SCRIPT, get(dashboard::script))
        .route(openapi::DASHBOARD_STYLE, get(dashboard::style))
        .route(openapi::APP, get(technician_app::page))
        .route(openapi::APP_FILE, get(technician_app::file))
        .route(openapi::CONSOLE, get(office_console::page))
        .route(openapi::CONSOLE_FILE, get(office_console::file))
        .route(openapi::SUPERVISION, get(supervision::snapshot))
        .route(openapi::LIVE, get(live::live))
        .route(openapi::TICKET_REVIEWS, post(supervision::review))
        .route(openapi::METRICS, get(metrics::metrics))
        .route(openapi::HEALTH, get(health))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::count_sync_requests,
        ));
    api.fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("a handler panicked".to_owned()).into_response()
                }))
                .layer(TraceLayer::new_for_http())
                .layer(HandleErrorLayer::new(too_slow))
                .timeout(Duration::from_millis(limits.request_timeout_ms))
                // One semaphore for the whole server (a plain concurrency
                // limit would be per route); the rest wait, within the timeout.
                .layer(GlobalConcurrencyLimitLayer::new(
                    limits.max_concurrent_requests,
                )),
        )
        // Outermost, so that the answers made by the layers above (timeout,
        // panic, route fallbacks) carry these headers too.
        .layer(middleware::from_fn(no_store))
        .layer(middleware::from_fn(protocol_header))
}

/// Most records one listing page returns.
const MAX_LIST_LIMIT: usize = 500;
const DEFAULT_LIST_LIMIT: usize = 100;

/// The page size of a listing, checked.
fn page_limit(requested: Option<usize>) -> Result<usize, ApiError> {
    let limit = requested.unwrap_or(DEFAULT_LIST_LIMIT);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            format!("limit must be 1-{MAX_LIST_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// Where the next listing page starts: after the last record of a full page
/// (which may turn out to be the last one; the next request then returns none).
fn next_after<T, Id>(page: &[T], limit: usize, id: impl Fn(&T) -> Id) -> Option<Id> {
    if page.len() == limit {
        page.last().map(id)
    } else {
        None
    }
}

async fn health(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    if state.writer.is_stopped() {
        return ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "writer_stopped",
            "the store can no longer be written; see the server log",
        )
        .into_response();
    }
    match state.store.counters() {
        Ok(_) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// Every response carries the protocol version; a request that states
/// another one is refused before it reaches a handler.
async fn protocol_header(request: Request, next: Next) -> Response {
    let stated = request.headers().get(PROTOCOL_HEADER).cloned();
    let mut response = match stated {
        Some(value) if value.to_str().ok() != Some(&PROTOCOL_VERSION.to_string()) => {
            unsupported_protocol().into_response()
        }
        _ => next.run(request).await,
    };
    response
        .headers_mut()
        .insert(PROTOCOL_HEADER, HeaderValue::from(PROTOCOL_VERSION));
    response
}

/// What the API answers carries residents' names, phones, addresses and
/// signatures (and the login answer a token): no cache, shared or private,
/// may keep a copy. The OpenAPI document is the one answer under `/api/v1/`
/// that holds nothing of theirs.
async fn no_store(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let private = path.starts_with(openapi::API_PREFIX) && path != openapi::OPENAPI;
    let mut response = next.run(request).await;
    if private {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

pub(crate) fn unsupported_protocol() -> ApiError {
    ApiError::bad_request(
        "unsupported_protocol",
        format!("this server speaks sync protocol version {PROTOCOL_VERSION}"),
    )
    .with_details(serde_json::json!({ "supported": [PROTOCOL_VERSION] }))
}

async fn too_slow(error: BoxError) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long; it is safe to retry",
        )
    } else {
        ApiError::Internal(error.to_string())
    }
}

async fn route_not_found() -> ApiError {
    ApiError::not_found(
        "route_not_found",
        "no such endpoint; see /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::client(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /api/v1/openapi.json",
    )
}
