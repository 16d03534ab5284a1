//! The due list: the deadlines the caller acts on that are due soon or
//! overdue (`sync_protocol::due`), over the caller's estate in its working
//! calendar, read page by page like the reports, on a blocking thread. At
//! most `limit` items, the most urgent first; `left_off` counts the rest.

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use sync_protocol::due::{
    DEFAULT_DUE_LIMIT, DEFAULT_DUE_WINDOW_MINUTES, MAX_DUE_LIMIT, MAX_DUE_WINDOW_MINUTES,
};
use sync_protocol::{DueList, DueListBuilder, RuleId};

use super::{ApiError, AppState, Caller};
use crate::reports::due_list_of;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DueQuery {
    window_minutes: Option<String>,
    limit: Option<String>,
    /// Only this rule's deadlines, e.g. `R-F1` for the follow-ups list.
    rule: Option<RuleId>,
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
    let limit = parse_limit(query.limit.as_deref())?;
    let now = state.clock.now();
    let store = state.store.clone();
    let calendars = state.calendars.clone();
    let Caller {
        user, role, estate, ..
    } = caller;
    let built = tokio::task::spawn_blocking(move || {
        let window = chrono::Duration::minutes(window_minutes);
        let calendar = calendars.of(&estate);
        let builder =
            DueListBuilder::new(calendar, now, window, role, &user, limit).only(query.rule);
        due_list_of(&store, &estate, builder)
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
    let allowed = 1..=MAX_DUE_WINDOW_MINUTES;
    whole_number_within(raw, DEFAULT_DUE_WINDOW_MINUTES, allowed).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_window",
            format!(
                "window_minutes must be a whole number of minutes from 1 to {MAX_DUE_WINDOW_MINUTES}"
            ),
        )
    })
}

/// A whole number of items, 1 to the largest list; the default when absent.
fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    whole_number_within(raw, DEFAULT_DUE_LIMIT, 1..=MAX_DUE_LIMIT).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_limit",
            format!("limit must be a whole number of items from 1 to {MAX_DUE_LIMIT}"),
        )
    })
}

/// `raw` read as a whole number within `allowed`, `default` when absent;
/// `None` when it is not one.
fn whole_number_within<T: FromStr + PartialOrd>(
    raw: Option<&str>,
    default: T,
    allowed: RangeInclusive<T>,
) -> Option<T> {
    match raw {
        None => Some(default),
        Some(raw) => raw.parse().ok().filter(|number| allowed.contains(number)),
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

    #[test]
    fn the_limit_defaults_to_a_hundred_items_and_is_bounded_by_five_hundred() {
        assert_eq!(parse_limit(None).unwrap(), 100);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("500")).unwrap(), 500);
        for refused in ["0", "-1", "501", "2.5", "", "all", "+"] {
            assert!(parse_limit(Some(refused)).is_err(), "{refused}");
        }
    }
}
