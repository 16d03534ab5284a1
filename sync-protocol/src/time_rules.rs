//! The time rules of SPEC.md as pure functions: each deadline is named for
//! its rule ID and computed from the instants it counts from, never from a
//! clock. The server's scheduler and the reports call these; they decide
//! nothing about storage or notification.
//!
//! The windows, precisely (`due_at` is inclusive: done at `due_at` is in time):
//!
//! | rule | duty | counted from | due at |
//! |---|---|---|---|
//! | R-P1 | arrival | dispatch | dispatch + 15 min |
//! | R-P1 | arrival | appointment, once booked | the appointment itself |
//! | R-P2 | arrival | a booking's agreed time (R-S2) | the agreed time; a window's end |
//! | R-K2 | finish | receipt; a booking: its service date | end of the local day of receipt; public area: end of the local day 3 calendar days later |
//! | R-C2 | convert | as R-K2 | R-K2's due time: a work order not finished by then is converted |
//! | R-C1 | return to dispatcher | completion | end of the local day of completion; public area: end of the local day 3 calendar days later |
//! | R-P3 | book site inspection | issue | issue + 0.5 working day (working calendar) |
//! | R-P3 | reply to owner | issue | issue + 24 h (elapsed, not working hours) |
//! | R-P4 | check / reply to owner | last such record, else issue | end of the local day N calendar days later |
//! | R-P5 | joint talk with the owner | escalation | escalation + 24 h (elapsed) |
//! | R-F1 | follow-up | closure | closure + 24 h (elapsed) |
//!
//! "Issue" is when the ticket became a coordination ticket: its receipt when
//! issued directly, its conversion when converted (R-C2). "End of a local day"
//! is its last instant in the estate's time zone ([`WorkingCalendar`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkingCalendar;
use crate::ticket::{AgreedTime, Area, Category, Charge, Rating, TicketKind};

/// R-P1: minutes from dispatch to arrival.
pub const R_P1_ARRIVAL_WINDOW_MINUTES: i64 = 15;
/// R-K2, R-C1, R-C2: calendar days a public-area job has after its day.
pub const R_K2_PUBLIC_AREA_WINDOW_DAYS: i64 = 3;
/// R-P3: hours from issue to the first reply to the owner.
pub const R_P3_OWNER_REPLY_WINDOW_HOURS: i64 = 24;
/// R-P4: days between the specialist's checks of a coordination ticket.
pub const R_P4_SPECIALIST_CHECK_DAYS: u32 = 3;
/// R-P4: days between progress reports to the owner of a coordination ticket.
pub const R_P4_PROGRESS_REPORT_DAYS: u32 = 5;
/// R-P4: days between replies to the owner of an owner-communication ticket.
pub const R_P4_OWNER_COMMUNICATION_REPLY_DAYS: u32 = 3;
/// R-P4: days between checks of an open ticket of any other kind.
pub const R_P4_OTHER_KIND_CHECK_DAYS: u32 = 7;
/// R-P5: rejected proposals that escalate when they fall within the window.
pub const R_P5_REJECTED_PROPOSALS: usize = 2;
/// R-P5: the window for the rejected proposals.
pub const R_P5_REJECTION_WINDOW_DAYS: i64 = 7;
/// R-P5: how long failed attempts to reach the owner must span.
pub const R_P5_UNREACHED_SPAN_HOURS: i64 = 24;
/// R-P5: hours from an escalation to the joint talk with the owner.
pub const R_P5_JOINT_TALK_WINDOW_HOURS: i64 = 24;
/// R-F1: hours from closure to the follow-up.
pub const R_F1_FOLLOW_UP_WINDOW_HOURS: i64 = 24;
/// Largest measured device clock offset that is still trusted.
pub const CLOCK_OFFSET_TRUST_MS: i64 = 10 * 60 * 1000;
/// Oldest a corrected device time may be, before its arrival at the server.
pub const DEVICE_EVENT_MAX_AGE_DAYS: i64 = 7;

/// The SPEC.md rule a deadline enforces, serialized as its ID (`"R-P1"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RuleId {
    #[serde(rename = "R-K2")]
    K2,
    #[serde(rename = "R-P1")]
    P1,
    #[serde(rename = "R-P2")]
    P2,
    #[serde(rename = "R-P3")]
    P3,
    #[serde(rename = "R-P4")]
    P4,
    #[serde(rename = "R-P5")]
    P5,
    #[serde(rename = "R-C1")]
    C1,
    #[serde(rename = "R-C2")]
    C2,
    #[serde(rename = "R-F1")]
    F1,
}

impl RuleId {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::K2 => "R-K2",
            RuleId::P1 => "R-P1",
            RuleId::P2 => "R-P2",
            RuleId::P3 => "R-P3",
            RuleId::P4 => "R-P4",
            RuleId::P5 => "R-P5",
            RuleId::C1 => "R-C1",
            RuleId::C2 => "R-C2",
            RuleId::F1 => "R-F1",
        }
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What has to happen by the deadline; one rule can set several (R-P3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duty {
    /// 到场: the technician arrives on site (R-P1).
    Arrival,
    /// 完成: the work order is finished (R-K2).
    Finish,
    /// 转协调单: a work order not finished in its window becomes a
    /// coordination ticket (R-C2).
    Convert,
    /// 交回: the finished order goes back to the dispatcher (R-C1).
    ReturnToDispatcher,
    /// 预约查看: the department books a site inspection with the owner (R-P3).
    BookSiteInspection,
    /// 回复业主: a reply or progress report to the owner (R-P3, R-P4).
    ReplyToOwner,
    /// 跟进检查: the ticket's progress is checked and recorded (R-P4).
    Check,
    /// 联合约谈: the coordinator and customer service talk to the owner
    /// together (R-P5).
    JointTalk,
    /// 回访 (R-F1).
    FollowUp,
}

/// What a deadline's clock counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Dispatch,
    /// The appointment is itself the deadline.
    Appointment,
    Receipt,
    Completion,
    /// The ticket became a coordination ticket (issued or converted).
    Issue,
    /// The last recorded check or reply of the same duty.
    LastRecord,
    /// The owner contact that escalated the ticket (R-P5).
    Escalation,
    Closure,
}

