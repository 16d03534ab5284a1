//! Errors of the pure core. Each carries a stable machine-readable code; the
//! HTTP layer maps codes to statuses, nothing here knows about HTTP.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::workflow::{Event, Status};

/// A value from outside did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid {kind} {value:?}: use 1-64 characters of A-Z a-z 0-9 - _ .")]
    InvalidId { kind: &'static str, value: String },
    #[error("invalid SHA-256: expected 64 lowercase hex digits")]
    InvalidHash,
    #[error("invalid serial number {value:?}: expected e.g. E01-WO-202611-00042")]
    InvalidSerialNumber { value: String },
    #[error(
        "invalid provisional reference {value:?}: expected a device id, # and its sequence number, e.g. hh-li-1#57"
    )]
    InvalidProvisionalRef { value: String },
    #[error("invalid month {value:?}: expected YYYY-MM, e.g. 2026-11")]
    InvalidMonth { value: String },
    #[error("invalid Idempotency-Key: use 1-64 characters of A-Z a-z 0-9 - _ . :")]
    InvalidIdempotencyKey,
}

/// One problem with one field of an incoming record (R-I2 wants all of them at once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: &str, problem: &str) -> Self {
        Self {
            field: field.to_owned(),
            problem: problem.to_owned(),
        }
    }
}

/// An office action the workflow does not allow in the ticket's current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("a ticket that is {from} does not allow {event} (当前状态不允许此操作)")]
    TransitionNotAllowed { from: Status, event: Event },
    #[error("the record is incomplete or unclear: {}", summary(.0))]
    Invalid(Vec<FieldProblem>),
    #[error("the ticket is already assigned to {0}")]
    AlreadyAssigned(String),
    #[error(
        "the booked service on {service_date} is issued as a work order on {issue_date}, and dispatched from then on (R-S2, 预约单未到派工日)"
    )]
    BookingNotIssued {
        service_date: NaiveDate,
        issue_date: NaiveDate,
        issued_at: DateTime<Utc>,
    },
    #[error(transparent)]
    TicketFull(#[from] crate::capacity::TicketFull),
}

fn summary(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

impl WorkflowError {
    /// Stable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            WorkflowError::TransitionNotAllowed { .. } => "transition_not_allowed",
            WorkflowError::Invalid(_) => "invalid_record",
            WorkflowError::AlreadyAssigned(_) => "already_assigned",
            WorkflowError::BookingNotIssued { .. } => "booking_not_issued",
            WorkflowError::TicketFull(_) => "ticket_full",
        }
    }
}
