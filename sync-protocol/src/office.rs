//! Office-side changes: intake (R-I2) and the dispatch-side actions. Each
//! returns the changed ticket or says why not; nothing is half-applied.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{FieldProblem, WorkflowError};
use crate::ids::{EstateId, TicketId, UserId, Version};
use crate::ticket::{
    Actor, Appointment, Area, Category, HistoryEvent, OfficeNote, Reporter, Source, Ticket,
    TicketKind,
};
use crate::workflow::{Event, Status, transition};

/// Longest free text accepted (descriptions, notes, reasons).
pub const MAX_TEXT_CHARS: usize = 4000;
/// How far in the future a reception time may lie (clock skew of the agent's PC).
pub const MAX_RECEIVED_AT_SKEW_MINUTES: i64 = 5;

/// A report as customer service records it (R-I2): complete and in one format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intake {
    pub estate: EstateId,
    pub kind: TicketKind,
    pub category: Category,
    pub area: Area,
    pub source: Source,
    pub reporter: Reporter,
    pub location: String,
    pub description: String,
    /// When the report was received; required, never guessed.
    pub received_at: DateTime<Utc>,
}

/// An office action on an existing ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OfficeOp {
    /// R-D1: assign the technician.
    Dispatch {
        technician: UserId,
    },
    /// Hand the ticket to another technician.
    Reassign {
        technician: UserId,
        reason: String,
    },
    /// R-P1/R-P2: the time agreed with the owner; becomes the arrival deadline.
    SetAppointment {
        at: DateTime<Utc>,
        #[serde(default)]
        note: String,
    },
    Cancel {
        reason: String,
    },
    AddNote {
        text: String,
    },
}

/// R-I2: every problem with the record, or nothing.
pub fn validate_intake(intake: &Intake, now: DateTime<Utc>) -> Result<(), WorkflowError> {
    let mut problems = Vec::new();
    check_text(&mut problems, "reporter.name", &intake.reporter.name, 100);
    match &intake.reporter.phone {
        Some(phone) if !is_phone_number(phone) => problems.push(FieldProblem::new(
            "reporter.phone",
            "use 5-20 digits, spaces, + or - (电话格式不正确)",
        )),
        None if intake.source == Source::Phone => problems.push(FieldProblem::new(
            "reporter.phone",
            "a phone report needs the caller's number (电话报事需留电话)",
        )),
        _ => {}
    }
    check_text(&mut problems, "location", &intake.location, 200);
    check_text(
        &mut problems,
        "description",
        &intake.description,
        MAX_TEXT_CHARS,
    );
    if intake.description.trim().chars().count() == 1 {
        problems.push(FieldProblem::new(
            "description",
            "too short to say what is wrong (描述不清)",
        ));
    }
    if intake.received_at > now + Duration::minutes(MAX_RECEIVED_AT_SKEW_MINUTES) {
        problems.push(FieldProblem::new(
            "received_at",
            "lies in the future (受理时间晚于当前时间)",
        ));
    }
    if let Some(problem) = kind_category_problem(intake.kind, intake.category) {
        problems.push(FieldProblem::new("kind", problem));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WorkflowError::Invalid(problems))
    }
}

/// R-K1, R-S2, R-D1: which categories each kind can carry.
fn kind_category_problem(kind: TicketKind, category: Category) -> Option<&'static str> {
    match (kind, category) {
        (
            TicketKind::VerbalDispatch,
            Category::Security | Category::Environment | Category::HomeService,
        ) => None,
        (TicketKind::VerbalDispatch, _) => Some(
            "a verbal dispatch is for gate, cleaning or same-day home-service jobs (口头派工仅限秩序/环境/家政)",
        ),
        (TicketKind::WorkOrder, Category::OwnerCommunication) => Some(
            "owner communication is a coordination ticket, not a work order (沟通类应为协调单)",
        ),
        _ => None,
    }
}