/// One deadline: the rule, what is due, when, and what the clock counted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadline {
    pub rule: RuleId,
    pub duty: Duty,
    /// Inclusive: done at this instant is in time.
    pub due_at: DateTime<Utc>,
    pub basis: Basis,
    pub counted_from: DateTime<Utc>,
}

impl Deadline {
    /// See [`assess`].
    pub fn assess(
        &self,
        done_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        due_soon_window: Duration,
    ) -> DeadlineState {
        assess(self.due_at, done_at, now, due_soon_window)
    }
}

/// Where a deadline stands, for reports (met or missed) and due lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadlineState {
    /// Done by the deadline.
    Met { at: DateTime<Utc> },
    /// Done, but after the deadline.
    MissedThenDone { at: DateTime<Utc> },
    /// Not done; more than the due-soon window left.
    Pending,
    /// Not done; due within the window (or due right now).
    DueSoon,
    /// Not done and past the deadline.
    Overdue,
}

impl DeadlineState {
    /// Missed, whether done since or not: what the timeliness statistics count (R-A3).
    pub fn is_missed(self) -> bool {
        matches!(
            self,
            DeadlineState::MissedThenDone { .. } | DeadlineState::Overdue
        )
    }

    /// Still waiting to be done.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            DeadlineState::Pending | DeadlineState::DueSoon | DeadlineState::Overdue
        )
    }
}

/// Classify a deadline at `now`. Done at `due_at` exactly is met; not done at
/// `due_at` exactly is due soon, overdue only after it.
pub fn assess(
    due_at: DateTime<Utc>,
    done_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    due_soon_window: Duration,
) -> DeadlineState {
    match done_at {
        Some(at) if at <= due_at => DeadlineState::Met { at },
        Some(at) => DeadlineState::MissedThenDone { at },
        None if now > due_at => DeadlineState::Overdue,
        None if due_at - now <= due_soon_window => DeadlineState::DueSoon,
        None => DeadlineState::Pending,
    }
}

/// R-P1 (and R-P2): arrival is due 15 minutes after dispatch; once an
/// appointment is booked with the owner, the appointment is the deadline
/// instead, earlier or later. A reassignment restarts the clock: pass the
/// latest dispatch. That an earlier 15-minute deadline was missed before the
/// appointment was booked is history the scheduler records when it fires;
/// this says what is due now.
pub fn r_p1_arrival_deadline(
    dispatched_at: DateTime<Utc>,
    appointment_at: Option<DateTime<Utc>>,
) -> Deadline {
    match appointment_at {
        Some(appointment_at) => Deadline {
            rule: RuleId::P1,
            duty: Duty::Arrival,
            due_at: appointment_at,
            basis: Basis::Appointment,
            counted_from: appointment_at,
        },
        None => Deadline {
            rule: RuleId::P1,
            duty: Duty::Arrival,
            due_at: dispatched_at + Duration::minutes(R_P1_ARRIVAL_WINDOW_MINUTES),
            basis: Basis::Dispatch,
            counted_from: dispatched_at,
        },
    }
}

/// R-P2: a booked work order (R-S2) is arrived at by the time agreed with the
/// owner: the time itself, or the end of the agreed window. Not 15 minutes
/// after dispatch: a booking is dispatched ahead of its day.
pub fn r_p2_arrival_deadline(agreed_time: AgreedTime) -> Deadline {
    Deadline {
        rule: RuleId::P2,
        duty: Duty::Arrival,
        due_at: agreed_time.arrive_by(),
        basis: Basis::Appointment,
        counted_from: agreed_time.starts_at(),
    }
}

/// R-K2: a work order is finished by the end of the local day it was
/// received; in a public area by the end of the local day three calendar days
/// later ("within 3 days": received Monday, due by Thursday 23:59:59).
/// Calendar days, not working days: SPEC counts the same day that way, and
/// a public area is kept up at weekends too. For a booking (R-S2) pass the
/// service date's start as `received_at`.
pub fn r_k2_finish_deadline(
    calendar: &WorkingCalendar,
    received_at: DateTime<Utc>,
    area: Area,
) -> Deadline {
    Deadline {
        rule: RuleId::K2,
        duty: Duty::Finish,
        due_at: end_of_day_window(calendar, received_at, area),
        basis: Basis::Receipt,
        counted_from: received_at,
    }
}

/// R-C2: a work order that cannot be finished in its R-K2 window is
/// converted into a coordination ticket by the window's end: pass the
/// order's R-K2 deadline. Overdue (strictly after `due_at`) and not
/// finished, it must be converted now.
pub fn r_c2_conversion_deadline(finish: Deadline) -> Deadline {
    Deadline {
        rule: RuleId::C2,
        duty: Duty::Convert,
        ..finish
    }
}

