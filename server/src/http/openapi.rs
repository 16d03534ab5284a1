//! The OpenAPI document and the route table it must match.

use axum::http::header;
use axum::response::IntoResponse;

/// Every route of the API proper is under this prefix.
pub const API_PREFIX: &str = "/api/v1/";
pub const HEALTH: &str = "/healthz";
pub const OPENAPI: &str = "/api/v1/openapi.json";
pub const LOGIN: &str = "/api/v1/auth/login";
pub const REFRESH: &str = "/api/v1/auth/refresh";
pub const ADMIN_USERS: &str = "/api/v1/admin/users";
pub const ADMIN_USER: &str = "/api/v1/admin/users/{id}";
pub const ADMIN_USER_PASSWORD: &str = "/api/v1/admin/users/{id}/password";
pub const ADMIN_USER_SESSIONS_END: &str = "/api/v1/admin/users/{id}/end-sessions";
pub const PULL: &str = "/api/v1/sync/pull";
pub const PUSH: &str = "/api/v1/sync/push";
pub const DEVICES: &str = "/api/v1/devices";
pub const BLOB: &str = "/api/v1/blobs/{sha256}";
pub const TICKETS: &str = "/api/v1/tickets";
pub const TICKET: &str = "/api/v1/tickets/{id}";
pub const TICKET_ACTIONS: &str = "/api/v1/tickets/{id}/actions";
pub const REPORT_DAILY_UNCLOSED: &str = "/api/v1/reports/daily-unclosed";
pub const REPORT_MONTHLY: &str = "/api/v1/reports/monthly";
pub const REPORT_MONTHLY_ARCHIVE: &str = "/api/v1/reports/monthly-archive";
pub const TICKET_SUGGESTIONS: &str = "/api/v1/tickets/{id}/suggestions";
pub const DISPATCH_QUEUE: &str = "/api/v1/dispatch-queue";
pub const DUE: &str = "/api/v1/due";
pub const SUPERVISION: &str = "/api/v1/supervision";
pub const LIVE: &str = "/api/v1/live";
pub const TICKET_REVIEWS: &str = "/api/v1/tickets/{id}/reviews";
pub const METRICS: &str = "/metrics";
pub const DASHBOARD: &str = "/dashboard";
pub const DASHBOARD_SCRIPT: &str = "/dashboard/app.js";
pub const DASHBOARD_STYLE: &str = "/dashboard/style.css";
pub const APP: &str = "/app";
pub const APP_FILE: &str = "/app/{file}";
pub const CONSOLE: &str = "/console";
pub const CONSOLE_FILE: &str = "/console/{file}";
pub const TICKET_CARDS: &str = "/api/v1/ticket-cards";
pub const UNITS: &str = "/api/v1/units";
pub const PEOPLE: &str = "/api/v1/people";
pub const PERMISSIONS: &str = "/api/v1/permissions";

/// Every (method, path) the router serves. The router is built from the same
/// constants, and a test checks this table against the document both ways.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", HEALTH),
    ("get", OPENAPI),
    ("post", LOGIN),
    ("post", REFRESH),
    ("get", ADMIN_USERS),
    ("post", ADMIN_USERS),
    ("patch", ADMIN_USER),
    ("post", ADMIN_USER_PASSWORD),
    ("post", ADMIN_USER_SESSIONS_END),
    ("post", PULL),
    ("post", PUSH),
    ("get", DEVICES),
    ("put", BLOB),
    ("get", BLOB),
    ("post", TICKETS),
    ("get", TICKETS),
    ("get", TICKET),
    ("post", TICKET_ACTIONS),
    ("get", TICKET_ACTIONS),
    ("get", REPORT_DAILY_UNCLOSED),
    ("get", REPORT_MONTHLY),
    ("get", REPORT_MONTHLY_ARCHIVE),
    ("get", TICKET_SUGGESTIONS),
    ("get", DISPATCH_QUEUE),
    ("get", DUE),
    ("get", SUPERVISION),
    ("get", LIVE),
    ("post", TICKET_REVIEWS),
    ("get", METRICS),
    ("get", DASHBOARD),
    ("get", DASHBOARD_SCRIPT),
    ("get", DASHBOARD_STYLE),
    ("get", APP),
    ("get", APP_FILE),
    ("get", CONSOLE),
    ("get", CONSOLE_FILE),
    ("get", TICKET_CARDS),
    ("get", UNITS),
    ("get", PEOPLE),
    ("get", PERMISSIONS),
];

pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_served_routes() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let documented: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|key| ["get", "put", "post", "delete", "patch"].contains(&key.as_str()))
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(documented, served);
    }
}
