//! Office-side changes: intake (R-I2) and the dispatch-side actions. Each
//! returns the changed ticket or says why not; nothing is half-applied.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::calendar::WorkingCalendar;
use crate::capacity::{Addition, check_room};
use crate::due::{escalation_recorded, r_p5_open_escalation};
use crate::error::{FieldProblem, WorkflowError};
use crate::ids::{EstateId, TicketId, UserId, Version};
use crate::roles::{OfficeAction, Role};
use crate::ticket::{
    Actor, AgreedTime, Appointment, Area, Booking, BookingRequest, Category, Charge, Closure,
    FollowUp, HistoryEvent, MAX_FEE_FEN, OfficeNote, Rating, Reporter, SignOff, Source, Ticket,
    TicketKind, TrackingKind, TrackingRecord, issue_date_of,
};
use crate::workflow::{Event, Status, transition};

/// Longest free text accepted (descriptions, notes, reasons).
pub const MAX_TEXT_CHARS: usize = 4000;
/// What a missing or blank field of a record is told.
const REQUIRED: &str = "is required (必填)";
/// How far in the future a reception time may lie (clock skew of the agent's PC).
pub const MAX_RECEIVED_AT_SKEW_MINUTES: i64 = 5;
/// R-S2: how many days ahead of today a service may be booked.
pub const MAX_BOOKING_DAYS_AHEAD: i64 = 90;

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
    /// R-S2: the booking of a home-service or private-garden work order;
    /// required for those, refused for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<BookingRequest>,
}

/// A report as it arrives (R-I2): an [`Intake`] whose fields may be
/// missing, so that a missing field is named with every other problem of
/// the record ([`IntakeDraft::complete`]) instead of refusing the body as
/// malformed. A field that is there must have its type (`null` included),
/// and an unknown field is refused, as everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeDraft {
    #[serde(default, deserialize_with = "present")]
    pub estate: Option<EstateId>,
    #[serde(default, deserialize_with = "present")]
    pub kind: Option<TicketKind>,
    #[serde(default, deserialize_with = "present")]
    pub category: Option<Category>,
    #[serde(default, deserialize_with = "present")]
    pub area: Option<Area>,
    #[serde(default, deserialize_with = "present")]
    pub source: Option<Source>,
    #[serde(default, deserialize_with = "present")]
    pub reporter: Option<ReporterDraft>,
    #[serde(default, deserialize_with = "present")]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub follow_up_of: Option<TicketId>,
    #[serde(default)]
    pub booking: Option<BookingRequest>,
}

/// The reporter of an [`IntakeDraft`], whose name may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterDraft {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// A field that is there holds a value: `null` is a wrong type, not a
/// missing field.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

impl IntakeDraft {
    /// The record, once nothing is missing; it is validated when the ticket
    /// is created ([`create_ticket`]). With a field missing, every problem
    /// of the draft (R-I2: all at once): each missing field, and what
    /// [`validate_intake`] finds in the fields that are there.
    pub fn complete(
        self,
        calendar: &WorkingCalendar,
        now: DateTime<Utc>,
    ) -> Result<Intake, WorkflowError> {
        match self {
            IntakeDraft {
                estate: Some(estate),
                kind: Some(kind),
                category: Some(category),
                area: Some(area),
                source: Some(source),
                reporter:
                    Some(ReporterDraft {
                        name: Some(name),
                        phone,
                    }),
                location: Some(location),
                description: Some(description),
                received_at: Some(received_at),
                follow_up_of,
                booking,
            } => Ok(Intake {
                estate,
                kind,
                category,
                area,
                source,
                reporter: Reporter { name, phone },
                location,
                description,
                received_at,
                follow_up_of,
                booking,
            }),
            draft => Err(WorkflowError::Invalid(intake_problems(
                &draft, calendar, now,
            ))),
        }
    }
}

impl From<Intake> for IntakeDraft {
    fn from(intake: Intake) -> Self {
        IntakeDraft {
            estate: Some(intake.estate),
            kind: Some(intake.kind),
            category: Some(intake.category),
            area: Some(intake.area),
            source: Some(intake.source),
            reporter: Some(ReporterDraft {
                name: Some(intake.reporter.name),
                phone: intake.reporter.phone,
            }),
            location: Some(intake.location),
            description: Some(intake.description),
            received_at: Some(intake.received_at),
            follow_up_of: intake.follow_up_of,
            booking: intake.booking,
        }
    }
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
    /// R-P1: the time agreed with the owner; becomes the arrival deadline.
    /// A booking's time is moved with `reschedule_booking` instead.
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
    /// R-S2, R-P2: the owner moves a booked service to another date and
    /// time; the issue day moves along.
    RescheduleBooking {
        service_date: NaiveDate,
        agreed_time: AgreedTime,
        #[serde(default)]
        note: String,
    },
}

impl OfficeOp {
    /// The action's name, which decides who may take it (`Role::may_take`).
    pub fn action(&self) -> OfficeAction {
        match self {
            OfficeOp::Dispatch { .. } => OfficeAction::Dispatch,
            OfficeOp::Reassign { .. } => OfficeAction::Reassign,
            OfficeOp::SetAppointment { .. } => OfficeAction::SetAppointment,
            OfficeOp::RescheduleBooking { .. } => OfficeAction::RescheduleBooking,
            OfficeOp::Cancel { .. } => OfficeAction::Cancel,
            OfficeOp::AddNote { .. } => OfficeAction::AddNote,
            OfficeOp::Close {} => OfficeAction::Close,
            OfficeOp::SignOff { .. } => OfficeAction::SignOff,
            OfficeOp::Convert { .. } => OfficeAction::Convert,
            OfficeOp::RecordFollowUp { .. } => OfficeAction::RecordFollowUp,
            OfficeOp::Track { .. } => OfficeAction::Track,
        }
    }