/// R-C1: the department lead returns a finished order to the dispatcher by
/// the end of the local day it was finished; a public-area order by the end
/// of the local day three calendar days later. The clock counts from
/// completion, because nothing can be returned before it is finished; the
/// window to finish is R-K2's.
pub fn r_c1_return_deadline(
    calendar: &WorkingCalendar,
    finished_at: DateTime<Utc>,
    area: Area,
) -> Deadline {
    Deadline {
        rule: RuleId::C1,
        duty: Duty::ReturnToDispatcher,
        due_at: end_of_day_window(calendar, finished_at, area),
        basis: Basis::Completion,
        counted_from: finished_at,
    }
}

/// R-P3: the department books a site inspection within 0.5 working day of
/// issue: half the calendar's daily working hours, counted in working time
/// only; an issue outside working hours counts from the next opening (Friday
/// 16:00 + 4.5 h of an 08:30-17:30 day is Monday 11:30). Done when the
/// booking is recorded, whenever the inspection itself takes place.
pub fn r_p3_site_inspection_deadline(
    calendar: &WorkingCalendar,
    issued_at: DateTime<Utc>,
) -> Deadline {
    Deadline {
        rule: RuleId::P3,
        duty: Duty::BookSiteInspection,
        due_at: calendar.add_working_duration(issued_at, calendar.working_day_duration() / 2),
        basis: Basis::Issue,
        counted_from: issued_at,
    }
}

/// R-P3: the specialist replies to the owner within 24 hours of issue, by the
/// clock, nights and weekends included: the owner is waiting either way.
pub fn r_p3_owner_reply_deadline(issued_at: DateTime<Utc>) -> Deadline {
    Deadline {
        rule: RuleId::P3,
        duty: Duty::ReplyToOwner,
        due_at: issued_at + Duration::hours(R_P3_OWNER_REPLY_WINDOW_HOURS),
        basis: Basis::Issue,
        counted_from: issued_at,
    }
}

/// An R-P4 tracking cadence: `duty` at least every `every_days` days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cadence {
    pub duty: Duty,
    pub every_days: u32,
}

/// R-P4: the cadences an open ticket runs. "Kind" is read as SPEC uses the
/// word, the three kinds of R-K (categories are R-S1's word):
/// - a coordination ticket: a specialist's check every 3 days and a progress
///   report to the owner every 5 days;
/// - a coordination ticket whose category is owner communication: the check
///   every 3 days and a reply to the owner every 3 days (instead of 5);
/// - any other kind still open (a work order, a verbal dispatch): a recorded
///   check at least once a week.
///
/// A reply to the owner of any sort (the first R-P3 reply, a progress report)
/// restarts the reply cadence; so R-C4's 3-day review of unclosed
/// coordination tickets is the same clock as the specialist's check.
pub fn r_p4_cadences(kind: TicketKind, category: Category) -> &'static [Cadence] {
    const COORDINATION: [Cadence; 2] = [
        Cadence {
            duty: Duty::Check,
            every_days: R_P4_SPECIALIST_CHECK_DAYS,
        },
        Cadence {
            duty: Duty::ReplyToOwner,
            every_days: R_P4_PROGRESS_REPORT_DAYS,
        },
    ];
    const OWNER_COMMUNICATION: [Cadence; 2] = [
        Cadence {
            duty: Duty::Check,
            every_days: R_P4_SPECIALIST_CHECK_DAYS,
        },
        Cadence {
            duty: Duty::ReplyToOwner,
            every_days: R_P4_OWNER_COMMUNICATION_REPLY_DAYS,
        },
    ];
    const OTHER_KIND: [Cadence; 1] = [Cadence {
        duty: Duty::Check,
        every_days: R_P4_OTHER_KIND_CHECK_DAYS,
    }];
    match (kind, category) {
        (TicketKind::CoordinationTicket, Category::OwnerCommunication) => &OWNER_COMMUNICATION,
        (TicketKind::CoordinationTicket, _) => &COORDINATION,
        (TicketKind::WorkOrder | TicketKind::VerbalDispatch, _) => &OTHER_KIND,
    }
}

/// R-P4: when the next `cadence.duty` is due. The clock runs from the last
/// recorded record of that duty, or from the issue when there is none (or
/// the last one predates the issue, e.g. a check on the work order before its
/// conversion), and the duty is due by the end of the local day `every_days`
/// calendar days after that day: checked Monday 10:00 every 3 days, the next
/// check is due by Thursday 23:59:59. Days, not hours, because the
/// specialists work through their list by the day (R-C4).
pub fn r_p4_next_due(
    calendar: &WorkingCalendar,
    cadence: Cadence,
    issued_at: DateTime<Utc>,
    last_done_at: Option<DateTime<Utc>>,
) -> Deadline {
    let (basis, counted_from) = match last_done_at {
        Some(last) if last >= issued_at => (Basis::LastRecord, last),
        _ => (Basis::Issue, issued_at),
    };
    let due_date = calendar.local_date(counted_from) + Duration::days(cadence.every_days.into());
    Deadline {
        rule: RuleId::P4,
        duty: cadence.duty,
        due_at: calendar.end_of_local_date(due_date),
        basis,
        counted_from,
    }
}

/// One attempt to talk to the owner about a coordination ticket (R-P5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerContact {
    pub at: DateTime<Utc>,
    pub outcome: ContactOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactOutcome {
    /// 联系不上: the owner could not be reached this time.
    NotReached,
    /// Reached, and no proposal was turned down.
    Reached,
    /// Reached, and the owner rejected the proposed solution (不接受方案).
    ProposalRejected,
}

/// Why a ticket is escalated (R-P5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// 业主联系不上.
    OwnerUnreachable,
    /// 业主一周内两次拒绝方案.
    ProposalsRejected,
}

/// An escalation: the coordinator and customer service talk to the owner
/// together (R-P5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub rule: RuleId,
    pub reason: EscalationReason,
    /// The contact that made the case: escalation is due from then.
    pub at: DateTime<Utc>,
    /// The first contact of the evidence (first failed attempt, first rejection).
    pub since: DateTime<Utc>,
}