/// A new ticket from a valid intake record.
pub fn create_ticket(
    id: TicketId,
    intake: Intake,
    received_by: UserId,
    now: DateTime<Utc>,
) -> Result<Ticket, WorkflowError> {
    validate_intake(&intake, now)?;
    let mut ticket = Ticket {
        id,
        estate: intake.estate,
        serial_number: None,
        kind: intake.kind,
        category: intake.category,
        area: intake.area,
        source: intake.source,
        reporter: Reporter {
            name: intake.reporter.name.trim().to_owned(),
            phone: intake.reporter.phone,
        },
        location: intake.location.trim().to_owned(),
        description: intake.description.trim().to_owned(),
        received_at: intake.received_at,
        received_by: received_by.clone(),
        status: Status::Received,
        assigned_technician: None,
        dispatched_at: None,
        technicians_ever: Default::default(),
        appointment: None,
        arrivals: Default::default(),
        notes: Default::default(),
        results: Default::default(),
        signatures: Default::default(),
        office_notes: Vec::new(),
        history: Vec::new(),
        version: Version(0),
        updated_at: now,
    };
    ticket.record(
        now,
        Actor::User { user: received_by },
        HistoryEvent::Received,
        Status::Received,
    );
    Ok(ticket)
}

/// Apply an office action; the ticket is returned changed, or not at all.
pub fn apply_office_op(
    ticket: &Ticket,
    op: &OfficeOp,
    by: &UserId,
    now: DateTime<Utc>,
) -> Result<Ticket, WorkflowError> {
    let mut next = ticket.clone();
    let actor = Actor::User { user: by.clone() };
    match op {
        OfficeOp::Dispatch { technician } => {
            if let Some(current) = &ticket.assigned_technician {
                return Err(WorkflowError::AlreadyAssigned(current.to_string()));
            }
            let status = transition(ticket.status, Event::Dispatch)?;
            next.assigned_technician = Some(technician.clone());
            next.technicians_ever.insert(technician.clone());
            next.dispatched_at = Some(now);
            let event = HistoryEvent::Dispatched {
                technician: technician.clone(),
            };
            next.record(now, actor, event, status);
        }
        OfficeOp::Reassign { technician, reason } => {
            require_text("reason", reason, 500)?;
            let status = transition(ticket.status, Event::Reassign)?;
            let from = ticket
                .assigned_technician
                .clone()
                .expect("a dispatched or in-progress ticket has a technician");
            if &from == technician {
                return Err(WorkflowError::AlreadyAssigned(from.to_string()));
            }
            next.assigned_technician = Some(technician.clone());
            next.technicians_ever.insert(technician.clone());
            // R-P1: the arrival clock restarts for the new technician.
            next.dispatched_at = Some(now);
            let event = HistoryEvent::Reassigned {
                from,
                to: technician.clone(),
                reason: reason.trim().to_owned(),
            };
            next.record(now, actor, event, status);
        }
        OfficeOp::SetAppointment { at, note } => {
            let status = transition(ticket.status, Event::Appoint)?;
            if *at < now - Duration::hours(1) {
                return Err(WorkflowError::Invalid(vec![FieldProblem::new(
                    "at",
                    "an appointment cannot lie in the past (预约时间已过)",
                )]));
            }
            if note.chars().count() > 500 {
                return Err(WorkflowError::Invalid(vec![FieldProblem::new(
                    "note",
                    "at most 500 characters",
                )]));
            }
            next.appointment = Some(Appointment {
                at: *at,
                agreed_by: by.clone(),
                note: note.trim().to_owned(),
            });
            next.record(now, actor, HistoryEvent::AppointmentSet { at: *at }, status);
        }
        OfficeOp::Cancel { reason } => {
            require_text("reason", reason, 500)?;
            let status = transition(ticket.status, Event::Cancel)?;
            let event = HistoryEvent::Cancelled {
                reason: reason.trim().to_owned(),
            };
            next.record(now, actor, event, status);
        }
        OfficeOp::AddNote { text } => {
            require_text("text", text, MAX_TEXT_CHARS)?;
            next.office_notes.push(OfficeNote {
                by: by.clone(),
                at: now,
                text: text.trim().to_owned(),
            });
            next.record(now, actor, HistoryEvent::OfficeNoteAdded, ticket.status);
        }
    }
    Ok(next)
}

fn check_text(problems: &mut Vec<FieldProblem>, field: &str, value: &str, max_chars: usize) {
    if value.trim().is_empty() {
        problems.push(FieldProblem::new(field, "is required (必填)"));
    } else if value.chars().count() > max_chars {
        problems.push(FieldProblem::new(field, "is too long (超出长度)"));
    }
}

