//! The due list: the deadlines the caller acts on that are due soon or
//! overdue (`sync_protocol::due`), over the caller's estate, read page by
//! page like the reports, on a blocking thread.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use sync_protocol::DueList;
use sync_protocol::due::{DEFAULT_DUE_WINDOW_MINUTES, MAX_DUE_WINDOW_MINUTES};

use super::{ApiError, AppState, Caller};
use crate::calendars::estate_calendar;
use crate::reports::due_list_of;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DueQuery {
    window_minutes: Option<String>,
}

/// Every role may ask: each sees what it acts on (`acts_on`), a technician
/// only their own deadlines.
pub async fn due_list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<DueQuery>, QueryRejection>,
) -> Result<Json<DueList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let window_minutes = parse_window_minutes(query.window_minutes.as_deref())?;
    let now = state.clock.now();
    let store = state.store.clone();
    let Caller { user, role, estate } = caller;
    let built = tokio::task::spawn_blocking(move || {
        let calendar = estate_calendar(&estate);
        let window = chrono::Duration::minutes(window_minutes);
        due_list_of(&store, &estate, &calendar, now, window, role, &user)
    })
    .await;
    match built {
        Ok(Ok(list)) => Ok(Json(list)),
        Ok(Err(error)) => Err(error.into()),
        Err(join_error) => Err(ApiError::Internal(format!(
            "building the due list failed: {join_error}"
        ))),
    }
}

/// Whole minutes, 1 to the largest window; the default when absent.
fn parse_window_minutes(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_DUE_WINDOW_MINUTES);
    };
    match raw.parse::<i64>() {
        Ok(minutes) if (1..=MAX_DUE_WINDOW_MINUTES).contains(&minutes) => Ok(minutes),
        _ => Err(ApiError::bad_request(
            "invalid_window",
            format!(
                "window_minutes must be a whole number of minutes from 1 to {MAX_DUE_WINDOW_MINUTES}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_defaults_to_an_hour_and_is_bounded_by_a_week() {
        assert_eq!(parse_window_minutes(None).unwrap(), 60);
        assert_eq!(parse_window_minutes(Some("1")).unwrap(), 1);
        assert_eq!(parse_window_minutes(Some("10080")).unwrap(), 10080);
        for refused in ["0", "-5", "10081", "1.5", "", "soon"] {
            assert!(parse_window_minutes(Some(refused)).is_err(), "{refused}");
        }
    }
}
