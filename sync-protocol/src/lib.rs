//! The per-ticket versioned sync protocol of the service-request workflow
//! (SPEC.md): the ticket model, device and office intents, merge rules, the
//! workflow state machine and the wire types.
//!
//! This crate is pure: no I/O, no clocks (time is always a parameter), no
//! storage, no HTTP. The server and handheld clients share it.

pub mod access;
pub mod admin;
pub mod calendar;
pub mod capacity;
pub mod cards;
pub mod dispatch;
pub mod due;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod merge;
pub mod mutation;
pub mod office;
pub mod push;
pub mod reports;
pub mod roles;
pub mod serial;
pub mod supervision;
pub mod ticket;
pub mod time_rules;
pub mod wire;
pub mod workflow;

pub use access::{TicketAccess, ticket_access};
pub use admin::{NewUser, PasswordReset, People, Person, UserChange, UserPage, UserSummary};
pub use calendar::{CalendarConfig, CalendarError, OpeningHours, WorkingCalendar, WorkingHours};
pub use cards::{
    CardDecodeError, CardFilter, CardOrder, InvalidSearch, KnownUnit, KnownUnits, StatusFilter,
    StoredCard, TicketCard, TicketCardPage,
};
pub use dispatch::{
    OpenJob, Priority, TechnicianLoad, assignment_event, building_of, dispatch_queue, holds_open,
    suggest_technicians, waits_for_dispatch,
};
pub use due::{
    DueItem, DueList, DueListBuilder, DueState, TicketDeadline, acts_on, due_items,
    has_pending_duties, r_p5_open_escalation, record_deadline_missed, ticket_deadlines,
};
pub use error::{FieldProblem, ParseError, WorkflowError};
pub use idempotency::{
    AnsweredRequest, IDEMPOTENCY_HEADER, IDEMPOTENCY_WINDOW_HOURS, IdempotencyKey, NamedRequest,
    REPLAYED_HEADER, Replay,
};
pub use ids::{
    Cursor, DeviceId, DeviceSeq, EstateId, MutationId, Sha256Hex, TicketId, UserId, Version,
};
pub use merge::{Merged, Recorder, merge, merge_into};
pub use mutation::{
    Applied, DeviceMutation, DeviceOp, MutationOutcome, Outcome, RejectCode, Rejection, Verdict,
};
pub use office::{
    Intake, IntakeDraft, OfficeOp, ReporterDraft, apply_office_op, convert_work_order,
    create_ticket, link_follow_up_report, offered_actions, validate_intake,
};
pub use push::{BatchError, Ledger, PushEffects, StoredOutcome, apply_batch, check_batch};
pub use reports::{
    DailyUnclosed, DailyUnclosedBuilder, MonthlyStatistics, MonthlyStatisticsBuilder, ReportMonth,
    Responsible, RuleTally, UnclosedItem, daily_unclosed, monthly_statistics,
};
pub use roles::{ActionGrant, OfferedActions, OfficeAction, Permissions, Role, TicketScope};
pub use serial::{ProvisionalRef, SerialKind, SerialMonth, SerialNumber, SerialSeries};
pub use supervision::{
    AtRiskTicket, ContactKind, CrewRow, LiveEvent, LiveEventBody, ReviewDecision, ReviewError,
    ReviewItem, ReviewReason, ReviewRequest, Reviewed, SupervisionSnapshot, crew_row, is_online,
    review_fact, review_items, sort_crew,
};
pub use ticket::*;
pub use time_rules::{
    Basis, Cadence, ClockJudgement, ContactOutcome, CorrectedTime, Deadline, DeadlineState, Duty,
    Escalation, EscalationReason, OwnerContact, RuleId, assess, corrected_event_time,
    needs_follow_up,
};
pub use wire::*;
pub use workflow::{Event, Status, transition};