/// R-P5: the first escalation the owner contacts call for, if any, in time
/// order (the input need not be sorted).
/// - The owner cannot be reached: failed attempts with no successful contact
///   between them, spanning at least 24 hours from the first to the latest.
///   One missed call is not "cannot be reached"; a day of trying is.
/// - Two proposals rejected within one week: two rejections at most 7 × 24 h
///   apart (8 days apart is not), whatever came between them.
pub fn r_p5_escalation(contacts: &[OwnerContact]) -> Option<Escalation> {
    let mut in_time_order: Vec<&OwnerContact> = contacts.iter().collect();
    in_time_order.sort_by_key(|contact| contact.at);
    let mut unreached_since: Option<DateTime<Utc>> = None;
    let mut rejections: Vec<DateTime<Utc>> = Vec::new();
    for contact in in_time_order {
        match contact.outcome {
            ContactOutcome::NotReached => {
                let since = *unreached_since.get_or_insert(contact.at);
                if contact.at - since >= Duration::hours(R_P5_UNREACHED_SPAN_HOURS) {
                    return Some(Escalation {
                        rule: RuleId::P5,
                        reason: EscalationReason::OwnerUnreachable,
                        at: contact.at,
                        since,
                    });
                }
            }
            ContactOutcome::Reached => unreached_since = None,
            ContactOutcome::ProposalRejected => {
                unreached_since = None;
                rejections.push(contact.at);
                let window_start = contact.at - Duration::days(R_P5_REJECTION_WINDOW_DAYS);
                let in_window: Vec<&DateTime<Utc>> = rejections
                    .iter()
                    .filter(|at| **at >= window_start)
                    .collect();
                if in_window.len() >= R_P5_REJECTED_PROPOSALS {
                    return Some(Escalation {
                        rule: RuleId::P5,
                        reason: EscalationReason::ProposalsRejected,
                        at: contact.at,
                        since: *in_window[0],
                    });
                }
            }
        }
    }
    None
}

/// R-P5: the joint talk with the owner is due within 24 hours of the
/// escalation, by the clock. SPEC sets no window; this is R-P3's for a reply
/// to the owner, who is waiting either way.
pub fn r_p5_joint_talk_deadline(escalation: &Escalation) -> Deadline {
    Deadline {
        rule: RuleId::P5,
        duty: Duty::JointTalk,
        due_at: escalation.at + Duration::hours(R_P5_JOINT_TALK_WINDOW_HOURS),
        basis: Basis::Escalation,
        counted_from: escalation.at,
    }
}

/// R-F1: the follow-up is due within 24 hours of closure, by the clock.
pub fn r_f1_follow_up_deadline(closed_at: DateTime<Utc>) -> Deadline {
    Deadline {
        rule: RuleId::F1,
        duty: Duty::FollowUp,
        due_at: closed_at + Duration::hours(R_F1_FOLLOW_UP_WINDOW_HOURS),
        basis: Basis::Closure,
        counted_from: closed_at,
    }
}

/// R-F1 sampling: every coordination ticket; every paid work order; a free
/// work order unless the owner rated it "satisfied" 满意 (basically satisfied,
/// dissatisfied or no rating are all followed up). A work order whose charge
/// was never recorded is followed up: it cannot be shown to be free. A
/// verbal dispatch is not followed up (R-F1 names work orders and
/// coordination tickets only).
pub fn needs_follow_up(kind: TicketKind, charge: Option<&Charge>, rating: Option<Rating>) -> bool {
    match kind {
        TicketKind::CoordinationTicket => true,
        TicketKind::VerbalDispatch => false,
        TicketKind::WorkOrder => match charge {
            Some(Charge::Free {}) => rating != Some(Rating::Satisfied),
            Some(Charge::Paid { .. }) | None => true,
        },
    }
}

/// When a device-recorded event happened, as far as the server can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectedTime {
    /// The time to judge the event by.
    pub at: DateTime<Utc>,
    /// False when `at` is the sync arrival time, not the device's; such
    /// events are shown to reviewers.
    pub trusted: bool,
    pub reason: ClockJudgement,
}

/// Why a device time was or was not trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockJudgement {
    /// Trusted: the device time plus the measured offset.
    CorrectedDeviceClock,
    /// The device clock was off by more than 10 minutes at the last contact.
    OffsetBeyondBound,
    /// The corrected time lies after the server received the event.
    AfterReceipt,
    /// The corrected time lies more than 7 days before the server received it.
    TooLongBeforeReceipt,
}

