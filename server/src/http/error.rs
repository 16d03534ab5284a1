//! The one error type of the HTTP layer, and the only place that picks status
//! codes. Internal faults are logged with their chain and answered with a
//! bare `internal` body that leaks nothing.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::de::DeserializeSeed;
use serde_json::json;
use serde_json::value::RawValue;
use sync_protocol::{BatchError, ErrorBody, ReviewError, WorkflowError};

use crate::store::StoreError;
use crate::writer::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
        details: Option<serde_json::Value>,
    },
    /// 429: too many attempts or requests; try again after the given time.
    #[error("{message}")]
    TooMany {
        code: &'static str,
        message: String,
        retry_after_seconds: u64,
    },
    #[error("internal fault: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Client {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(self, value: serde_json::Value) -> Self {
        match self {
            ApiError::Client {
                status,
                code,
                message,
                ..
            } => ApiError::Client {
                status,
                code,
                message,
                details: Some(value),
            },
            internal => internal,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, code, message)
    }

    pub fn too_many(
        code: &'static str,
        message: impl Into<String>,
        retry_after_seconds: u64,
    ) -> Self {
        ApiError::TooMany {
            code,
            message: message.into(),
            retry_after_seconds: retry_after_seconds.max(1),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, code, message)
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit_bytes} bytes"),
        )
        .with_details(json!({ "limit_bytes": limit_bytes }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Client {
                status,
                code,
                message,
                details,
            } => (
                status,
                ErrorBody {
                    code: code.to_owned(),
                    message,
                    details,
                },
            ),
            ApiError::TooMany {
                code,
                message,
                retry_after_seconds,
            } => {
                let body = ErrorBody {
                    code: code.to_owned(),
                    message,
                    details: Some(json!({ "retry_after_seconds": retry_after_seconds })),
                };
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(
                        axum::http::header::RETRY_AFTER,
                        retry_after_seconds.to_string(),
                    )],
                    axum::Json(body),
                )
                    .into_response();
            }
            ApiError::Internal(chain) => {
                tracing::error!(error = %chain, "internal fault");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody {
                        code: "internal".to_owned(),
                        message: "the server could not complete the request; it has been logged"
                            .to_owned(),
                        details: None,
                    },
                )
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl From<WorkflowError> for ApiError {
    fn from(error: WorkflowError) -> Self {
        let message = error.to_string();
        match error {
            WorkflowError::Invalid(problems) => {
                ApiError::client(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record", message)
                    .with_details(json!({ "problems": problems }))
            }
            WorkflowError::TransitionNotAllowed { .. } | WorkflowError::AlreadyAssigned(_) => {
                ApiError::client(StatusCode::CONFLICT, error.code(), message)
            }
            WorkflowError::TicketFull(full) => {
                ApiError::client(StatusCode::CONFLICT, error.code(), message).with_details(json!({
                    "changes": full.changes,
                    "text_bytes": full.text_bytes,
                }))
            }
            WorkflowError::BookingNotIssued {
                service_date,
                issue_date,
                issued_at,
            } => {
                ApiError::client(StatusCode::CONFLICT, error.code(), message).with_details(json!({
                    "service_date": service_date,
                    "issue_date": issue_date,
                    "issued_at": issued_at,
                }))
            }
        }
    }
}

impl From<BatchError> for ApiError {
    fn from(error: BatchError) -> Self {
        let message = error.to_string();
        match error {
            BatchError::Gap { expected } => {
                ApiError::client(StatusCode::CONFLICT, error.code(), message)
                    .with_details(json!({ "expected_seq": expected }))
            }
            BatchError::SequenceReused { seq } => {
                ApiError::client(StatusCode::CONFLICT, error.code(), message)
                    .with_details(json!({ "seq": seq }))
            }
            BatchError::Empty | BatchError::NotConsecutive { .. } | BatchError::ZeroSequence => {
                ApiError::bad_request(error.code(), message)
            }
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Store(error) => error.into(),
            WriteError::Batch(error) => error.into(),
            WriteError::Workflow(error) => error.into(),
            WriteError::Review(error) => error.into(),
            WriteError::TicketNotFound => ApiError::not_found("ticket_not_found", "no such ticket"),
            WriteError::IdempotencyKeyReused => ApiError::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request: send a new key with a new request",
            ),
            WriteError::VersionConflict { expected, actual } => ApiError::client(
                StatusCode::CONFLICT,
                "version_conflict",
                format!(
                    "the ticket changed meanwhile: it is at version {}, not {}",
                    actual.0, expected.0
                ),
            )
            .with_details(json!({ "current_version": actual })),
            WriteError::DeviceOfAnotherUser(device) => ApiError::client(
                StatusCode::CONFLICT,
                "device_of_another_user",
                format!("device {device} is registered to another technician"),
            ),
            WriteError::TooManyPendingBlobs { limit } => ApiError::conflict(
                "too_many_pending_blobs",
                format!(
                    "{limit} uploaded images are waiting for the changes that use them: push those changes first"
                ),
            )
            .with_details(json!({ "limit": limit })),
            WriteError::UnknownTechnician(technician) => ApiError::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_technician",
                format!("{technician} is not a technician of this estate"),
            ),
            WriteError::UserNotFound => ApiError::not_found("user_not_found", "no such user"),
            WriteError::UserExists => ApiError::conflict(
                "user_exists",
                "a user with this name exists already (用户名已存在)",
            ),
            WriteError::LastAdministrator => ApiError::conflict(
                "last_administrator",
                "the last enabled administrator cannot be disabled or given another role (至少保留一名管理员)",
            ),
            WriteError::TechnicianHoldsWork(work) if work.held_tickets > 0 => ApiError::conflict(
                "technician_holds_tickets",
                format!(
                    "the technician still holds {} open tickets: reassign them first, so that what their handhelds recorded still reaches them (请先改派其工单)",
                    work.held_tickets
                ),
            )
            .with_details(json!({ "held": work.held_tickets })),
            WriteError::TechnicianHoldsWork(work) => ApiError::conflict(
                "technician_has_pending_changes",
                format!(
                    "{} of the technician's handhelds last reported changes waiting to upload: let them sync first (请先同步其设备)",
                    work.devices_with_pending_changes
                ),
            )
            .with_details(json!({ "devices": work.devices_with_pending_changes })),
            WriteError::TooManyDevices { limit } => ApiError::conflict(
                "too_many_devices",
                format!(
                    "this technician already has {limit} handhelds with changes waiting to upload; sync one of them first (设备数量已达上限)"
                ),
            )
            .with_details(json!({ "limit": limit })),
            WriteError::Panicked => ApiError::Internal("a write command panicked".to_owned()),
            WriteError::Stopped => ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is not accepting writes (shutting down, or stopped after a storage fault); retry later",
            ),
        }
    }
}

