//! Office-side changes: intake (R-I2) and the dispatch-side actions. Each
//! returns the changed ticket or says why not; nothing is half-applied.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{FieldProblem, WorkflowError};
use crate::ids::{EstateId, TicketId, UserId, Version};
use crate::ticket::{
    Actor, Appointment, Area, Category, Closure, FollowUp, HistoryEvent, OfficeNote, Rating,
    Reporter, SignOff, Source, Ticket, TicketKind, TrackingKind, TrackingRecord,
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
    /// R-F3: the ticket whose follow-up raised this report; required exactly
    /// when the source is a follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_of: Option<TicketId>,
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
    /// R-C1 (work order, by its dispatcher, owner's signature required),
    /// R-C3 (coordination ticket, by the customer-service manager after the
    /// department manager's sign-off), R-K1 (verbal dispatch, by whoever took the report).
    Close {},
    /// R-C3: the department manager signs a completed coordination ticket off.
    SignOff {
        #[serde(default)]
        note: String,
    },
    /// R-C2: an unfinished work order becomes a coordination ticket.
    Convert {
        reason: String,
    },
    /// R-F2: the result of a follow-up call on a closed ticket.
    RecordFollowUp {
        reached: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rating: Option<Rating>,
        #[serde(default)]
        note: String,
    },
    /// R-P3, R-P4, R-P5, R-D2: a tracking record on an open coordination ticket.
    Track {
        kind: TrackingKind,
        #[serde(default)]
        note: String,
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
    match (intake.source, &intake.follow_up_of) {
        (Source::FollowUp, None) => problems.push(FieldProblem::new(
            "follow_up_of",
            "a report from a follow-up names the ticket it came from (R-F3, 需关联原工单)",
        )),
        (Source::FollowUp, Some(_)) | (_, None) => {}
        (_, Some(_)) => problems.push(FieldProblem::new(
            "follow_up_of",
            "only a report from a follow-up is linked to an earlier ticket (R-F3)",
        )),
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
        sign_offs: Vec::new(),
        closed: None,
        converted_from: None,
        converted_to: None,
        follow_up_of: intake.follow_up_of,
        follow_up_reports: Vec::new(),
        follow_ups: Vec::new(),
        tracking: Vec::new(),
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
        OfficeOp::Close {} => {
            let event = match ticket.kind {
                TicketKind::VerbalDispatch => Event::CloseVerbal,
                TicketKind::WorkOrder | TicketKind::CoordinationTicket => Event::Close,
            };
            let status = transition(ticket.status, event)?;
            if ticket.kind == TicketKind::WorkOrder
                && ticket.signature_of_current_result().is_none()
            {
                return Err(invalid(
                    "signatures",
                    "the owner has not signed the current result (R-P7, 缺业主签字)",
                ));
            }
            if ticket.kind == TicketKind::CoordinationTicket && ticket.sign_offs.is_empty() {
                return Err(invalid(
                    "sign_offs",
                    "the department manager signs off first (R-C3, 需部门经理签字)",
                ));
            }
            next.closed = Some(Closure {
                by: by.clone(),
                at: now,
            });
            next.record(now, actor, HistoryEvent::Closed, status);
        }
        OfficeOp::SignOff { note } => {
            require_kind(ticket, TicketKind::CoordinationTicket)?;
            let status = transition(ticket.status, Event::SignOff)?;
            if !ticket.sign_offs.is_empty() {
                return Err(invalid("sign_offs", "already signed off (已签字)"));
            }
            check_optional_text("note", note, 500)?;
            next.sign_offs.push(SignOff {
                by: by.clone(),
                at: now,
                note: note.trim().to_owned(),
            });
            next.record(now, actor, HistoryEvent::SignedOff, status);
        }
        OfficeOp::Convert { .. } => {
            // Conversion creates a second ticket: see `convert_work_order`.
            return Err(invalid("op", "use convert_work_order"));
        }
        OfficeOp::RecordFollowUp {
            reached,
            rating,
            note,
        } => {
            let status = transition(ticket.status, Event::FollowUp)?;
            check_optional_text("note", note, MAX_TEXT_CHARS)?;
            if !reached && rating.is_some() {
                return Err(invalid(
                    "rating",
                    "an owner who was not reached gave no rating",
                ));
            }
            next.follow_ups.push(FollowUp {
                by: by.clone(),
                at: now,
                reached: *reached,
                rating: *rating,
                note: note.trim().to_owned(),
            });
            let event = HistoryEvent::FollowedUp { reached: *reached };
            next.record(now, actor, event, status);
        }
        OfficeOp::Track { kind, note } => {
            require_kind(ticket, TicketKind::CoordinationTicket)?;
            let status = transition(ticket.status, Event::Track)?;
            check_optional_text("note", note, MAX_TEXT_CHARS)?;
            next.tracking.push(TrackingRecord {
                by: by.clone(),
                at: now,
                kind: kind.clone(),
                note: note.trim().to_owned(),
            });
            let event = HistoryEvent::Tracked { kind: kind.clone() };
            next.record(now, actor, event, status);
        }
    }
    Ok(next)
}

/// R-C2: an unfinished work order becomes a coordination ticket with a new
/// id. The coordination ticket carries the work order's whole history and
/// facts; each names the other. Returns (the work order, the new ticket).
pub fn convert_work_order(
    work_order: &Ticket,
    new_id: TicketId,
    reason: &str,
    by: &UserId,
    now: DateTime<Utc>,
) -> Result<(Ticket, Ticket), WorkflowError> {
    require_kind(work_order, TicketKind::WorkOrder)?;
    require_text("reason", reason, 500)?;
    let status = transition(work_order.status, Event::Convert)?;

    let mut coordination = work_order.clone();
    coordination.id = new_id.clone();
    coordination.kind = TicketKind::CoordinationTicket;
    coordination.serial_number = None;
    coordination.converted_from = Some(work_order.id.clone());
    // The coordination ticket starts over with the department (R-D1, R-D2).
    coordination.status = Status::Received;
    coordination.assigned_technician = None;
    coordination.dispatched_at = None;
    coordination.appointment = None;
    let actor = Actor::User { user: by.clone() };
    coordination.record(
        now,
        actor.clone(),
        HistoryEvent::ConvertedFrom {
            from: work_order.id.clone(),
        },
        Status::Received,
    );

    let mut converted = work_order.clone();
    converted.converted_to = Some(new_id.clone());
    let event = HistoryEvent::ConvertedTo {
        to: new_id,
        reason: reason.trim().to_owned(),
    };
    converted.record(now, actor, event, status);
    Ok((converted, coordination))
}

/// R-F3: link a report raised during a follow-up to the ticket it came from.
pub fn link_follow_up_report(
    original: &Ticket,
    report: &Ticket,
    by: &UserId,
    now: DateTime<Utc>,
) -> Ticket {
    let mut next = original.clone();
    next.follow_up_reports.push(report.id.clone());
    let event = HistoryEvent::FollowUpReportRaised {
        report: report.id.clone(),
    };
    next.record(
        now,
        Actor::User { user: by.clone() },
        event,
        original.status,
    );
    next
}

fn invalid(field: &str, problem: &str) -> WorkflowError {
    WorkflowError::Invalid(vec![FieldProblem::new(field, problem)])
}

fn require_kind(ticket: &Ticket, kind: TicketKind) -> Result<(), WorkflowError> {
    if ticket.kind == kind {
        Ok(())
    } else {
        Err(invalid(
            "kind",
            "this action is for another kind of ticket (工单类型不符)",
        ))
    }
}

fn check_optional_text(field: &str, value: &str, max_chars: usize) -> Result<(), WorkflowError> {
    if value.chars().count() > max_chars {
        return Err(invalid(field, "is too long (超出长度)"));
    }
    Ok(())
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
            follow_up_of: None,
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

    /// A dispatched work order that li completed and the owner signed.
    fn signed_work_order() -> Ticket {
        use crate::ids::{DeviceId, DeviceSeq, Sha256Hex};
        use crate::merge::{Recorder, merge};
        use crate::mutation::{DeviceMutation, DeviceOp};
        use crate::ticket::{Charge, CompletionRecord};
        let recorder = Recorder {
            user: user("li"),
            device: DeviceId::parse("hh-li").unwrap(),
        };
        let result = CompletionRecord {
            work_done: "换了阀门 replaced the valve".into(),
            materials: vec![],
            charge: Charge::Free {},
        };
        let ops = [
            DeviceOp::RecordArrival {},
            DeviceOp::Complete {
                result: result.clone(),
            },
            DeviceOp::AttachSignature {
                blob: Sha256Hex::of(b"signature image"),
                signed_record: result.record_hash(),
                signer_name: "王女士".into(),
                rating: Some(Rating::Satisfied),
            },
        ];
        let mut ticket = dispatched_ticket("li");
        for (n, op) in ops.into_iter().enumerate() {
            let mutation = DeviceMutation {
                seq: DeviceSeq(n as u64 + 1),
                ticket_id: ticket.id.clone(),
                base_version: ticket.version,
                recorded_at: at(9, 20),
                op,
            };
            ticket = merge(&ticket, &recorder, &mutation, at(9, 30))
                .ticket
                .unwrap();
        }
        ticket
    }

    fn coordination_ticket() -> Ticket {
        let mut record = intake();
        record.kind = TicketKind::CoordinationTicket;
        create_ticket(
            TicketId::parse("t-9").unwrap(),
            record,
            user("agent"),
            at(9, 0),
        )
        .unwrap()
    }

    fn problem_fields(error: WorkflowError) -> Vec<String> {
        match error {
            WorkflowError::Invalid(problems) => problems.into_iter().map(|p| p.field).collect(),
            other => panic!("expected a refusal with problems, got {other:?}"),
        }
    }

    #[test]
    fn r_c1_r_p7_a_signed_completed_work_order_is_closed_by_its_dispatcher() {
        let ticket = signed_work_order();
        assert_eq!(ticket.status, Status::Completed);
        let closed =
            apply_office_op(&ticket, &OfficeOp::Close {}, &user("dispatcher"), at(10, 0)).unwrap();
        assert_eq!(closed.status, Status::Closed);
        assert_eq!(closed.closed.as_ref().unwrap().by, user("dispatcher"));
        assert_eq!(
            closed.holder(),
            None,
            "the handheld lets go of a closed ticket"
        );
    }

    #[test]
    fn r_p7_a_work_order_without_the_owners_signature_cannot_be_closed() {
        let mut ticket = signed_work_order();
        ticket.signatures.clear();
        let refused = apply_office_op(&ticket, &OfficeOp::Close {}, &user("dispatcher"), at(10, 0));
        assert_eq!(problem_fields(refused.unwrap_err()), ["signatures"]);
    }

    #[test]
    fn r_c1_an_unfinished_work_order_cannot_be_closed() {
        let ticket = dispatched_ticket("li");
        let refused = apply_office_op(&ticket, &OfficeOp::Close {}, &user("dispatcher"), at(10, 0));
        assert!(matches!(
            refused,
            Err(WorkflowError::TransitionNotAllowed { .. })
        ));
    }

    #[test]
    fn r_c3_a_coordination_ticket_closes_only_after_the_department_sign_off() {
        let mut ticket = coordination_ticket();
        ticket.status = Status::Completed;
        let early = apply_office_op(&ticket, &OfficeOp::Close {}, &user("kf-manager"), at(10, 0));
        assert_eq!(problem_fields(early.unwrap_err()), ["sign_offs"]);
        let sign_off = OfficeOp::SignOff {
            note: "done and checked".into(),
        };
        let signed = apply_office_op(&ticket, &sign_off, &user("dept-manager"), at(10, 0)).unwrap();
        let twice = apply_office_op(&signed, &sign_off, &user("dept-manager"), at(10, 5));
        assert_eq!(problem_fields(twice.unwrap_err()), ["sign_offs"]);
        let closed =
            apply_office_op(&signed, &OfficeOp::Close {}, &user("kf-manager"), at(11, 0)).unwrap();
        assert_eq!(closed.status, Status::Closed);
    }

    #[test]
    fn r_k1_a_verbal_dispatch_closes_without_a_technician() {
        let mut record = intake();
        record.kind = TicketKind::VerbalDispatch;
        record.category = Category::Security;
        let ticket = create_ticket(
            TicketId::parse("t-v").unwrap(),
            record,
            user("agent"),
            at(9, 0),
        )
        .unwrap();
        let closed =
            apply_office_op(&ticket, &OfficeOp::Close {}, &user("agent"), at(9, 5)).unwrap();
        assert_eq!(closed.status, Status::Closed);
    }

    #[test]
    fn r_c2_conversion_keeps_the_history_and_links_both_ways() {
        let ticket = dispatched_ticket("li");
        let new_id = TicketId::parse("t-2").unwrap();
        let (work_order, coordination) = convert_work_order(
            &ticket,
            new_id.clone(),
            "needs a part from the supplier",
            &user("dispatcher"),
            at(17, 0),
        )
        .unwrap();
        assert_eq!(work_order.status, Status::Converted);
        assert_eq!(work_order.converted_to, Some(new_id.clone()));
        assert_eq!(coordination.id, new_id);
        assert_eq!(coordination.kind, TicketKind::CoordinationTicket);
        assert_eq!(coordination.converted_from, Some(ticket.id.clone()));
        assert_eq!(coordination.status, Status::Received);
        assert_eq!(
            &coordination.history[..ticket.history.len()],
            &ticket.history[..]
        );
        assert!(
            convert_work_order(
                &work_order,
                TicketId::parse("t-3").unwrap(),
                "again",
                &user("dispatcher"),
                at(17, 5)
            )
            .is_err()
        );
        assert!(
            convert_work_order(
                &coordination,
                TicketId::parse("t-3").unwrap(),
                "again",
                &user("dispatcher"),
                at(17, 5)
            )
            .is_err()
        );
    }

    #[test]
    fn r_f2_a_follow_up_is_recorded_on_a_closed_ticket_only() {
        let follow_up = OfficeOp::RecordFollowUp {
            reached: true,
            rating: Some(Rating::BasicallySatisfied),
            note: "业主说水管不再漏 no more leak".into(),
        };
        let open = dispatched_ticket("li");
        assert!(apply_office_op(&open, &follow_up, &user("agent"), at(10, 0)).is_err());
        let closed = apply_office_op(
            &signed_work_order(),
            &OfficeOp::Close {},
            &user("dispatcher"),
            at(10, 0),
        )
        .unwrap();
        let followed = apply_office_op(&closed, &follow_up, &user("agent"), at(15, 0)).unwrap();
        assert_eq!(followed.follow_ups.len(), 1);
        assert_eq!(followed.status, Status::Closed);
        let unreached_with_rating = OfficeOp::RecordFollowUp {
            reached: false,
            rating: Some(Rating::Satisfied),
            note: String::new(),
        };
        assert!(
            apply_office_op(&closed, &unreached_with_rating, &user("agent"), at(15, 0)).is_err()
        );
    }

    #[test]
    fn r_f3_a_follow_up_report_must_name_its_ticket_and_is_linked_back() {
        let mut record = intake();
        record.source = Source::FollowUp;
        assert_eq!(
            problem_fields(validate_intake(&record, at(9, 0)).unwrap_err()),
            ["follow_up_of"]
        );
        let original = dispatched_ticket("li");
        record.follow_up_of = Some(original.id.clone());
        let report = create_ticket(
            TicketId::parse("t-5").unwrap(),
            record,
            user("agent"),
            at(9, 0),
        )
        .unwrap();
        let linked = link_follow_up_report(&original, &report, &user("agent"), at(9, 0));
        assert_eq!(linked.follow_up_reports, vec![report.id.clone()]);
        assert_eq!(report.follow_up_of, Some(original.id));
    }

    #[test]
    fn r_p4_tracking_records_belong_to_open_coordination_tickets() {
        let track = OfficeOp::Track {
            kind: TrackingKind::OwnerContact {
                reached: true,
                proposal_rejected: true,
            },
            note: "owner wants a full replacement".into(),
        };
        let tracked = apply_office_op(
            &coordination_ticket(),
            &track,
            &user("specialist"),
            at(10, 0),
        )
        .unwrap();
        assert_eq!(tracked.tracking.len(), 1);
        let refused = apply_office_op(
            &dispatched_ticket("li"),
            &track,
            &user("specialist"),
            at(10, 0),
        );
        assert_eq!(problem_fields(refused.unwrap_err()), ["kind"]);
    }
}