    /// Whether the op adds a free note or is what the workflow needs: a
    /// ticket full of notes takes no more of them, but can still be finished.
    pub fn addition(&self) -> Addition {
        match self {
            OfficeOp::AddNote { .. } => Addition::Content,
            OfficeOp::SignOff { .. }
            | OfficeOp::RecordFollowUp { .. }
            | OfficeOp::Track { .. }
            | OfficeOp::Dispatch { .. }
            | OfficeOp::Reassign { .. }
            | OfficeOp::SetAppointment { .. }
            | OfficeOp::Cancel { .. }
            | OfficeOp::Close {}
            | OfficeOp::Convert { .. }
            | OfficeOp::RescheduleBooking { .. } => Addition::Workflow,
        }
    }

    /// Bytes of free text the op adds to the ticket.
    pub fn text_bytes(&self) -> usize {
        match self {
            OfficeOp::Dispatch { .. } | OfficeOp::Close {} => 0,
            OfficeOp::Reassign { reason, .. }
            | OfficeOp::Cancel { reason }
            | OfficeOp::Convert { reason } => reason.len(),
            OfficeOp::AddNote { text } => text.len(),
            OfficeOp::SetAppointment { note, .. }
            | OfficeOp::SignOff { note }
            | OfficeOp::RecordFollowUp { note, .. }
            | OfficeOp::Track { note, .. }
            | OfficeOp::RescheduleBooking { note, .. } => note.len(),
        }
    }
}

/// R-I2: every problem with the record, or nothing. A booking's date is
/// judged in `calendar`, the estate's (R-S2).
pub fn validate_intake(
    intake: &Intake,
    calendar: &WorkingCalendar,
    now: DateTime<Utc>,
) -> Result<(), WorkflowError> {
    let problems = intake_problems(&IntakeDraft::from(intake.clone()), calendar, now);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WorkflowError::Invalid(problems))
    }
}

/// Every problem of a record (R-I2), missing fields included; a check that
/// needs a missing field is left to the record that has it.
fn intake_problems(
    draft: &IntakeDraft,
    calendar: &WorkingCalendar,
    now: DateTime<Utc>,
) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    for (field, missing) in [
        ("estate", draft.estate.is_none()),
        ("kind", draft.kind.is_none()),
        ("category", draft.category.is_none()),
        ("area", draft.area.is_none()),
        ("source", draft.source.is_none()),
    ] {
        if missing {
            problems.push(FieldProblem::new(field, REQUIRED));
        }
    }
    let reporter = draft.reporter.as_ref();
    let name = reporter.and_then(|reporter| reporter.name.as_deref());
    check_text(
        &mut problems,
        "reporter.name",
        name.unwrap_or_default(),
        100,
    );
    match (
        reporter.and_then(|reporter| reporter.phone.as_deref()),
        draft.source,
    ) {
        (Some(phone), _) if !is_phone_number(phone) => problems.push(FieldProblem::new(
            "reporter.phone",
            "use 5-20 digits, spaces, + or - (电话格式不正确)",
        )),
        (None, Some(Source::Phone)) => problems.push(FieldProblem::new(
            "reporter.phone",
            "a phone report needs the caller's number (电话报事需留电话)",
        )),
        _ => {}
    }
    let location = draft.location.as_deref().unwrap_or_default();
    check_text(&mut problems, "location", location, 200);
    let description = draft.description.as_deref().unwrap_or_default();
    check_text(&mut problems, "description", description, MAX_TEXT_CHARS);
    if description.trim().chars().count() == 1 {
        problems.push(FieldProblem::new(
            "description",
            "too short to say what is wrong (描述不清)",
        ));
    }
    match draft.received_at {
        None => problems.push(FieldProblem::new("received_at", REQUIRED)),
        Some(received_at)
            if received_at > now + Duration::minutes(MAX_RECEIVED_AT_SKEW_MINUTES) =>
        {
            problems.push(FieldProblem::new(
                "received_at",
                "lies in the future (受理时间晚于当前时间)",
            ))
        }
        Some(_) => {}
    }
    match (draft.source, &draft.follow_up_of) {
        (Some(Source::FollowUp), None) => problems.push(FieldProblem::new(
            "follow_up_of",
            "a report from a follow-up names the ticket it came from (R-F3, 需关联原工单)",
        )),
        (None | Some(Source::FollowUp), _) | (_, None) => {}
        (Some(_), Some(_)) => problems.push(FieldProblem::new(
            "follow_up_of",
            "only a report from a follow-up is linked to an earlier ticket (R-F3, 仅回访报事可关联原工单)",
        )),
    }
    if let (Some(kind), Some(category)) = (draft.kind, draft.category)
        && let Some(problem) = kind_category_problem(kind, category)
    {
        problems.push(FieldProblem::new("kind", problem));
    }
    check_booking(&mut problems, draft, calendar, now);
    problems
}

/// R-S2: a home-service or private-garden work order is a booking for a
/// later date; nothing else is booked.
fn check_booking(
    problems: &mut Vec<FieldProblem>,
    draft: &IntakeDraft,
    calendar: &WorkingCalendar,
    now: DateTime<Utc>,
) {
    let booked_category = draft
        .category
        .map(|category| matches!(category, Category::HomeService | Category::PrivateGarden));
    let Some(booking) = &draft.booking else {
        if draft.kind == Some(TicketKind::WorkOrder) && booked_category == Some(true) {
            problems.push(FieldProblem::new(
                "booking",
                "a home-service or private-garden work order is booked for a later date with its fee, staff and time; a same-day home-service request is recorded as a verbal dispatch (R-S2, 需预约登记；当日家政按口头派工)",
            ));
        }
        return;
    };
    if draft.kind.is_some_and(|kind| kind != TicketKind::WorkOrder) {
        problems.push(FieldProblem::new(
            "booking",
            "a booking is entered as a work order (R-S2, 预约服务登记为派工单)",
        ));
    }
    if booked_category == Some(false) {
        problems.push(FieldProblem::new(
            "booking",
            "only home-service and private-garden jobs are booked (R-S2, 仅家政、私家花园养护可预约)",
        ));
    }
    if booking.service_date <= calendar.local_date(now) {
        problems.push(FieldProblem::new(
            "booking.service_date",
            "must be after today; a same-day home-service request is recorded as a verbal dispatch (R-S2, 当日家政报事按口头派工登记)",
        ));
    }
    check_service_time(
        problems,
        ["booking.service_date", "booking.agreed_time"],
        booking.service_date,
        booking.agreed_time,
        calendar,
        now,
    );
    if let Charge::Paid { fee_fen } = booking.fee
        && !(1..=MAX_FEE_FEN).contains(&fee_fen)
    {
        problems.push(FieldProblem::new(
            "booking.fee",
            "a paid booking states its fee, at most 1,000,000 yuan; a service without a fee is free (有偿服务需填写金额)",
        ));
    }
}