impl From<ReviewError> for ApiError {
    fn from(error: ReviewError) -> Self {
        let status = match error {
            ReviewError::FactNotFound(_) => StatusCode::NOT_FOUND,
            ReviewError::NotFlagged(_) | ReviewError::ReviewedOtherwise(_) => StatusCode::CONFLICT,
            ReviewError::NoteRequired | ReviewError::NoteTooLong => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        };
        ApiError::client(status, error.code(), error.to_string())
    }
}

/// `Json` whose rejections are [`ApiError`]s: malformed JSON, unknown fields,
/// a `null` anywhere and oversized bodies all get the one error shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // Content type, size and syntax are checked as `axum::Json` checks
        // them; the text is kept for the two checks below.
        let axum::Json(text) = axum::Json::<Box<RawValue>>::from_request(request, state).await?;
        // The document never allows null: an optional member is left out.
        // Without this check serde would read a null as an absent `Option`.
        if let Some(member) = first_null(text.get()) {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("{member} is null: leave an optional member out instead of sending null"),
            ));
        }
        let axum::Json(body) = axum::Json::<T>::from_bytes(text.get().as_bytes())?;
        Ok(Self(body))
    }
}

/// Where the first `null` in a JSON text is, written as the body errors
/// write a member (`device.outbox_depth`, `mutations[0].op`), or `None`.
/// The text is walked, not built: whatever the body, this takes memory in
/// proportion to its nesting, not to its size.
fn first_null(text: &str) -> Option<String> {
    // Most bodies have no `null` anywhere; only those are walked.
    if !text.contains("null") {
        return None;
    }
    let mut found = None;
    let mut at = Vec::new();
    let seed = FindNull {
        at: &mut at,
        found: &mut found,
    };
    let _ = seed.deserialize(&mut serde_json::Deserializer::from_str(text));
    found
}

/// One step of the way to a member.
enum Step {
    Member(String),
    Index(usize),
}

/// A visitor that walks a JSON value, keeping only the way to where it is,
/// and stops at the first null.
struct FindNull<'a> {
    at: &'a mut Vec<Step>,
    found: &'a mut Option<String>,
}

impl FindNull<'_> {
    fn path(&self) -> String {
        let mut path = String::new();
        for step in self.at.iter() {
            match step {
                Step::Member(name) if path.is_empty() => path.push_str(name),
                Step::Member(name) => {
                    path.push('.');
                    path.push_str(name);
                }
                Step::Index(index) => path.push_str(&format!("[{index}]")),
            }
        }
        if path.is_empty() {
            "the body".to_owned()
        } else {
            path
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for FindNull<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FindNull<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        *self.found = Some(self.path());
        Err(E::custom("a null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        for index in 0.. {
            self.at.push(Step::Index(index));
            let item = items.next_element_seed(FindNull {
                at: &mut *self.at,
                found: &mut *self.found,
            });
            self.at.pop();
            if item?.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        while let Some(name) = members.next_key::<String>()? {
            self.at.push(Step::Member(name));
            let member = members.next_value_seed(FindNull {
                at: &mut *self.at,
                found: &mut *self.found,
            });
            self.at.pop();
            member?;
        }
        Ok(())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is larger than this endpoint accepts",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ),
            _ => ApiError::bad_request("invalid_body", rejection.body_text()),
        }
    }
}

/// `Path` whose rejections are [`ApiError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_null_is_named_by_its_way_and_a_null_in_a_string_is_none() {
        assert_eq!(first_null(r#"{"a":1,"b":"null"}"#), None);
        assert_eq!(first_null("null").as_deref(), Some("the body"));
        assert_eq!(
            first_null(r#"{"device":{"id":"x","outbox_depth":null}}"#).as_deref(),
            Some("device.outbox_depth")
        );
        assert_eq!(
            first_null(r#"{"mutations":[{"op":{}},{"op":null}],"later":null}"#).as_deref(),
            Some("mutations[1].op")
        );
        assert_eq!(
            first_null(r#"{"n\u0075ll":"null","x":[1,[2,null]]}"#).as_deref(),
            Some("x[1][1]")
        );
    }
}
