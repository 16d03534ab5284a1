//! The reports: the daily unclosed list (R-C4), the monthly statistics
//! (R-A3) and the monthly archive (R-A2), as JSON or as CSV and XLSX
//! downloads. `crate::reports` builds them over the caller's estate, read
//! page by page from the store, on a blocking thread, and lays out the
//! downloads.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use sync_protocol::{EstateId, ReportMonth, WorkingCalendar};

use super::{ApiError, AppState, Caller};
use crate::reports::{self as export, CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE};
use crate::store::{Store, StoreError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    date: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthlyQuery {
    month: Option<String>,
    format: Option<String>,
}

/// R-C4: the unclosed tickets at the end of a local day (today by default).
pub async fn daily_unclosed(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<DailyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(
        caller.role.may_read_daily_unclosed(),
        "read the daily unclosed list (R-C4)",
    )?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let format = Format::parse(query.format.as_deref())?;
    let calendar = state.calendars.of(&caller.estate).clone();
    let today = calendar.local_date(state.clock.now());
    let date = match query.date.as_deref() {
        None => today,
        Some(raw) => parse_date(raw)?,
    };
    if date > today {
        return Err(ApiError::bad_request(
            "invalid_date",
            format!("{date} has not ended yet: ask for {today} or an earlier day"),
        ));
    }
    let store = state.store.clone();
    let estate = caller.estate;
    run_blocking(move || {
        let list = export::daily_unclosed_of(&store, &estate, &calendar, date)?;
        Download::report(
            format,
            &list,
            |extension| export::daily_unclosed_filename(&estate, &list, extension),
            || export::daily_unclosed_csv(&list, &calendar),
            || export::daily_unclosed_xlsx(&list, &calendar),
        )
    })
    .await
}

/// R-A3: the statistics of the tickets received in a local month (this
/// month by default), judged now.
pub async fn monthly_statistics(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<MonthlyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let report = MonthlyReport {
        action: "read the monthly statistics (R-A3)",
        build: export::monthly_statistics_of,
        filename: export::monthly_statistics_filename,
        csv: export::monthly_statistics_csv,
        xlsx: export::monthly_statistics_xlsx,
    };
    report.answer(&state, caller, query).await
}

/// R-A2: the archive of the forms numbered in a local month (this month by
/// default), for the roles that read the monthly statistics.
pub async fn monthly_archive(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<MonthlyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let report = MonthlyReport {
        action: "read the monthly archive (R-A2)",
        build: export::monthly_archive_of,
        filename: export::monthly_archive_filename,
        csv: export::monthly_archive_csv,
        xlsx: export::monthly_archive_xlsx,
    };
    report.answer(&state, caller, query).await
}

/// Builds a monthly report over an estate's month, judged at a moment.
type BuildMonthly<T> =
    fn(&Store, &EstateId, &WorkingCalendar, ReportMonth, DateTime<Utc>) -> Result<T, StoreError>;

/// A monthly report of `crate::reports`: how it is built over an estate's
/// month and laid out as a download.
struct MonthlyReport<T> {
    /// What reading it is called in a refusal.
    action: &'static str,
    build: BuildMonthly<T>,
    filename: fn(&EstateId, &T, &str) -> String,
    csv: fn(&T, &WorkingCalendar) -> Vec<u8>,
    xlsx: fn(&T, &WorkingCalendar) -> Result<Vec<u8>, export::ExportError>,
}

impl<T: serde::Serialize + Send + 'static> MonthlyReport<T> {
    /// For the roles that read the monthly reports: the month asked for
    /// (this one by default, never a later one) of the caller's estate,
    /// judged now, in the format asked for.
    async fn answer(
        self,
        state: &AppState,
        caller: Caller,
        query: Result<Query<MonthlyQuery>, QueryRejection>,
    ) -> Result<Response, ApiError> {
        caller.require(caller.role.may_read_monthly_statistics(), self.action)?;
        let Query(query) =
            query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
        let format = Format::parse(query.format.as_deref())?;
        let calendar = state.calendars.of(&caller.estate).clone();
        let now = state.clock.now();
        let this_month = ReportMonth::containing(&calendar, now);
        let month = match query.month.as_deref() {
            None => this_month,
            Some(raw) => ReportMonth::parse(raw)
                .map_err(|error| ApiError::bad_request("invalid_month", error.to_string()))?,
        };
        if month > this_month {
            return Err(ApiError::bad_request(
                "invalid_month",
                format!("{month} has not begun yet: ask for {this_month} or an earlier month"),
            ));
        }
        let store = state.store.clone();
        let estate = caller.estate;
        run_blocking(move || {
            let report = (self.build)(&store, &estate, &calendar, month, now)?;
            Download::report(
                format,
                &report,
                |extension| (self.filename)(&estate, &report, extension),
                || (self.csv)(&report, &calendar),
                || (self.xlsx)(&report, &calendar),
            )
        })
        .await
    }
}