/// The time an offline event (an arrival, R-P1) is judged by: the device's
/// clock corrected by its measured offset (server minus device time at the
/// last contact), so that an arrival recorded in a basement at 09:10 is on
/// time even though it reached the server at 11:00.
///
/// How far the device is trusted, and why:
/// - The offset must be within ±10 minutes. A phone clock set by the network
///   drifts by seconds; minutes mean the automatic time is off and someone
///   may have set the clock by hand. Beyond 10 minutes an error in the offset
///   is comparable to R-P1's 15-minute window, and a clock that was set by
///   hand may have been set again between the event and the last contact,
///   so no correction is safe.
/// - The corrected time cannot lie after the server received the event: the
///   event happened before its upload. (The offset measured in the same
///   request cannot cause this; a clock changed since the measurement can.)
/// - It cannot lie more than 7 days before receipt: no handheld works that
///   long offline, so such a time is a wrong clock (or a device left in a
///   drawer), and either way a human must look.
///
/// Beyond the bound the event is judged by `received_at`, marked untrusted.
/// The arrival time is an upper bound on when the event happened, so an
/// untrusted arrival can only look later than it was, never earlier: a
/// reviewer may excuse a false "late", while a false "on time" would hide a
/// missed deadline.
pub fn corrected_event_time(
    device_recorded_at: DateTime<Utc>,
    clock_offset_ms: i64,
    received_at: DateTime<Utc>,
) -> CorrectedTime {
    let untrusted = |reason| CorrectedTime {
        at: received_at,
        trusted: false,
        reason,
    };
    if clock_offset_ms.unsigned_abs() > CLOCK_OFFSET_TRUST_MS.unsigned_abs() {
        return untrusted(ClockJudgement::OffsetBeyondBound);
    }
    let Some(corrected) =
        device_recorded_at.checked_add_signed(Duration::milliseconds(clock_offset_ms))
    else {
        return untrusted(ClockJudgement::OffsetBeyondBound);
    };
    if corrected > received_at {
        return untrusted(ClockJudgement::AfterReceipt);
    }
    if corrected < received_at - Duration::days(DEVICE_EVENT_MAX_AGE_DAYS) {
        return untrusted(ClockJudgement::TooLongBeforeReceipt);
    }
    CorrectedTime {
        at: corrected,
        trusted: true,
        reason: ClockJudgement::CorrectedDeviceClock,
    }
}