/// R-S2, R-P2: the service date lies within [`MAX_BOOKING_DAYS_AHEAD`] of
/// today, and the agreed time is a time or a window on that date, still ahead.
/// The two field names are those of the date and the time in the record.
fn check_service_time(
    problems: &mut Vec<FieldProblem>,
    [date_field, time_field]: [&str; 2],
    service_date: NaiveDate,
    agreed_time: AgreedTime,
    calendar: &WorkingCalendar,
    now: DateTime<Utc>,
) {
    if (service_date - calendar.local_date(now)).num_days() > MAX_BOOKING_DAYS_AHEAD {
        let problem = format!(
            "at most {MAX_BOOKING_DAYS_AHEAD} days ahead (预约不超过{MAX_BOOKING_DAYS_AHEAD}天)"
        );
        problems.push(FieldProblem::new(date_field, &problem));
    }
    if let AgreedTime::Window { from, until } = agreed_time
        && from >= until
    {
        problems.push(FieldProblem::new(
            time_field,
            "the window must end after it starts (时段结束须晚于开始)",
        ));
    }
    let on_service_date = [agreed_time.starts_at(), agreed_time.arrive_by()]
        .into_iter()
        .all(|at| calendar.local_date(at) == service_date);
    if !on_service_date {
        problems.push(FieldProblem::new(
            time_field,
            "must fall on the service date in the estate's time zone (约定时间须在服务当天)",
        ));
    } else if agreed_time.arrive_by() <= now {
        problems.push(FieldProblem::new(
            time_field,
            "has already passed (约定时间已过)",
        ));
    }
}