fn require_text(field: &str, value: &str, max_chars: usize) -> Result<(), WorkflowError> {
    let mut problems = Vec::new();
    check_text(&mut problems, field, value, max_chars);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WorkflowError::Invalid(problems))
    }
}

fn is_phone_number(phone: &str) -> bool {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && phone
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-'))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, hour, minute, 0).unwrap()
    }

    pub fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    pub fn intake() -> Intake {
        Intake {
            estate: EstateId::parse("E01").unwrap(),
            kind: TicketKind::WorkOrder,
            category: Category::Repair,
            area: Area::PrivateUnit,
            source: Source::Phone,
            reporter: Reporter {
                name: "王女士".into(),
                phone: Some("138 0000 1234".into()),
            },
            location: "3-1-502".into(),
            description: "厨房水管漏水 kitchen pipe leaking".into(),
            received_at: at(9, 0),
        }
    }

    pub fn dispatched_ticket(technician: &str) -> Ticket {
        let ticket = create_ticket(
            TicketId::parse("t-1").unwrap(),
            intake(),
            user("agent"),
            at(9, 0),
        )
        .unwrap();
        let op = OfficeOp::Dispatch {
            technician: user(technician),
        };
        apply_office_op(&ticket, &op, &user("dispatcher"), at(9, 1)).unwrap()
    }

    #[test]
    fn r_i2_a_complete_report_becomes_a_received_ticket() {
        let ticket = create_ticket(
            TicketId::parse("t-1").unwrap(),
            intake(),
            user("agent"),
            at(9, 0),
        )
        .unwrap();
        assert_eq!(ticket.status, Status::Received);
        assert_eq!(ticket.version, Version(1));
        assert_eq!(ticket.received_by, user("agent"));
    }

    #[test]
    fn r_i2_an_incomplete_report_is_refused_with_every_reason() {
        let mut record = intake();
        record.reporter.name = " ".into();
        record.reporter.phone = None;
        record.location = String::new();
        record.description = "x".into();
        record.received_at = at(12, 0);
        let Err(WorkflowError::Invalid(problems)) = validate_intake(&record, at(9, 0)) else {
            panic!("expected a refusal");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "reporter.name",
                "reporter.phone",
                "location",
                "description",
                "received_at"
            ]
        );
    }

    #[test]
    fn r_k1_a_verbal_dispatch_is_only_for_quick_jobs() {
        let mut record = intake();
        record.kind = TicketKind::VerbalDispatch;
        assert!(validate_intake(&record, at(9, 0)).is_err());
        record.category = Category::Security;
        assert!(validate_intake(&record, at(9, 0)).is_ok());
    }

    #[test]
    fn reassigning_records_who_held_it_and_restarts_the_arrival_clock() {
        let ticket = dispatched_ticket("li");
        let op = OfficeOp::Reassign {
            technician: user("zhang"),
            reason: "li is off sick".into(),
        };
        let next = apply_office_op(&ticket, &op, &user("dispatcher"), at(10, 0)).unwrap();
        assert_eq!(next.assigned_technician, Some(user("zhang")));
        assert!(next.technicians_ever.contains(&user("li")));
        assert_eq!(next.dispatched_at, Some(at(10, 0)));
        assert_eq!(next.version, ticket.version.next());
    }

    #[test]
    fn a_refused_office_action_changes_nothing() {
        let ticket = dispatched_ticket("li");
        let op = OfficeOp::Dispatch {
            technician: user("zhang"),
        };
        assert_eq!(
            apply_office_op(&ticket, &op, &user("dispatcher"), at(10, 0)),
            Err(WorkflowError::AlreadyAssigned("li".into()))
        );
        let cancel = OfficeOp::Cancel { reason: "".into() };
        assert!(apply_office_op(&ticket, &cancel, &user("agent"), at(10, 0)).is_err());
    }

    #[test]
    fn an_appointment_in_the_past_is_refused() {
        let ticket = dispatched_ticket("li");
        let op = OfficeOp::SetAppointment {
            at: at(7, 0),
            note: String::new(),
        };
        assert!(apply_office_op(&ticket, &op, &user("agent"), at(10, 0)).is_err());
    }
}