/// How the report is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Xlsx,
}

impl Format {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        match raw {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some("xlsx") => Ok(Format::Xlsx),
            Some(_) => Err(ApiError::bad_request(
                "invalid_format",
                "format must be json, csv or xlsx",
            )),
        }
    }
}

/// Exactly `YYYY-MM-DD`, a real date.
fn parse_date(raw: &str) -> Result<NaiveDate, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_date",
            format!(
                "invalid date {:?}: expected YYYY-MM-DD, e.g. 2026-11-27",
                raw.chars().take(16).collect::<String>()
            ),
        )
    };
    let shape_fits = raw.len() == 10
        && raw.bytes().enumerate().all(|(index, byte)| match index {
            4 | 7 => byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if !shape_fits {
        return Err(invalid());
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| invalid())
}

/// A finished answer: its content type, a file name when it is a download,
/// and the bytes.
struct Download {
    content_type: &'static str,
    filename: Option<String>,
    body: Vec<u8>,
}

impl Download {
    /// `report` in `format`: JSON, or a CSV or XLSX file named by `filename`
    /// from its extension.
    fn report<T: serde::Serialize>(
        format: Format,
        report: &T,
        filename: impl Fn(&str) -> String,
        csv: impl FnOnce() -> Vec<u8>,
        xlsx: impl FnOnce() -> Result<Vec<u8>, export::ExportError>,
    ) -> Result<Self, ReportError> {
        Ok(match format {
            Format::Json => Self::json(report)?,
            Format::Csv => Self::attachment(CSV_CONTENT_TYPE, filename("csv"), csv()),
            Format::Xlsx => Self::attachment(XLSX_CONTENT_TYPE, filename("xlsx"), xlsx()?),
        })
    }

    fn json(value: &impl serde::Serialize) -> Result<Self, ReportError> {
        Ok(Self {
            content_type: "application/json",
            filename: None,
            body: serde_json::to_vec(value)
                .map_err(|error| ReportError::Json(error.to_string()))?,
        })
    }

    fn attachment(content_type: &'static str, filename: String, body: Vec<u8>) -> Self {
        Self {
            content_type,
            filename: Some(filename),
            body,
        }
    }
}

impl IntoResponse for Download {
    fn into_response(self) -> Response {
        let mut response = ([(CONTENT_TYPE, self.content_type)], self.body).into_response();
        if let Some(filename) = self.filename {
            // The file names are ASCII without quotes (see crate::reports).
            let disposition = format!("attachment; filename=\"{filename}\"");
            match disposition.parse() {
                Ok(value) => {
                    response.headers_mut().insert(CONTENT_DISPOSITION, value);
                }
                Err(_) => {
                    return ApiError::Internal(format!("bad file name {filename:?}"))
                        .into_response();
                }
            }
        }
        response
    }
}

#[derive(Debug, thiserror::Error)]
enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Export(#[from] export::ExportError),
    #[error("serializing the report: {0}")]
    Json(String),
}

/// Build the report off the async workers: it reads the whole estate.
async fn run_blocking(
    build: impl FnOnce() -> Result<Download, ReportError> + Send + 'static,
) -> Result<Response, ApiError> {
    match tokio::task::spawn_blocking(build).await {
        Ok(Ok(download)) => Ok(download.into_response()),
        Ok(Err(ReportError::Store(error))) => Err(error.into()),
        Ok(Err(error)) => Err(ApiError::Internal(error.to_string())),
        Err(join_error) => Err(ApiError::Internal(format!(
            "building a report failed: {join_error}"
        ))),
    }
}