/// The end of the local day of `at`, or of the day 3 calendar days later in
/// a public area (R-K2, R-C1).
fn end_of_day_window(calendar: &WorkingCalendar, at: DateTime<Utc>, area: Area) -> DateTime<Utc> {
    let extra_days = match area {
        Area::PrivateUnit => 0,
        Area::PublicArea => R_K2_PUBLIC_AREA_WINDOW_DAYS,
    };
    calendar.end_of_local_date(calendar.local_date(at) + Duration::days(extra_days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::tests::{national_day_calendar, shanghai};
    use chrono::TimeZone;

    fn end_of(month: u32, day: u32) -> DateTime<Utc> {
        shanghai(month, day, 0, 0) + Duration::days(1) - Duration::nanoseconds(1)
    }

    fn contact(at: DateTime<Utc>, outcome: ContactOutcome) -> OwnerContact {
        OwnerContact { at, outcome }
    }

    #[test]
    fn rule_ids_are_written_as_in_the_spec() {
        assert_eq!(serde_json::to_value(RuleId::P1).unwrap(), "R-P1");
        assert_eq!(
            serde_json::from_value::<RuleId>("R-C2".into()).unwrap(),
            RuleId::C2
        );
        assert_eq!(RuleId::F1.to_string(), "R-F1");
        let deadline = r_p3_owner_reply_deadline(shanghai(11, 27, 9, 0));
        let json = serde_json::to_value(deadline).unwrap();
        assert_eq!(json["rule"], "R-P3");
        assert_eq!(json["duty"], "reply_to_owner");
        assert_eq!(json["basis"], "issue");
    }

    #[test]
    fn r_p1_arrival_is_due_fifteen_minutes_after_dispatch() {
        let deadline = r_p1_arrival_deadline(shanghai(11, 27, 9, 0), None);
        assert_eq!(deadline.rule, RuleId::P1);
        assert_eq!(deadline.due_at, shanghai(11, 27, 9, 15));
        assert_eq!(deadline.basis, Basis::Dispatch);
    }

    #[test]
    fn r_p1_an_appointment_replaces_the_fifteen_minute_deadline() {
        let later = r_p1_arrival_deadline(shanghai(11, 27, 9, 0), Some(shanghai(11, 27, 14, 0)));
        assert_eq!(later.due_at, shanghai(11, 27, 14, 0));
        assert_eq!(later.basis, Basis::Appointment);
        let earlier = r_p1_arrival_deadline(shanghai(11, 27, 9, 0), Some(shanghai(11, 27, 9, 5)));
        assert_eq!(earlier.due_at, shanghai(11, 27, 9, 5));
    }

    #[test]
    fn r_p2_a_booking_is_due_at_its_agreed_time_or_the_end_of_its_window() {
        let at = AgreedTime::At {
            at: shanghai(11, 29, 9, 30),
        };
        let deadline = r_p2_arrival_deadline(at);
        assert_eq!(
            (deadline.rule, deadline.duty, deadline.due_at),
            (RuleId::P2, Duty::Arrival, shanghai(11, 29, 9, 30))
        );
        let window = AgreedTime::Window {
            from: shanghai(11, 29, 14, 0),
            until: shanghai(11, 29, 16, 0),
        };
        let deadline = r_p2_arrival_deadline(window);
        assert_eq!(deadline.due_at, shanghai(11, 29, 16, 0));
        assert_eq!(deadline.counted_from, shanghai(11, 29, 14, 0));
    }

    #[test]
    fn r_k2_a_private_work_order_is_due_by_the_end_of_the_local_day_it_was_received() {
        let calendar = WorkingCalendar::default();
        let deadline = r_k2_finish_deadline(&calendar, shanghai(11, 27, 9, 0), Area::PrivateUnit);
        assert_eq!(deadline.due_at, end_of(11, 27));
        assert_eq!(
            calendar.local_time(deadline.due_at).to_string()[..19],
            *"2026-11-27 23:59:59"
        );
    }

    #[test]
    fn r_k2_a_work_order_received_at_23_30_utc_belongs_to_the_next_shanghai_day() {
        let calendar = WorkingCalendar::default();
        let received_at = Utc.with_ymd_and_hms(2026, 11, 27, 23, 30, 0).unwrap();
        let deadline = r_k2_finish_deadline(&calendar, received_at, Area::PrivateUnit);
        assert_eq!(deadline.due_at, end_of(11, 28));
        // And one received at 15:59 UTC is still on the 27th, with minutes to go.
        let received_at = Utc.with_ymd_and_hms(2026, 11, 27, 15, 59, 0).unwrap();
        let deadline = r_k2_finish_deadline(&calendar, received_at, Area::PrivateUnit);
        assert_eq!(deadline.due_at, end_of(11, 27));
    }

    #[test]
    fn r_k2_a_public_area_work_order_has_until_the_end_of_the_third_local_day_after() {
        let calendar = WorkingCalendar::default();
        // Friday 11-27 17:00: Saturday and Sunday count; due Monday 11-30 23:59:59.
        let deadline = r_k2_finish_deadline(&calendar, shanghai(11, 27, 17, 0), Area::PublicArea);
        assert_eq!(deadline.due_at, end_of(11, 30));
    }

    #[test]
    fn r_c2_an_unfinished_work_order_must_be_converted_once_its_window_has_passed() {
        let calendar = WorkingCalendar::default();
        let received_at = shanghai(11, 27, 9, 0);
        let conversion =
            |area| r_c2_conversion_deadline(r_k2_finish_deadline(&calendar, received_at, area));
        let must_convert = |area, finished_at, now| {
            conversion(area).assess(finished_at, now, Duration::zero()) == DeadlineState::Overdue
        };
        let private = Area::PrivateUnit;
        let deadline = conversion(private);
        assert_eq!(
            (deadline.rule, deadline.duty, deadline.due_at),
            (RuleId::C2, Duty::Convert, end_of(11, 27))
        );
        assert!(!must_convert(private, None, end_of(11, 27)));
        assert!(must_convert(private, None, shanghai(11, 28, 0, 0)));
        let finished = Some(shanghai(11, 27, 16, 0));
        assert!(!must_convert(private, finished, shanghai(11, 28, 9, 0)));
        let public = Area::PublicArea;
        assert!(!must_convert(public, None, shanghai(11, 30, 12, 0)));
        assert!(must_convert(public, None, shanghai(12, 1, 0, 0)));
    }

    #[test]
    fn r_c1_a_finished_order_is_returned_the_same_day_or_within_three_days_in_a_public_area() {
        let calendar = WorkingCalendar::default();
        let finished_at = shanghai(11, 26, 16, 0);
        let private = r_c1_return_deadline(&calendar, finished_at, Area::PrivateUnit);
        assert_eq!((private.rule, private.due_at), (RuleId::C1, end_of(11, 26)));
        let public = r_c1_return_deadline(&calendar, finished_at, Area::PublicArea);
        assert_eq!(public.due_at, end_of(11, 29));
    }

    #[test]
    fn r_p3_half_a_working_day_from_friday_afternoon_lands_on_monday_morning() {
        let calendar = WorkingCalendar::default();
        let deadline = r_p3_site_inspection_deadline(&calendar, shanghai(11, 27, 16, 0));
        // 1.5 h on Friday, 3 h on Monday from 08:30.
        assert_eq!(deadline.due_at, shanghai(11, 30, 11, 30));
        assert_eq!(deadline.duty, Duty::BookSiteInspection);
    }

    #[test]
    fn r_p3_half_a_working_day_from_a_morning_lands_the_same_afternoon() {
        let calendar = WorkingCalendar::default();
        let deadline = r_p3_site_inspection_deadline(&calendar, shanghai(11, 26, 9, 0));
        assert_eq!(deadline.due_at, shanghai(11, 26, 13, 30));
    }

    #[test]
    fn r_p3_an_issue_on_a_weekend_night_counts_from_monday_opening() {
        let calendar = WorkingCalendar::default();
        let deadline = r_p3_site_inspection_deadline(&calendar, shanghai(11, 28, 22, 0));
        assert_eq!(deadline.due_at, shanghai(11, 30, 13, 0));
        let early = r_p3_site_inspection_deadline(&calendar, shanghai(11, 30, 6, 0));
        assert_eq!(early.due_at, shanghai(11, 30, 13, 0));
    }

    #[test]
    fn r_p3_an_issue_before_a_holiday_week_is_booked_after_it_and_an_extra_working_day_counts() {
        let calendar = national_day_calendar();
        // Wednesday 09-30 15:00: 2.5 h that day, 2 h on Thursday 10-08.
        let deadline = r_p3_site_inspection_deadline(&calendar, shanghai(9, 30, 15, 0));
        assert_eq!(deadline.due_at, shanghai(10, 8, 10, 30));
        // Friday 10-09 16:00: 1.5 h that day, 3 h on Saturday 10-10 (调休).
        let deadline = r_p3_site_inspection_deadline(&calendar, shanghai(10, 9, 16, 0));
        assert_eq!(deadline.due_at, shanghai(10, 10, 11, 30));
    }

    #[test]
    fn r_p3_the_owner_reply_is_due_24_hours_after_issue_nights_and_weekends_included() {
        let deadline = r_p3_owner_reply_deadline(shanghai(11, 27, 16, 0));
        assert_eq!(deadline.due_at, shanghai(11, 28, 16, 0));
    }

    #[test]
    fn r_p4_a_coordination_ticket_is_checked_every_3_days_and_reported_every_5() {
        let cadences = r_p4_cadences(TicketKind::CoordinationTicket, Category::Repair);
        let as_pairs: Vec<(Duty, u32)> = cadences.iter().map(|c| (c.duty, c.every_days)).collect();
        assert_eq!(as_pairs, [(Duty::Check, 3), (Duty::ReplyToOwner, 5)]);
        let cadences = r_p4_cadences(TicketKind::CoordinationTicket, Category::OwnerCommunication);
        let as_pairs: Vec<(Duty, u32)> = cadences.iter().map(|c| (c.duty, c.every_days)).collect();
        assert_eq!(as_pairs, [(Duty::Check, 3), (Duty::ReplyToOwner, 3)]);
        let cadences = r_p4_cadences(TicketKind::WorkOrder, Category::Repair);
        let as_pairs: Vec<(Duty, u32)> = cadences.iter().map(|c| (c.duty, c.every_days)).collect();
        assert_eq!(as_pairs, [(Duty::Check, 7)]);
    }

    #[test]
    fn r_p4_the_check_cadence_runs_from_the_last_check() {
        let calendar = WorkingCalendar::default();
        let check = r_p4_cadences(TicketKind::CoordinationTicket, Category::Repair)[0];
        let issued_at = shanghai(11, 23, 10, 0);
        let first = r_p4_next_due(&calendar, check, issued_at, None);
        assert_eq!((first.basis, first.due_at), (Basis::Issue, end_of(11, 26)));
        let next = r_p4_next_due(&calendar, check, issued_at, Some(shanghai(11, 25, 18, 0)));
        assert_eq!(
            (next.basis, next.due_at),
            (Basis::LastRecord, end_of(11, 28))
        );
        assert_eq!(next.counted_from, shanghai(11, 25, 18, 0));
    }

    #[test]
    fn r_p4_a_record_before_the_conversion_does_not_start_the_cadence() {
        let calendar = WorkingCalendar::default();
        let reply = r_p4_cadences(TicketKind::CoordinationTicket, Category::Repair)[1];
        let converted_at = shanghai(11, 23, 10, 0);
        let deadline = r_p4_next_due(&calendar, reply, converted_at, Some(shanghai(11, 22, 9, 0)));
        assert_eq!(
            (deadline.basis, deadline.due_at),
            (Basis::Issue, end_of(11, 28))
        );
    }

    #[test]
    fn r_p4_the_cadence_day_is_the_local_day_in_shanghai() {
        let calendar = WorkingCalendar::default();
        let check = r_p4_cadences(TicketKind::VerbalDispatch, Category::Security)[0];
        // 23:30 UTC on 11-20 is 07:30 on 11-21 in Shanghai.
        let issued_at = Utc.with_ymd_and_hms(2026, 11, 20, 23, 30, 0).unwrap();
        assert_eq!(
            r_p4_next_due(&calendar, check, issued_at, None).due_at,
            end_of(11, 28)
        );
    }

    #[test]
    fn r_p5_two_rejected_proposals_within_a_week_escalate() {
        let contacts = [
            contact(shanghai(11, 20, 10, 0), ContactOutcome::ProposalRejected),
            contact(shanghai(11, 22, 10, 0), ContactOutcome::Reached),
            contact(shanghai(11, 27, 10, 0), ContactOutcome::ProposalRejected),
        ];
        let escalation = r_p5_escalation(&contacts).unwrap();
        assert_eq!(escalation.reason, EscalationReason::ProposalsRejected);
        assert_eq!(escalation.at, shanghai(11, 27, 10, 0));
        assert_eq!(escalation.since, shanghai(11, 20, 10, 0));
        assert_eq!(escalation.rule, RuleId::P5);
    }

    #[test]
    fn r_p5_two_rejected_proposals_8_days_apart_do_not_escalate() {
        let contacts = [
            contact(shanghai(11, 28, 10, 0), ContactOutcome::ProposalRejected),
            contact(shanghai(11, 20, 10, 0), ContactOutcome::ProposalRejected),
        ];
        assert_eq!(r_p5_escalation(&contacts), None);
    }

    #[test]
    fn r_p5_an_owner_not_reached_for_a_day_of_attempts_escalates() {
        let contacts = [
            contact(shanghai(11, 26, 10, 0), ContactOutcome::NotReached),
            contact(shanghai(11, 26, 15, 0), ContactOutcome::NotReached),
            contact(shanghai(11, 27, 10, 0), ContactOutcome::NotReached),
        ];
        let escalation = r_p5_escalation(&contacts).unwrap();
        assert_eq!(escalation.reason, EscalationReason::OwnerUnreachable);
        assert_eq!(escalation.at, shanghai(11, 27, 10, 0));
        assert_eq!(escalation.since, shanghai(11, 26, 10, 0));
    }

    #[test]
    fn r_p5_one_missed_call_or_a_contact_in_between_is_not_unreachable() {
        let once = [contact(shanghai(11, 26, 10, 0), ContactOutcome::NotReached)];
        assert_eq!(r_p5_escalation(&once), None);
        let reached_between = [
            contact(shanghai(11, 26, 10, 0), ContactOutcome::NotReached),
            contact(shanghai(11, 26, 18, 0), ContactOutcome::Reached),
            contact(shanghai(11, 27, 10, 0), ContactOutcome::NotReached),
        ];
        assert_eq!(r_p5_escalation(&reached_between), None);
    }

    #[test]
    fn r_p5_the_joint_talk_is_due_24_hours_after_the_escalation() {
        let contacts = [
            contact(shanghai(11, 26, 10, 0), ContactOutcome::ProposalRejected),
            contact(shanghai(11, 27, 16, 0), ContactOutcome::ProposalRejected),
        ];
        let escalation = r_p5_escalation(&contacts).unwrap();
        let deadline = r_p5_joint_talk_deadline(&escalation);
        assert_eq!(
            (deadline.rule, deadline.duty, deadline.basis),
            (RuleId::P5, Duty::JointTalk, Basis::Escalation)
        );
        assert_eq!(deadline.due_at, shanghai(11, 28, 16, 0));
        assert_eq!(deadline.counted_from, escalation.at);
    }

    #[test]
    fn r_f1_sampling_follows_every_paid_order_every_coordination_ticket_and_unhappy_free_orders() {
        use TicketKind::{CoordinationTicket, VerbalDispatch, WorkOrder};
        let free = Charge::Free {};
        let paid = Charge::Paid { fee_fen: 5000 };
        let ratings = [
            None,
            Some(Rating::Satisfied),
            Some(Rating::BasicallySatisfied),
            Some(Rating::Dissatisfied),
        ];
        let table = [
            // (kind, charge, [none, 满意, 基本满意, 不满意])
            (WorkOrder, Some(&paid), [true, true, true, true]),
            (WorkOrder, Some(&free), [true, false, true, true]),
            (WorkOrder, None, [true, true, true, true]),
            (CoordinationTicket, Some(&free), [true, true, true, true]),
            (CoordinationTicket, None, [true, true, true, true]),
            (VerbalDispatch, Some(&free), [false, false, false, false]),
        ];
        for (kind, charge, expected) in table {
            for (rating, expected) in ratings.into_iter().zip(expected) {
                assert_eq!(
                    needs_follow_up(kind, charge, rating),
                    expected,
                    "{kind:?} {charge:?} {rating:?}"
                );
            }
        }
    }

    #[test]
    fn r_f1_the_follow_up_is_due_24_hours_after_closure() {
        let deadline = r_f1_follow_up_deadline(shanghai(11, 27, 17, 0));
        assert_eq!((deadline.rule, deadline.duty), (RuleId::F1, Duty::FollowUp));
        assert_eq!(deadline.due_at, shanghai(11, 28, 17, 0));
    }

    #[test]
    fn a_deadline_is_met_missed_pending_due_soon_or_overdue() {
        let due_at = shanghai(11, 27, 9, 15);
        let window = Duration::minutes(10);
        let at = |minute| shanghai(11, 27, 9, minute);
        assert_eq!(
            assess(due_at, Some(due_at), at(30), window),
            DeadlineState::Met { at: due_at }
        );
        assert_eq!(
            assess(due_at, Some(at(16)), at(30), window),
            DeadlineState::MissedThenDone { at: at(16) }
        );
        assert_eq!(assess(due_at, None, at(4), window), DeadlineState::Pending);
        assert_eq!(assess(due_at, None, at(5), window), DeadlineState::DueSoon);
        assert_eq!(assess(due_at, None, due_at, window), DeadlineState::DueSoon);
        assert_eq!(
            assess(due_at, None, due_at + Duration::seconds(1), window),
            DeadlineState::Overdue
        );
        assert!(DeadlineState::Overdue.is_missed());
        assert!(!DeadlineState::DueSoon.is_missed());
        let json = serde_json::to_value(DeadlineState::Met { at: due_at }).unwrap();
        assert_eq!(json["state"], "met");
    }

    #[test]
    fn r_p1_an_arrival_recorded_offline_is_judged_by_the_corrected_device_time() {
        let dispatched_at = shanghai(11, 27, 9, 0);
        // The device runs 3 minutes slow: it said 09:09, it was 09:12.
        let corrected = corrected_event_time(
            shanghai(11, 27, 9, 9),
            3 * 60 * 1000,
            shanghai(11, 27, 11, 0),
        );
        assert_eq!(
            corrected,
            CorrectedTime {
                at: shanghai(11, 27, 9, 12),
                trusted: true,
                reason: ClockJudgement::CorrectedDeviceClock
            }
        );
        let deadline = r_p1_arrival_deadline(dispatched_at, None);
        assert!(matches!(
            deadline.assess(
                Some(corrected.at),
                shanghai(11, 27, 11, 0),
                Duration::zero()
            ),
            DeadlineState::Met { .. }
        ));
    }

    #[test]
    fn a_device_clock_off_by_more_than_10_minutes_is_not_trusted() {
        let received_at = shanghai(11, 27, 11, 0);
        for offset_ms in [
            10 * 60 * 1000 + 1,
            -(10 * 60 * 1000 + 1),
            i64::MIN,
            i64::MAX,
        ] {
            let corrected = corrected_event_time(shanghai(11, 27, 9, 9), offset_ms, received_at);
            assert_eq!(
                (corrected.at, corrected.trusted, corrected.reason),
                (received_at, false, ClockJudgement::OffsetBeyondBound),
                "{offset_ms}"
            );
        }
        let at_the_bound = corrected_event_time(shanghai(11, 27, 9, 9), -600_000, received_at);
        assert_eq!(at_the_bound.at, shanghai(11, 27, 8, 59));
        assert!(at_the_bound.trusted);
    }

    #[test]
    fn a_corrected_time_after_receipt_or_over_a_week_before_it_is_not_trusted() {
        let received_at = shanghai(11, 27, 11, 0);
        let future = corrected_event_time(shanghai(11, 27, 10, 59), 2 * 60 * 1000, received_at);
        assert_eq!(
            (future.at, future.trusted, future.reason),
            (received_at, false, ClockJudgement::AfterReceipt)
        );
        let ancient = corrected_event_time(shanghai(11, 20, 10, 59), 0, received_at);
        assert_eq!(
            (ancient.at, ancient.trusted, ancient.reason),
            (received_at, false, ClockJudgement::TooLongBeforeReceipt)
        );
        let a_week = corrected_event_time(shanghai(11, 20, 11, 0), 0, received_at);
        assert!(a_week.trusted);
    }
}