/// R-S2: the booking a valid request becomes; its work order is issued at
/// local 00:00 of the day before the service date.
fn book(request: BookingRequest, calendar: &WorkingCalendar) -> Booking {
    Booking {
        issued_at: calendar.start_of_local_date(issue_date_of(request.service_date)),
        service_date: request.service_date,
        agreed_time: request.agreed_time,
        fee: request.fee,
        staff: request.staff,
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
    calendar: &WorkingCalendar,
    now: DateTime<Utc>,
) -> Result<Ticket, WorkflowError> {
    validate_intake(&intake, calendar, now)?;
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
        booking: intake.booking.map(|request| book(request, calendar)),
        arrivals: Default::default(),
        notes: Default::default(),
        results: Default::default(),
        current_result: None,
        signatures: Default::default(),
        photos: Default::default(),
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

/// The office actions `user` (with `role`) may take on `ticket` now: the
/// role's permission (`Role::may_take`, R-K1's "closed by whoever took the
/// report") and what the workflow allows in the ticket's state, as
/// [`apply_office_op`] and [`convert_work_order`] judge it. Pages offer
/// exactly these; the server still checks every request.
pub fn offered_actions(
    ticket: &Ticket,
    role: Role,
    user: &UserId,
    now: DateTime<Utc>,
) -> Vec<OfficeAction> {
    let allows = |event| transition(ticket.status, event).is_ok();
    let coordination = ticket.kind == TicketKind::CoordinationTicket;
    OfficeAction::ALL
        .into_iter()
        .filter(|action| role.may_take(*action, ticket.kind, ticket.category))
        .filter(|action| match action {
            OfficeAction::Dispatch => {
                ticket.assigned_technician.is_none()
                    && allows(Event::Dispatch)
                    && require_issued(ticket, now).is_ok()
            }
            OfficeAction::Reassign => allows(Event::Reassign),
            OfficeAction::SetAppointment => ticket.booking.is_none() && allows(Event::Appoint),
            OfficeAction::RescheduleBooking => {
                ticket.booking.is_some() && allows(Event::Reschedule)
            }
            OfficeAction::Cancel => allows(Event::Cancel),
            OfficeAction::AddNote => true,
            OfficeAction::Close => match ticket.kind {
                TicketKind::VerbalDispatch => {
                    &ticket.received_by == user && allows(Event::CloseVerbal)
                }
                TicketKind::WorkOrder => {
                    allows(Event::Close) && ticket.signature_of_current_result().is_some()
                }
                TicketKind::CoordinationTicket => {
                    allows(Event::Close) && !ticket.sign_offs.is_empty()
                }
            },
            OfficeAction::SignOff => {
                coordination && ticket.sign_offs.is_empty() && allows(Event::SignOff)
            }
            OfficeAction::Convert => ticket.kind == TicketKind::WorkOrder && allows(Event::Convert),
            OfficeAction::RecordFollowUp => allows(Event::FollowUp),
            OfficeAction::Track => coordination && allows(Event::Track),
        })
        .collect()
}

/// Apply an office action; the ticket is returned changed, or not at all.
/// Dates of bookings are judged in `calendar`, the estate's (R-S2).
pub fn apply_office_op(
    ticket: &Ticket,
    op: &OfficeOp,
    by: &UserId,
    calendar: &WorkingCalendar,
    now: DateTime<Utc>,
) -> Result<Ticket, WorkflowError> {
    check_room(ticket, op.addition(), op.text_bytes())?;
    let mut next = ticket.clone();
    let actor = Actor::User { user: by.clone() };
    match op {
        OfficeOp::Dispatch { technician } => {
            if let Some(current) = &ticket.assigned_technician {
                return Err(WorkflowError::AlreadyAssigned(current.to_string()));
            }
            let status = transition(ticket.status, Event::Dispatch)?;
            require_issued(ticket, now)?;
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
            if ticket.booking.is_some() {
                // One agreed time per job: the booking's, which R-P2 judges.
                return Err(invalid(
                    "booking",
                    "a booked service is moved with reschedule_booking (R-S2, 预约单请改期)",
                ));
            }
            if *at < now - Duration::hours(1) {
                return Err(WorkflowError::Invalid(vec![FieldProblem::new(
                    "at",
                    "an appointment cannot lie in the past (预约时间已过)",
                )]));
            }
            if note.chars().count() > 500 {
                return Err(WorkflowError::Invalid(vec![FieldProblem::new(
                    "note",
                    "at most 500 characters (不超过500字)",
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
            return Err(invalid("op", "use convert_work_order (转协调单另行处理)"));
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
                    "an owner who was not reached gave no rating (未联系上业主，无评价)",
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
            if let TrackingKind::OwnerContact {
                reached: false,
                proposal_rejected: true,
            } = kind
            {
                return Err(invalid(
                    "kind.proposal_rejected",
                    "an owner who was not reached rejected no proposal (未联系上业主)",
                ));
            }
            next.tracking.push(TrackingRecord {
                by: by.clone(),
                at: now,
                kind: kind.clone(),
                note: note.trim().to_owned(),
            });
            let event = HistoryEvent::Tracked { kind: kind.clone() };
            next.record(now, actor.clone(), event, status);
            // R-P5: the contact that makes the case escalates the open
            // ticket, in the same change and once per case.
            if let TrackingKind::OwnerContact { .. } = kind
                && status.is_open()
                && let Some(escalation) = r_p5_open_escalation(&next)
                && !escalation_recorded(&next, &escalation)
            {
                let event = HistoryEvent::Escalated {
                    reason: escalation.reason,
                    since: escalation.since,
                };
                next.record(now, actor, event, status);
            }
        }
        OfficeOp::RescheduleBooking {
            service_date,
            agreed_time,
            note,
        } => {
            let Some(booking) = &ticket.booking else {
                return Err(invalid(
                    "booking",
                    "only a booked service is rescheduled (R-S2, 非预约单)",
                ));
            };
            let status = transition(ticket.status, Event::Reschedule)?;
            let mut problems = Vec::new();
            // Unlike a new booking, a move may land on today: the owner
            // changes the time of the agreed day (R-P2).
            if *service_date < calendar.local_date(now) {
                problems.push(FieldProblem::new(
                    "service_date",
                    "lies in the past (服务日期已过)",
                ));
            }
            check_service_time(
                &mut problems,
                ["service_date", "agreed_time"],
                *service_date,
                *agreed_time,
                calendar,
                now,
            );
            if note.chars().count() > 500 {
                problems.push(FieldProblem::new("note", "is too long (超出长度)"));
            }
            if !problems.is_empty() {
                return Err(WorkflowError::Invalid(problems));
            }
            let request = BookingRequest {
                service_date: *service_date,
                agreed_time: *agreed_time,
                fee: booking.fee.clone(),
                staff: booking.staff.clone(),
            };
            next.booking = Some(book(request, calendar));
            let event = HistoryEvent::BookingRescheduled {
                from: booking.service_date,
                to: *service_date,
                note: note.trim().to_owned(),
            };
            next.record(now, actor, event, status);
        }
    }
    Ok(next)
}

/// R-S2: a booked work order is dispatched from its issue day only; any
/// other ticket at once.
pub fn require_issued(ticket: &Ticket, now: DateTime<Utc>) -> Result<(), WorkflowError> {
    match &ticket.booking {
        Some(booking) if !ticket.is_issued(now) => Err(WorkflowError::BookingNotIssued {
            service_date: booking.service_date,
            issue_date: booking.issue_date(),
            issued_at: booking.issued_at,
        }),
        _ => Ok(()),
    }
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
    // The booking was the work order's; the coordination ticket runs on R-P3.
    coordination.booking = None;
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
) -> Result<Ticket, WorkflowError> {
    // A change of the original like any other: it needs room on it.
    check_room(original, Addition::Workflow, 0)?;
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
    Ok(next)
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
        problems.push(FieldProblem::new(field, REQUIRED));
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
    use crate::calendar::tests::{date, shanghai};
    use chrono::TimeZone;

    /// What `offered_actions` offers is what the workflow then accepts,
    /// and what it holds back the role or the workflow refuses: over the
    /// tickets of every kind and state here, every role, every action.
    #[test]
    fn the_actions_offered_are_the_ones_that_apply() {
        let now = at(10, 0);
        let cal = calendar();
        let act = |ticket: &Ticket, op: OfficeOp, by: &str| {
            apply_office_op(ticket, &op, &user(by), &cal, now).unwrap()
        };
        let closed = act(&signed_work_order(), OfficeOp::Close {}, "diaodu");
        let signed_off = act(
            &act(
                &coordination_ticket(),
                OfficeOp::Dispatch {
                    technician: user("zhang"),
                },
                "huanjing",
            ),
            OfficeOp::AddNote {
                text: "进展".to_owned(),
            },
            "huanjing",
        );
        let verbal = |mut ticket: Ticket| {
            ticket.kind = TicketKind::VerbalDispatch;
            ticket.category = Category::Security;
            ticket.serial_number = None;
            ticket
        };
        let tickets = [
            booked_ticket(),
            dispatched_booking(),
            dispatched_ticket("li"),
            signed_work_order(),
            closed,
            coordination_ticket(),
            signed_off,
            verbal(dispatched_ticket("li")),
            // Given to a technician, who recorded the result: still closed
            // by the agent who took it (R-K1).
            verbal(signed_work_order()),
        ];
        for ticket in &tickets {
            for role in Role::ALL {
                for by in ["kefu", "diaodu"] {
                    let offered = offered_actions(ticket, role, &user(by), now);
                    for action in OfficeAction::ALL {
                        let applies = role.may_take(action, ticket.kind, ticket.category)
                            && (action != OfficeAction::Close
                                || ticket.kind != TicketKind::VerbalDispatch
                                || ticket.received_by == user(by))
                            && applies(ticket, action, &cal, now);
                        assert_eq!(
                            offered.contains(&action),
                            applies,
                            "{action:?} by {role:?} {by} on a {:?} {:?}",
                            ticket.kind,
                            ticket.status
                        );
                    }
                }
            }
        }
    }

    /// Whether a plain request for `action` applies to `ticket`.
    fn applies(
        ticket: &Ticket,
        action: OfficeAction,
        calendar: &WorkingCalendar,
        now: DateTime<Utc>,
    ) -> bool {
        let someone_else = if ticket.assigned_technician.as_ref() == Some(&user("zhang")) {
            user("wang")
        } else {
            user("zhang")
        };
        let op = match action {
            OfficeAction::Dispatch => OfficeOp::Dispatch {
                technician: someone_else,
            },
            OfficeAction::Reassign => OfficeOp::Reassign {
                technician: someone_else,
                reason: "另派".to_owned(),
            },
            OfficeAction::SetAppointment => OfficeOp::SetAppointment {
                at: now + Duration::hours(1),
                note: String::new(),
            },
            OfficeAction::RescheduleBooking => match &ticket.booking {
                Some(booking) => OfficeOp::RescheduleBooking {
                    service_date: booking.service_date,
                    agreed_time: booking.agreed_time,
                    note: String::new(),
                },
                None => booking_reschedule_elsewhere(),
            },
            OfficeAction::Cancel => OfficeOp::Cancel {
                reason: "业主撤销".to_owned(),
            },
            OfficeAction::AddNote => OfficeOp::AddNote {
                text: "备注".to_owned(),
            },
            OfficeAction::Close => OfficeOp::Close {},
            OfficeAction::SignOff => OfficeOp::SignOff {
                note: String::new(),
            },
            OfficeAction::Convert => {
                let id = TicketId::parse("tk99999999").unwrap();
                return convert_work_order(ticket, id, "跨日", &user("diaodu"), now).is_ok();
            }
            OfficeAction::RecordFollowUp => OfficeOp::RecordFollowUp {
                reached: true,
                rating: None,
                note: String::new(),
            },
            OfficeAction::Track => OfficeOp::Track {
                kind: TrackingKind::Check {},
                note: String::new(),
            },
        };
        apply_office_op(ticket, &op, &user("kefu"), calendar, now).is_ok()
    }

    fn booking_reschedule_elsewhere() -> OfficeOp {
        let request = booking_request();
        OfficeOp::RescheduleBooking {
            service_date: request.service_date,
            agreed_time: request.agreed_time,
            note: String::new(),
        }
    }

    pub fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, hour, minute, 0).unwrap()
    }

    /// The estates' calendar in these tests: Asia/Shanghai, so that `at(9, 0)`
    /// is 17:00 on 11-27 and `at(16, 0)` is local midnight of 11-28.
    pub fn calendar() -> WorkingCalendar {
        WorkingCalendar::asia_shanghai()
    }

    /// `op` by `by` at `now`, in the tests' calendar.
    fn act(
        ticket: &Ticket,
        op: &OfficeOp,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Ticket, WorkflowError> {
        apply_office_op(ticket, op, &user(by), &calendar(), now)
    }

    /// R-S2: a deep clean booked on 11-27 for Sunday 11-29, 09:00-11:00, by li, for 80 yuan.
    pub fn booking_request() -> BookingRequest {
        BookingRequest {
            service_date: date(11, 29),
            agreed_time: AgreedTime::Window {
                from: shanghai(11, 29, 9, 0),
                until: shanghai(11, 29, 11, 0),
            },
            fee: Charge::Paid { fee_fen: 8000 },
            staff: Some(user("li")),
        }
    }

    pub fn booking_intake() -> Intake {
        Intake {
            category: Category::HomeService,
            description: "深度保洁 deep cleaning of the flat".into(),
            booking: Some(booking_request()),
            ..intake()
        }
    }

    /// The booking of [`booking_intake`], recorded at 17:00 on 11-27; its
    /// work order is issued at 00:00 on 11-28 (`at(16, 0)`).
    pub fn booked_ticket() -> Ticket {
        create_ticket(
            TicketId::parse("t-booked").unwrap(),
            booking_intake(),
            user("agent"),
            &calendar(),
            at(9, 0),
        )
        .unwrap()
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
            booking: None,
        }
    }

    pub fn dispatched_ticket(technician: &str) -> Ticket {
        let ticket = create_ticket(
            TicketId::parse("t-1").unwrap(),
            intake(),
            user("agent"),
            &calendar(),
            at(9, 0),
        )
        .unwrap();
        let op = OfficeOp::Dispatch {
            technician: user(technician),
        };
        act(&ticket, &op, "dispatcher", at(9, 1)).unwrap()
    }

    #[test]
    fn r_i2_a_complete_report_becomes_a_received_ticket() {
        let ticket = create_ticket(
            TicketId::parse("t-1").unwrap(),
            intake(),
            user("agent"),
            &calendar(),
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
        let Err(WorkflowError::Invalid(problems)) = validate_intake(&record, &calendar(), at(9, 0))
        else {
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
    fn r_i2_a_report_missing_fields_names_each_with_every_other_problem() {
        let body = serde_json::json!({
            "estate": "E01",
            "kind": "work_order",
            "source": "phone",
            "reporter": {},
            "location": " ",
        });
        let draft: IntakeDraft = serde_json::from_value(body).unwrap();
        let refused = draft.complete(&calendar(), at(9, 0)).unwrap_err();
        assert_eq!(
            problem_fields(refused),
            [
                "category",
                "area",
                "reporter.name",
                "reporter.phone",
                "location",
                "description",
                "received_at"
            ]
        );
        let nothing: IntakeDraft = serde_json::from_value(serde_json::json!({})).unwrap();
        let refused = nothing.complete(&calendar(), at(9, 0)).unwrap_err();
        assert_eq!(
            problem_fields(refused),
            [
                "estate",
                "kind",
                "category",
                "area",
                "source",
                "reporter.name",
                "location",
                "description",
                "received_at"
            ]
        );
    }

    #[test]
    fn r_i2_a_complete_draft_is_the_record_and_a_null_or_unknown_field_is_malformed() {
        let body = serde_json::to_value(intake()).unwrap();
        let draft: IntakeDraft = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(draft.complete(&calendar(), at(9, 0)), Ok(intake()));
        for (field, value) in [
            ("location", serde_json::Value::Null),
            ("kind", serde_json::json!("email")),
            ("priority", serde_json::json!("high")),
        ] {
            let mut malformed = body.clone();
            malformed[field] = value;
            assert!(
                serde_json::from_value::<IntakeDraft>(malformed).is_err(),
                "{field}"
            );
        }
    }

    #[test]
    fn r_k1_a_verbal_dispatch_is_only_for_quick_jobs() {
        let mut record = intake();
        record.kind = TicketKind::VerbalDispatch;
        assert!(validate_intake(&record, &calendar(), at(9, 0)).is_err());
        record.category = Category::Security;
        assert!(validate_intake(&record, &calendar(), at(9, 0)).is_ok());
    }

    #[test]
    fn reassigning_records_who_held_it_and_restarts_the_arrival_clock() {
        let ticket = dispatched_ticket("li");
        let op = OfficeOp::Reassign {
            technician: user("zhang"),
            reason: "li is off sick".into(),
        };
        let next = act(&ticket, &op, "dispatcher", at(10, 0)).unwrap();
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
            act(&ticket, &op, "dispatcher", at(10, 0)),
            Err(WorkflowError::AlreadyAssigned("li".into()))
        );
        let cancel = OfficeOp::Cancel { reason: "".into() };
        assert!(act(&ticket, &cancel, "agent", at(10, 0)).is_err());
    }

    #[test]
    fn an_appointment_in_the_past_is_refused() {
        let ticket = dispatched_ticket("li");
        let op = OfficeOp::SetAppointment {
            at: at(7, 0),
            note: String::new(),
        };
        assert!(act(&ticket, &op, "agent", at(10, 0)).is_err());
    }

    /// A dispatched work order that li completed and the owner signed.
    pub fn signed_work_order() -> Ticket {
        use crate::ids::{DeviceId, DeviceSeq, Sha256Hex};
        use crate::merge::{Recorder, merge};
        use crate::mutation::{DeviceMutation, DeviceOp};
        use crate::ticket::{Charge, CompletionRecord};
        let recorder = Recorder {
            user: user("li"),
            device: DeviceId::parse("hh-li").unwrap(),
            clock_offset_ms: 0,
        };
        let result = CompletionRecord {
            work_done: "换了阀门 replaced the valve".into(),
            materials: vec![],
            charge: Charge::Free {},
        };
        let ops = [
            DeviceOp::RecordArrival { position: None },
            DeviceOp::Complete {
                result: result.clone(),
            },
            DeviceOp::AttachSignature {
                blob: Sha256Hex::of(b"signature image"),
                signed_record: result.record_hash(),
                signer_name: "王女士".into(),
                rating: Some(Rating::Satisfied),
                strokes: None,
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

    pub fn coordination_ticket() -> Ticket {
        let mut record = intake();
        record.kind = TicketKind::CoordinationTicket;
        create_ticket(
            TicketId::parse("t-9").unwrap(),
            record,
            user("agent"),
            &calendar(),
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
        let closed = act(&ticket, &OfficeOp::Close {}, "dispatcher", at(10, 0)).unwrap();
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
        let refused = act(&ticket, &OfficeOp::Close {}, "dispatcher", at(10, 0));
        assert_eq!(problem_fields(refused.unwrap_err()), ["signatures"]);
    }

    #[test]
    fn r_c1_an_unfinished_work_order_cannot_be_closed() {
        let ticket = dispatched_ticket("li");
        let refused = act(&ticket, &OfficeOp::Close {}, "dispatcher", at(10, 0));
        assert!(matches!(
            refused,
            Err(WorkflowError::TransitionNotAllowed { .. })
        ));
    }

    #[test]
    fn r_c3_a_coordination_ticket_closes_only_after_the_department_sign_off() {
        let mut ticket = coordination_ticket();
        ticket.status = Status::Completed;
        let early = act(&ticket, &OfficeOp::Close {}, "kf-manager", at(10, 0));
        assert_eq!(problem_fields(early.unwrap_err()), ["sign_offs"]);
        let sign_off = OfficeOp::SignOff {
            note: "done and checked".into(),
        };
        let signed = act(&ticket, &sign_off, "dept-manager", at(10, 0)).unwrap();
        let twice = act(&signed, &sign_off, "dept-manager", at(10, 5));
        assert_eq!(problem_fields(twice.unwrap_err()), ["sign_offs"]);
        let closed = act(&signed, &OfficeOp::Close {}, "kf-manager", at(11, 0)).unwrap();
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
            &calendar(),
            at(9, 0),
        )
        .unwrap();
        let closed = act(&ticket, &OfficeOp::Close {}, "agent", at(9, 5)).unwrap();
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
        assert!(act(&open, &follow_up, "agent", at(10, 0)).is_err());
        let closed = act(
            &signed_work_order(),
            &OfficeOp::Close {},
            "dispatcher",
            at(10, 0),
        )
        .unwrap();
        let followed = act(&closed, &follow_up, "agent", at(15, 0)).unwrap();
        assert_eq!(followed.follow_ups.len(), 1);
        assert_eq!(followed.status, Status::Closed);
        let unreached_with_rating = OfficeOp::RecordFollowUp {
            reached: false,
            rating: Some(Rating::Satisfied),
            note: String::new(),
        };
        assert!(act(&closed, &unreached_with_rating, "agent", at(15, 0)).is_err());
    }

    #[test]
    fn r_f3_a_follow_up_report_must_name_its_ticket_and_is_linked_back() {
        let mut record = intake();
        record.source = Source::FollowUp;
        assert_eq!(
            problem_fields(validate_intake(&record, &calendar(), at(9, 0)).unwrap_err()),
            ["follow_up_of"]
        );
        let original = dispatched_ticket("li");
        record.follow_up_of = Some(original.id.clone());
        let report = create_ticket(
            TicketId::parse("t-5").unwrap(),
            record,
            user("agent"),
            &calendar(),
            at(9, 0),
        )
        .unwrap();
        let linked = link_follow_up_report(&original, &report, &user("agent"), at(9, 0)).unwrap();
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
        let tracked = act(&coordination_ticket(), &track, "specialist", at(10, 0)).unwrap();
        assert_eq!(tracked.tracking.len(), 1);
        let refused = act(&dispatched_ticket("li"), &track, "specialist", at(10, 0));
        assert_eq!(problem_fields(refused.unwrap_err()), ["kind"]);
    }

    fn owner_contact(reached: bool, proposal_rejected: bool) -> OfficeOp {
        OfficeOp::Track {
            kind: TrackingKind::OwnerContact {
                reached,
                proposal_rejected,
            },
            note: String::new(),
        }
    }

    fn escalations(ticket: &Ticket) -> usize {
        ticket
            .history
            .iter()
            .filter(|entry| matches!(entry.event, HistoryEvent::Escalated { .. }))
            .count()
    }

    #[test]
    fn r_p5_the_second_rejection_within_a_week_escalates_once_in_the_same_change() {
        let ticket = coordination_ticket();
        let rejected = owner_contact(true, true);
        let once = act(&ticket, &rejected, "specialist", at(10, 0)).unwrap();
        assert_eq!(once.version, ticket.version.next());
        assert_eq!(escalations(&once), 0);
        let twice = act(
            &once,
            &rejected,
            "specialist",
            at(10, 0) + Duration::days(6),
        )
        .unwrap();
        assert_eq!(twice.version, once.version.next().next());
        let last = twice.history.last().unwrap();
        assert_eq!(
            last.event,
            HistoryEvent::Escalated {
                reason: crate::time_rules::EscalationReason::ProposalsRejected,
                since: at(10, 0),
            }
        );
        assert_eq!(
            last.actor,
            Actor::User {
                user: user("specialist")
            }
        );
        let thrice = act(
            &twice,
            &rejected,
            "specialist",
            at(10, 0) + Duration::days(6),
        )
        .unwrap();
        assert_eq!(escalations(&thrice), 1, "one case, one escalation");
    }

    #[test]
    fn r_p5_a_joint_talk_ends_the_case_and_later_contacts_make_a_new_one() {
        let rejected = owner_contact(true, true);
        let mut ticket = coordination_ticket();
        for hour in [10, 11] {
            ticket = act(&ticket, &rejected, "specialist", at(hour, 0)).unwrap();
        }
        assert!(r_p5_open_escalation(&ticket).is_some());
        let talk = OfficeOp::Track {
            kind: TrackingKind::JointTalk {},
            note: "与业主面谈 met the owner together".into(),
        };
        ticket = act(&ticket, &talk, "kf-manager", at(12, 0)).unwrap();
        assert_eq!(r_p5_open_escalation(&ticket), None);
        ticket = act(&ticket, &rejected, "specialist", at(13, 0)).unwrap();
        assert_eq!(escalations(&ticket), 1);
        ticket = act(&ticket, &rejected, "specialist", at(14, 0)).unwrap();
        assert_eq!(escalations(&ticket), 2);
        assert_eq!(r_p5_open_escalation(&ticket).unwrap().since, at(13, 0));
    }

    #[test]
    fn r_p5_an_owner_not_reached_rejected_no_proposal_and_a_closed_case_is_not_escalated() {
        let refused = act(
            &coordination_ticket(),
            &owner_contact(false, true),
            "specialist",
            at(10, 0),
        );
        assert_eq!(
            problem_fields(refused.unwrap_err()),
            ["kind.proposal_rejected"]
        );
        let mut completed = coordination_ticket();
        completed.status = Status::Completed;
        let rejected = owner_contact(true, true);
        for hour in [10, 11] {
            completed = act(&completed, &rejected, "specialist", at(hour, 0)).unwrap();
        }
        assert_eq!(
            escalations(&completed),
            0,
            "the work is done: nobody to escalate to"
        );
    }

    /// [`booked_ticket`], dispatched to li at 09:00 on its issue day, 11-28.
    pub fn dispatched_booking() -> Ticket {
        let dispatch = OfficeOp::Dispatch {
            technician: user("li"),
        };
        act(
            &booked_ticket(),
            &dispatch,
            "dispatcher",
            shanghai(11, 28, 9, 0),
        )
        .unwrap()
    }

    fn reschedule(service_date: NaiveDate, agreed_time: AgreedTime) -> OfficeOp {
        OfficeOp::RescheduleBooking {
            service_date,
            agreed_time,
            note: "业主出差 the owner is away".into(),
        }
    }

    #[test]
    fn r_s2_a_booked_work_order_is_issued_at_midnight_before_its_service_date() {
        let ticket = booked_ticket();
        let booking = ticket.booking.as_ref().unwrap();
        assert_eq!(booking.issued_at, shanghai(11, 28, 0, 0));
        assert_eq!(booking.issue_date(), date(11, 28));
        assert_eq!(booking.staff, Some(user("li")));
        assert_eq!(booking.fee, Charge::Paid { fee_fen: 8000 });
        assert_eq!(ticket.status, Status::Received);
        assert!(!ticket.is_issued(shanghai(11, 27, 23, 59)));
        assert!(ticket.is_issued(shanghai(11, 28, 0, 0)));
    }

    #[test]
    fn r_s2_a_private_garden_job_is_booked_too_and_may_be_free() {
        let record = Intake {
            category: Category::PrivateGarden,
            booking: Some(BookingRequest {
                fee: Charge::Free {},
                staff: None,
                ..booking_request()
            }),
            ..intake()
        };
        assert_eq!(validate_intake(&record, &calendar(), at(9, 0)), Ok(()));
    }

    #[test]
    fn r_s2_a_misplaced_booking_is_refused_with_every_reason() {
        let mut record = Intake {
            kind: TicketKind::CoordinationTicket,
            booking: Some(BookingRequest {
                service_date: date(11, 27),
                agreed_time: AgreedTime::Window {
                    from: shanghai(11, 27, 15, 0),
                    until: shanghai(11, 27, 14, 0),
                },
                fee: Charge::Paid { fee_fen: 0 },
                staff: None,
            }),
            ..intake()
        };
        let refused = validate_intake(&record, &calendar(), at(9, 0)).unwrap_err();
        assert_eq!(
            problem_fields(refused),
            [
                "booking",
                "booking",
                "booking.service_date",
                "booking.agreed_time",
                "booking.agreed_time",
                "booking.fee"
            ],
            "not a work order, not home service, today, a window backwards and past, a paid 0"
        );
        record.kind = TicketKind::WorkOrder;
        record.category = Category::HomeService;
        let Err(WorkflowError::Invalid(problems)) = validate_intake(&record, &calendar(), at(9, 0))
        else {
            panic!("a same-day booking is refused");
        };
        assert!(
            problems[0].problem.contains("verbal dispatch"),
            "{problems:?}"
        );
    }

    #[test]
    fn r_s2_a_home_service_work_order_without_a_booking_is_refused_a_verbal_dispatch_is_not() {
        let mut record = Intake {
            booking: None,
            ..booking_intake()
        };
        let refused = validate_intake(&record, &calendar(), at(9, 0)).unwrap_err();
        assert_eq!(problem_fields(refused), ["booking"]);
        record.kind = TicketKind::VerbalDispatch;
        assert_eq!(validate_intake(&record, &calendar(), at(9, 0)), Ok(()));
    }

    #[test]
    fn r_s2_the_agreed_time_lies_on_the_service_date_within_90_days() {
        let mut request = booking_request();
        request.agreed_time = AgreedTime::At {
            at: shanghai(11, 30, 9, 0),
        };
        let record = Intake {
            booking: Some(request),
            ..booking_intake()
        };
        let refused = validate_intake(&record, &calendar(), at(9, 0)).unwrap_err();
        assert_eq!(problem_fields(refused), ["booking.agreed_time"]);
        let far = date(11, 27) + Duration::days(MAX_BOOKING_DAYS_AHEAD + 1);
        let far_at = calendar().start_of_local_date(far) + Duration::hours(10);
        let record = Intake {
            booking: Some(BookingRequest {
                service_date: far,
                agreed_time: AgreedTime::At { at: far_at },
                ..booking_request()
            }),
            ..booking_intake()
        };
        let refused = validate_intake(&record, &calendar(), at(9, 0)).unwrap_err();
        assert_eq!(problem_fields(refused), ["booking.service_date"]);
    }

    #[test]
    fn r_s2_a_booking_is_dispatched_from_its_issue_day_only() {
        let dispatch = OfficeOp::Dispatch {
            technician: user("li"),
        };
        assert_eq!(
            act(
                &booked_ticket(),
                &dispatch,
                "dispatcher",
                shanghai(11, 27, 23, 59)
            ),
            Err(WorkflowError::BookingNotIssued {
                service_date: date(11, 29),
                issue_date: date(11, 28),
                issued_at: shanghai(11, 28, 0, 0),
            })
        );
        assert_eq!(dispatched_booking().status, Status::Dispatched);
    }

    #[test]
    fn r_s2_rescheduling_moves_the_service_date_and_the_issue_day_and_keeps_the_terms() {
        let ticket = booked_ticket();
        let window = AgreedTime::Window {
            from: shanghai(12, 2, 14, 0),
            until: shanghai(12, 2, 16, 0),
        };
        let moved = act(
            &ticket,
            &reschedule(date(12, 2), window),
            "agent",
            at(10, 0),
        )
        .unwrap();
        let booking = moved.booking.as_ref().unwrap();
        assert_eq!(booking.service_date, date(12, 2));
        assert_eq!(booking.agreed_time, window);
        assert_eq!(booking.issued_at, shanghai(12, 1, 0, 0));
        assert_eq!(booking.staff, Some(user("li")));
        assert_eq!(booking.fee, Charge::Paid { fee_fen: 8000 });
        assert_eq!(moved.version, ticket.version.next());
        assert_eq!(
            moved.history.last().unwrap().event,
            HistoryEvent::BookingRescheduled {
                from: date(11, 29),
                to: date(12, 2),
                note: "业主出差 the owner is away".into(),
            }
        );
        assert!(!moved.is_issued(shanghai(11, 30, 23, 0)));
    }

    #[test]
    fn r_s2_on_the_service_day_the_owner_may_still_move_the_time_but_not_into_the_past() {
        let dispatched = dispatched_booking();
        // At 08:00 on the service day, the owner asks for 15:00 on `day`.
        let move_to = |day: u32| {
            let at = AgreedTime::At {
                at: shanghai(11, day, 15, 0),
            };
            let op = reschedule(date(11, day), at);
            act(&dispatched, &op, "agent", shanghai(11, 29, 8, 0))
        };
        let moved = move_to(29).unwrap();
        assert_eq!(moved.status, Status::Dispatched, "li keeps the job");
        assert_eq!(
            problem_fields(move_to(28).unwrap_err()),
            ["service_date", "agreed_time"]
        );
    }

    #[test]
    fn r_s2_only_a_booking_is_rescheduled_and_only_until_its_staff_arrives() {
        let moved = reschedule(date(11, 29), booking_request().agreed_time);
        let ordinary = act(&dispatched_ticket("li"), &moved, "agent", at(10, 0));
        assert_eq!(problem_fields(ordinary.unwrap_err()), ["booking"]);
        let mut arrived = booked_ticket();
        arrived.status = Status::InProgress;
        assert!(matches!(
            act(&arrived, &moved, "agent", at(10, 0)),
            Err(WorkflowError::TransitionNotAllowed { .. })
        ));
    }

    #[test]
    fn r_s2_a_bookings_time_is_not_moved_by_an_appointment() {
        let op = OfficeOp::SetAppointment {
            at: shanghai(11, 29, 15, 0),
            note: String::new(),
        };
        let refused = act(&booked_ticket(), &op, "agent", at(10, 0));
        assert_eq!(problem_fields(refused.unwrap_err()), ["booking"]);
    }

    #[test]
    fn r_c2_a_converted_booking_leaves_the_booking_on_the_work_order() {
        let (work_order, coordination) = convert_work_order(
            &dispatched_booking(),
            TicketId::parse("t-ct").unwrap(),
            "the owner wants the whole garden redone",
            &user("dispatcher"),
            shanghai(11, 29, 18, 0),
        )
        .unwrap();
        assert!(work_order.booking.is_some());
        assert_eq!(coordination.booking, None);
    }
}
