//! The reports of SPEC.md as pure functions over tickets: the daily list of
//! unclosed tickets with a responsible person per item (R-C4), the monthly
//! statistics with the analysis of every unclosed item (R-A3), and the
//! monthly archive of the numbered forms (R-A2).
//!
//! Each takes the estate's tickets one at a time (a builder's `add`), so the
//! server can feed them page by page without holding the estate in memory,
//! and each does a constant amount of work per ticket (plus its history and
//! tracking records, read once).
//!
//! The monthly reports see a ticket only through its [`ReportDigest`]: what
//! they need of it, and nothing that depends on the moment or the calendar
//! they are made in. So the server stores each ticket's digest beside it,
//! in the same atomic write, and a monthly report reads the digests of its
//! month, never a whole ticket (docs/BENCHMARKS.md, "Reports"). Adding a
//! ticket and adding its stored digest are the same computation.
//!
//! Time is always a parameter: the daily list is as of the last instant of
//! its local day, the monthly statistics as of `now`.
//!
//! What is counted where, precisely:
//!
//! - A ticket belongs to the month it was *received* in, in the estate's
//!   local calendar. A work order converted into a coordination ticket
//!   (R-C2) is counted twice: as a work order (status `converted`) and as
//!   the coordination ticket, which keeps the work order's receipt time.
//! - The archive (R-A2) files the numbered forms: a work order or a
//!   coordination ticket belongs to the month of its serial number (R-A1),
//!   the month it was recorded or converted in; one without a number
//!   (recorded before numbers were given) to the month it was received in.
//! - Closure rate: closed tickets over the tickets still meant to be closed,
//!   that is, received minus cancelled minus converted (a converted work
//!   order's work goes on as its coordination ticket, which is counted).
//! - Paid/free (R-C5): closed engineering work orders (the ones the
//!   engineering dispatcher dispatches, R-D1), by the charge of the current
//!   result; one closed without a result is "not recorded".
//! - Timeliness: each duty counts once per ticket as met, missed (done late,
//!   or not done and past due) or pending (not done, not yet due). A duty of
//!   a ticket cancelled (or converted) before its deadline lapsed with it and
//!   is not counted. R-P1 counts dispatched work orders by the first arrival
//!   that the assigned technician recorded and that is not flagged late,
//!   judged by its corrected device time (`Fact::event_at`); R-P3 and R-P4 count coordination
//!   tickets; R-F1 counts closed tickets that need a follow-up
//!   ([`needs_follow_up`](crate::time_rules::needs_follow_up)), by the first
//!   follow-up recorded, reached or not. The moments a duty was done at are
//!   the ones `due.rs` finds for the due list and the scheduler.
//! - R-P4 (best effort): for each cadence of a coordination ticket, every
//!   check (or reply to the owner) while the ticket is open counts met when
//!   it came by the deadline the previous one set, missed otherwise; then
//!   the next one is pending, or missed when it is overdue (or was when the
//!   ticket stopped being open). A long gap counts as one miss, not one per
//!   period. Work orders have no check record yet, so their weekly check is
//!   not counted.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkingCalendar;
use crate::due::{
    counts_for, first_finish, r_f1_follow_up, r_k2_finish_from, r_p1_arrival,
    r_p3_inspection_booked_at, r_p3_owner_replied_at,
};
use crate::error::ParseError;
use crate::ids::{EstateId, TicketId, UserId};
use crate::roles::Role;
use crate::serial::{SerialKind, SerialMonth, SerialNumber, SerialSeries};
use crate::ticket::{
    Area, Category, Charge, HistoryEvent, MAX_FEE_FEN, Ticket, TicketKind, TrackingKind,
};
use crate::time_rules::{
    Cadence, Deadline, DeadlineState, Duty, RuleId, assess, r_p3_owner_reply_deadline,
    r_p3_site_inspection_deadline, r_p4_cadences, r_p4_next_due,
};
use crate::workflow::Status;

// ---- Wire types --------------------------------------------------------------

/// A month of the estate's calendar, written `YYYY-MM` (`2026-11`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReportMonth {
    year: i32,
    month: u32,
}

/// Who has to act on an unclosed ticket, for the morning meeting (R-C4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Responsible {
    /// The technician the ticket is assigned to: on the way, on site, or
    /// still to get the owner's signature (R-P7).
    Technician { user: UserId },
    /// The customer-service agent who took a verbal dispatch closes it (R-K1).
    Agent { user: UserId },
    /// No one person yet: the role whose turn it is, e.g. the dispatcher for
    /// an undispatched engineering work order (R-D1), the department manager
    /// for a coordination ticket's sign-off (R-C3).
    Role { role: Role },
}

/// A deadline of the ticket that the list judges: R-K2's window for a work
/// order, R-P4's next check for an open coordination ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleWindow {
    pub rule: RuleId,
    pub duty: Duty,
    pub due_at: DateTime<Utc>,
    /// Done late, or not done and past `due_at` at the list's moment.
    pub missed: bool,
}

/// One unclosed ticket of a list (R-C4) or of the monthly analysis (R-A3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnclosedItem {
    pub ticket_id: TicketId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<SerialNumber>,
    pub kind: TicketKind,
    pub category: Category,
    pub area: Area,
    pub location: String,
    pub description: String,
    /// The status at the list's moment.
    pub status: Status,
    pub received_at: DateTime<Utc>,
    /// Local calendar days from the day of receipt to the list's day (0:
    /// received that day).
    pub age_days: u32,
    pub responsible: Responsible,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<RuleWindow>,
}

/// R-C4: the tickets not closed, cancelled or converted at the end of a
/// local day, with a responsible person each, in order of receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyUnclosed {
    /// The local day.
    pub date: NaiveDate,
    /// The estate calendar's time zone, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    /// The last instant of `date`: the list shows the tickets as they were then.
    pub as_of: DateTime<Utc>,
    /// Unclosed work orders, for the front-desk lead's review and the next
    /// morning meeting.
    pub work_orders: Vec<UnclosedItem>,
    /// Unclosed coordination tickets, for the specialists' 3-day review.
    pub coordination_tickets: Vec<UnclosedItem>,
}

/// Tickets per kind (R-K1..R-K3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindCounts {
    pub verbal_dispatch: u64,
    pub work_order: u64,
    pub coordination_ticket: u64,
}

/// Tickets per category (R-S1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryCounts {
    pub repair: u64,
    pub rework: u64,
    pub environment: u64,
    pub security: u64,
    pub owner_communication: u64,
    pub home_service: u64,
    pub private_garden: u64,
}

/// Tickets per status at the report's moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCounts {
    pub received: u64,
    pub dispatched: u64,
    pub in_progress: u64,
    pub completed: u64,
    pub closed: u64,
    pub converted: u64,
    pub cancelled: u64,
}

/// R-C5: closed engineering work orders, paid or free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeCounts {
    pub paid: u64,
    pub free: u64,
    /// Closed without a current result, so without a charge.
    pub not_recorded: u64,
    /// The fees of the paid ones, in fen (0.01 CNY).
    pub paid_fee_fen: u64,
}

/// How many of the month's tickets are closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureCounts {
    pub closed: u64,
    pub cancelled: u64,
    pub converted: u64,
    /// Received minus cancelled minus converted.
    pub closable: u64,
    /// `closed / closable` in percent, rounded to two decimals; absent when
    /// nothing is closable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure_rate_percent: Option<f64>,
}

/// One duty's timeliness over the month's tickets (R-A3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTally {
    pub rule: RuleId,
    pub duty: Duty,
    pub met: u64,
    pub missed: u64,
    pub pending: u64,
}

/// A ticket named by a review point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRef {
    pub ticket_id: TicketId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<SerialNumber>,
}

/// R-A3: the customer-service manager's monthly statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthlyStatistics {
    pub month: ReportMonth,
    pub time_zone: String,
    /// The month's first instant in the estate's time zone.
    pub from: DateTime<Utc>,
    /// The next month's first instant (exclusive).
    pub until: DateTime<Utc>,
    /// The moment the statuses, ages and pending deadlines are judged at.
    pub generated_at: DateTime<Utc>,
    /// Tickets received in the month.
    pub received: u64,
    pub by_kind: KindCounts,
    pub by_category: CategoryCounts,
    pub by_status: StatusCounts,
    pub charges: ChargeCounts,
    pub closure: ClosureCounts,
    /// R-P1 arrival, R-P3 inspection booked and reply, R-P4 check and reply,
    /// R-F1 follow-up, in that order.
    pub timeliness: Vec<RuleTally>,
    /// Review point: closed work orders without the owner's signature over
    /// their current result (R-P7).
    pub missing_signatures: Vec<TicketRef>,
    /// Every ticket of the month still unclosed, in order of receipt.
    pub unclosed: Vec<UnclosedItem>,
}

/// One form of the monthly archive (R-A2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveEntry {
    /// Absent only on a ticket recorded before numbers were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<SerialNumber>,
    pub ticket_id: TicketId,
    pub category: Category,
    /// The status at the archive's moment.
    pub status: Status,
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// Paid or free by the current result (R-P6), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<Charge>,
}

/// R-A1: whether the month's numbers of one series run with no gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberingCheck {
    /// The last sequence the series handed out, by its counter.
    pub handed_out: u64,
    /// How many of the month's tickets carry a number of the series.
    pub numbered: u64,
    /// How many numbers from 1 to the last one handed out (or carried, if
    /// higher) no ticket carries.
    pub missing_count: u64,
    /// The first of them, at most [`MAX_LISTED_MISSING`], in order.
    pub missing: Vec<SerialNumber>,
    /// Numbers that more than one ticket carries, in order.
    pub duplicated: Vec<SerialNumber>,
    /// Tickets of this kind received in the month that carry no number.
    pub unnumbered: Vec<TicketId>,
    /// Nothing missing, nothing twice, nothing unnumbered.
    pub complete: bool,
}

/// The month's forms of one numbered kind (R-A2): the closed ones as the
/// pink copies are filed, paid apart from free, each list in serial-number
/// order as the white copies are; then the ones not closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSection {
    /// The month's series, e.g. `E01-WO-202611`.
    pub series: String,
    /// Closed, paid (有偿).
    pub paid: Vec<ArchiveEntry>,
    /// Closed, free (无偿).
    pub free: Vec<ArchiveEntry>,
    /// Closed without a result, so neither paid nor free.
    pub not_recorded: Vec<ArchiveEntry>,
    /// The fees of the paid ones, in fen (0.01 CNY).
    pub paid_fee_fen: u64,
    /// Not closed (yet): open, completed, cancelled or converted.
    pub not_closed: Vec<ArchiveEntry>,
    pub numbering: NumberingCheck,
}

/// R-A2: the monthly archive of the numbered forms, and the R-A1 check
/// that the month's numbers run with no gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthlyArchive {
    pub month: ReportMonth,
    pub time_zone: String,
    /// The month's first instant in the estate's time zone.
    pub from: DateTime<Utc>,
    /// The next month's first instant (exclusive).
    pub until: DateTime<Utc>,
    /// The moment the statuses are shown at.
    pub generated_at: DateTime<Utc>,
    /// Work orders (派工单, R-K2).
    pub work_orders: ArchiveSection,
    /// Coordination tickets (协调单, R-K3).
    pub coordination_tickets: ArchiveSection,
    /// Verbal dispatches (口头派工, R-K1) received in the month: recorded
    /// but without a form or a number, so not filed.
    pub verbal_dispatches: u64,
}

// ---- Report digests ---------------------------------------------------------------

/// What the monthly reports (R-A2, R-A3) need of one ticket as it is now:
/// what it counts as, the moments its duties are judged by, and its line of
/// the unclosed analysis. Nothing in it depends on the moment of a report or
/// on a calendar, so the digest made when the ticket was last written is the
/// one a report would make. Stored by the server beside the ticket; not a
/// wire type. Its times are pairs of integers (`epoch_time`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportDigest {
    pub ticket_id: TicketId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<SerialNumber>,
    pub kind: TicketKind,
    pub category: Category,
    pub status: Status,
    #[serde(with = "epoch_time")]
    pub received_at: DateTime<Utc>,
    /// When the ticket came into being, and so got its number (R-A1):
    /// recorded, or converted from a work order (R-C2).
    #[serde(with = "epoch_time")]
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_time")]
    pub closed_at: Option<DateTime<Utc>>,
    /// Paid or free, by the current result (R-P6, R-C5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<Charge>,
    /// The owner signed the current result (R-P7); looked for on closed and
    /// completed work orders only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
    /// When it was cancelled or converted: its duties still open lapsed then.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_time")]
    pub lapsed_at: Option<DateTime<Utc>>,
    /// R-P1, for a dispatched work order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<DutyDigest>,
    /// R-P3 and R-P4, for a coordination ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordination: Option<CoordinationDigest>,
    /// R-F1, for a closed ticket that needs a follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<DutyDigest>,
    /// Its line of the unclosed analysis, while it is not closed, cancelled
    /// or converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unclosed: Option<UnclosedDigest>,
}

/// A duty whose deadline needs no calendar (R-P1, R-F1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DutyDigest {
    #[serde(with = "epoch_time")]
    pub due_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_time")]
    pub done_at: Option<DateTime<Utc>>,
}

/// What R-P3 and R-P4 judge a coordination ticket by; its deadlines follow
/// from these in the estate's working calendar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationDigest {
    /// When it became a coordination ticket: its receipt, or the conversion.
    #[serde(with = "epoch_time")]
    pub issued_at: DateTime<Utc>,
    /// When it first stopped being open: R-P4 counts no further.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_time")]
    pub left_open_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_time")]
    pub inspection_booked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_time")]
    pub owner_replied_at: Option<DateTime<Utc>>,
    /// R-P4: the checks since the issue, in the order recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "epoch_time")]
    pub checks: Vec<DateTime<Utc>>,
    /// R-P4: the replies to the owner since the issue, in the order recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "epoch_time")]
    pub owner_replies: Vec<DateTime<Utc>>,
}

/// An unclosed ticket's line (R-C4, R-A3) without what depends on the moment
/// of the list (its age, whether its window is missed) or on the calendar
/// (the window's deadline). Whole, so that the daily list (from a ticket's
/// past state) and the monthly analysis (from a stored digest) lay their
/// lines out with one function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnclosedDigest {
    pub ticket_id: TicketId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<SerialNumber>,
    pub kind: TicketKind,
    pub category: Category,
    pub area: Area,
    pub location: String,
    pub description: String,
    pub status: Status,
    #[serde(with = "epoch_time")]
    pub received_at: DateTime<Utc>,
    pub responsible: Responsible,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowBasis>,
}

/// What an unclosed ticket's window is judged by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowBasis {
    /// R-K2: a work order is finished within its window, by its first
    /// on-time result.
    Finish {
        #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_time")]
        finished_at: Option<DateTime<Utc>>,
        /// A booking's service date (R-S2): its window counts from that day.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_date: Option<NaiveDate>,
    },
    /// R-P4: an open coordination ticket's next check, counted from the
    /// issue or from the last check.
    NextCheck {
        #[serde(with = "epoch_time")]
        issued_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_time")]
        last_check_at: Option<DateTime<Utc>>,
    },
}

impl ReportDigest {
    /// The digest of `ticket` as it is now.
    pub fn of(ticket: &Ticket) -> Self {
        let lifecycle = Lifecycle::of(ticket);
        // The owner's signature is looked for (a hash of the result) only
        // where it matters: closed and completed work orders.
        let signature_checked = ticket.kind == TicketKind::WorkOrder
            && matches!(ticket.status, Status::Closed | Status::Completed);
        let signature = signature_checked
            .then(|| ticket.signature_of_current_result())
            .flatten();
        let signed = signature.is_some();
        let rating = signature.and_then(|signature| signature.body.rating);
        let duty = |(deadline, done_at): (Deadline, Option<DateTime<Utc>>)| DutyDigest {
            due_at: deadline.due_at,
            done_at,
        };
        let arrival = match ticket.kind {
            TicketKind::WorkOrder => r_p1_arrival(ticket).map(duty),
            TicketKind::CoordinationTicket | TicketKind::VerbalDispatch => None,
        };
        let coordination = (ticket.kind == TicketKind::CoordinationTicket)
            .then(|| CoordinationDigest::of(ticket, &lifecycle));
        let unclosed = is_unclosed(ticket.status)
            .then(|| unclosed_digest(ticket, &lifecycle, &StateAt::current(ticket, signed)));
        Self {
            ticket_id: ticket.id.clone(),
            serial_number: ticket.serial_number.clone(),
            kind: ticket.kind,
            category: ticket.category,
            status: ticket.status,
            received_at: ticket.received_at,
            created_at: lifecycle.created_at,
            closed_at: ticket.closed.as_ref().map(|closure| closure.at),
            charge: ticket.charge().cloned(),
            signed,
            lapsed_at: lifecycle.lapsed_at,
            arrival,
            coordination,
            follow_up: r_f1_follow_up(ticket, rating).map(duty),
            unclosed,
        }
    }
}

impl CoordinationDigest {
    fn of(ticket: &Ticket, lifecycle: &Lifecycle) -> Self {
        let issued_at = lifecycle.issued_at;
        let done = |duty| {
            ticket
                .tracking
                .iter()
                .filter(|record| record.at >= issued_at && counts_for(duty, record))
                .map(|record| record.at)
                .collect()
        };
        Self {
            issued_at,
            left_open_at: lifecycle.left_open_at,
            inspection_booked_at: r_p3_inspection_booked_at(ticket, issued_at),
            owner_replied_at: r_p3_owner_replied_at(ticket, issued_at),
            checks: done(Duty::Check),
            owner_replies: done(Duty::ReplyToOwner),
        }
    }

    /// R-P4: when the records that do `duty` were made.
    fn done(&self, duty: Duty) -> &[DateTime<Utc>] {
        match duty {
            Duty::Check => &self.checks,
            Duty::ReplyToOwner => &self.owner_replies,
            _ => &[],
        }
    }
}

/// The digests' times as two integers, `[seconds, nanoseconds]` since 1970:
/// a month's report parses a hundred thousand digests, and integers parse
/// several times faster than RFC 3339 text (docs/BENCHMARKS.md, "Reports").
/// Every time reads back exactly. For a time, an optional time or a list.
mod epoch_time {
    use chrono::{DateTime, Utc};
    use serde::de::{DeserializeOwned, Error as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub trait EpochTime: Sized {
        type Parts: Serialize + DeserializeOwned;
        fn parts(&self) -> Self::Parts;
        /// None when the parts name no time chrono can hold.
        fn from_parts(parts: Self::Parts) -> Option<Self>;
    }

    impl EpochTime for DateTime<Utc> {
        type Parts = (i64, u32);
        fn parts(&self) -> Self::Parts {
            (self.timestamp(), self.timestamp_subsec_nanos())
        }
        fn from_parts((seconds, nanos): Self::Parts) -> Option<Self> {
            DateTime::from_timestamp(seconds, nanos)
        }
    }

    impl<T: EpochTime> EpochTime for Option<T> {
        type Parts = Option<T::Parts>;
        fn parts(&self) -> Self::Parts {
            self.as_ref().map(T::parts)
        }
        fn from_parts(parts: Self::Parts) -> Option<Self> {
            match parts {
                Some(parts) => T::from_parts(parts).map(Some),
                None => Some(None),
            }
        }
    }

    impl<T: EpochTime> EpochTime for Vec<T> {
        type Parts = Vec<T::Parts>;
        fn parts(&self) -> Self::Parts {
            self.iter().map(T::parts).collect()
        }
        fn from_parts(parts: Self::Parts) -> Option<Self> {
            parts.into_iter().map(T::from_parts).collect()
        }
    }

    pub fn serialize<T: EpochTime, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.parts().serialize(serializer)
    }

    pub fn deserialize<'de, T: EpochTime, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        T::from_parts(T::Parts::deserialize(deserializer)?)
            .ok_or_else(|| D::Error::custom("a time beyond what can be held"))
    }
}

// ---- The month -------------------------------------------------------------

impl ReportMonth {
    /// Years 1-9999 and months 1-12, or nothing.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    /// Exactly `YYYY-MM`.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let invalid = || ParseError::InvalidMonth {
            value: raw.chars().take(16).collect(),
        };
        let bytes = raw.as_bytes();
        let digits = |range: std::ops::Range<usize>| {
            bytes[range.clone()].iter().all(u8::is_ascii_digit) && !range.is_empty()
        };
        if bytes.len() != 7 || bytes[4] != b'-' || !digits(0..4) || !digits(5..7) {
            return Err(invalid());
        }
        let year = raw[..4].parse().map_err(|_| invalid())?;
        let month = raw[5..].parse().map_err(|_| invalid())?;
        Self::new(year, month).ok_or_else(invalid)
    }

    /// The month `at` lies in on the estate's calendar.
    pub fn containing(calendar: &WorkingCalendar, at: DateTime<Utc>) -> Self {
        let date = calendar.local_date(at);
        Self::new(date.year(), date.month()).expect("a clock date lies in the years 1-9999")
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a valid month has a first day")
    }

    /// The month after this one (December 9999 has none).
    pub fn next(self) -> Option<Self> {
        match self.month {
            12 => Self::new(self.year + 1, 1),
            month => Self::new(self.year, month + 1),
        }
    }

    /// The month's first instant and the next month's, in the estate's time zone.
    pub fn bounds(self, calendar: &WorkingCalendar) -> (DateTime<Utc>, DateTime<Utc>) {
        let from = calendar.start_of_local_date(self.first_day());
        let until = match self.next() {
            Some(next) => calendar.start_of_local_date(next.first_day()),
            None => calendar
                .end_of_local_date(NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date")),
        };
        (from, until)
    }
}

impl fmt::Display for ReportMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl TryFrom<String> for ReportMonth {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<ReportMonth> for String {
    fn from(month: ReportMonth) -> String {
        month.to_string()
    }
}

// ---- R-C4: the daily list ---------------------------------------------------

/// R-C4: the daily unclosed list of `day` over `tickets` (one estate's).
pub fn daily_unclosed<'a>(
    tickets: impl IntoIterator<Item = &'a Ticket>,
    calendar: &WorkingCalendar,
    day: NaiveDate,
) -> DailyUnclosed {
    let mut builder = DailyUnclosedBuilder::new(calendar, day);
    for ticket in tickets {
        builder.add(ticket);
    }
    builder.finish()
}

/// The daily list, one ticket at a time.
pub struct DailyUnclosedBuilder<'c> {
    calendar: &'c WorkingCalendar,
    list: DailyUnclosed,
}

impl<'c> DailyUnclosedBuilder<'c> {
    pub fn new(calendar: &'c WorkingCalendar, day: NaiveDate) -> Self {
        Self {
            calendar,
            list: DailyUnclosed {
                date: day,
                time_zone: calendar.time_zone().name().to_owned(),
                as_of: calendar.end_of_local_date(day),
                work_orders: Vec::new(),
                coordination_tickets: Vec::new(),
            },
        }
    }

    pub fn add(&mut self, ticket: &Ticket) {
        if ticket.kind == TicketKind::VerbalDispatch {
            return;
        }
        let as_of = self.list.as_of;
        let lifecycle = Lifecycle::of(ticket);
        if lifecycle.created_at > as_of {
            return;
        }
        let state = StateAt::of(ticket, as_of);
        if !is_unclosed(state.status) {
            return;
        }
        let line = unclosed_digest(ticket, &lifecycle, &state);
        let item = unclosed_item(self.calendar, line, self.list.date, as_of);
        match ticket.kind {
            TicketKind::WorkOrder => self.list.work_orders.push(item),
            TicketKind::CoordinationTicket => self.list.coordination_tickets.push(item),
            TicketKind::VerbalDispatch => unreachable!("skipped above"),
        }
    }

    pub fn finish(mut self) -> DailyUnclosed {
        sort_by_receipt(&mut self.list.work_orders);
        sort_by_receipt(&mut self.list.coordination_tickets);
        self.list
    }
}

// ---- R-A3: the monthly statistics ---------------------------------------------

/// R-A3: the statistics of the tickets received in `month`, judged at `now`.
pub fn monthly_statistics<'a>(
    tickets: impl IntoIterator<Item = &'a Ticket>,
    calendar: &WorkingCalendar,
    month: ReportMonth,
    now: DateTime<Utc>,
) -> Result<MonthlyStatistics, FeeTotalOverflow> {
    let mut builder = MonthlyStatisticsBuilder::new(calendar, month, now);
    for ticket in tickets {
        builder.add(ticket);
    }
    builder.finish()
}

/// The monthly statistics, one ticket at a time; tickets of other months
/// are passed over.
pub struct MonthlyStatisticsBuilder<'c> {
    calendar: &'c WorkingCalendar,
    statistics: MonthlyStatistics,
    today: NaiveDate,
    arrival: Tally,
    site_inspection: Tally,
    owner_reply: Tally,
    cadence_check: Tally,
    cadence_reply: Tally,
    follow_up: Tally,
    /// A fee total did not fit (`FeeTotalOverflow`).
    fee_total_overflowed: bool,
}

impl<'c> MonthlyStatisticsBuilder<'c> {
    pub fn new(calendar: &'c WorkingCalendar, month: ReportMonth, now: DateTime<Utc>) -> Self {
        let (from, until) = month.bounds(calendar);
        Self {
            calendar,
            statistics: MonthlyStatistics {
                month,
                time_zone: calendar.time_zone().name().to_owned(),
                from,
                until,
                generated_at: now,
                received: 0,
                by_kind: KindCounts::default(),
                by_category: CategoryCounts::default(),
                by_status: StatusCounts::default(),
                charges: ChargeCounts::default(),
                closure: ClosureCounts::default(),
                timeliness: Vec::new(),
                missing_signatures: Vec::new(),
                unclosed: Vec::new(),
            },
            today: calendar.local_date(now),
            arrival: Tally::default(),
            site_inspection: Tally::default(),
            owner_reply: Tally::default(),
            cadence_check: Tally::default(),
            cadence_reply: Tally::default(),
            follow_up: Tally::default(),
            fee_total_overflowed: false,
        }
    }

    /// Whether a ticket received at `received_at` belongs to the report's month.
    pub fn includes(&self, received_at: DateTime<Utc>) -> bool {
        (self.statistics.from..self.statistics.until).contains(&received_at)
    }

    pub fn add(&mut self, ticket: &Ticket) {
        if self.includes(ticket.received_at) {
            self.add_digest(ReportDigest::of(ticket));
        }
    }

    /// Count a ticket by its digest; digests of other months are passed over.
    pub fn add_digest(&mut self, digest: ReportDigest) {
        if !self.includes(digest.received_at) {
            return;
        }
        let now = self.statistics.generated_at;
        let statistics = &mut self.statistics;
        statistics.received += 1;
        count_kind(&mut statistics.by_kind, digest.kind);
        count_category(&mut statistics.by_category, digest.category);
        count_status(&mut statistics.by_status, digest.status);
        match digest.status {
            Status::Closed => statistics.closure.closed += 1,
            Status::Cancelled => statistics.closure.cancelled += 1,
            Status::Converted => statistics.closure.converted += 1,
            _ => {}
        }
        if digest.kind == TicketKind::WorkOrder && digest.status == Status::Closed {
            if is_engineering(digest.category)
                && count_charge(&mut statistics.charges, digest.charge.as_ref()).is_err()
            {
                self.fee_total_overflowed = true;
            }
            if !digest.signed {
                statistics.missing_signatures.push(TicketRef {
                    ticket_id: digest.ticket_id,
                    serial_number: digest.serial_number,
                });
            }
        }

        if let Some(arrival) = digest.arrival {
            self.arrival
                .judge(arrival.due_at, arrival.done_at, digest.lapsed_at, now);
        }
        if let Some(coordination) = &digest.coordination {
            let cadences = r_p4_cadences(digest.kind, digest.category);
            self.judge_coordination(coordination, cadences, digest.lapsed_at);
        }
        if let Some(follow_up) = digest.follow_up {
            self.follow_up
                .judge(follow_up.due_at, follow_up.done_at, None, now);
        }
        if let Some(line) = digest.unclosed {
            let item = unclosed_item(self.calendar, line, self.today, now);
            self.statistics.unclosed.push(item);
        }
    }

    pub fn finish(mut self) -> Result<MonthlyStatistics, FeeTotalOverflow> {
        if self.fee_total_overflowed {
            return Err(FeeTotalOverflow);
        }
        let statistics = &mut self.statistics;
        let closure = &mut statistics.closure;
        closure.closable = statistics.received - closure.cancelled - closure.converted;
        closure.closure_rate_percent = percent(closure.closed, closure.closable);
        statistics.timeliness = vec![
            self.arrival.of(RuleId::P1, Duty::Arrival),
            self.site_inspection
                .of(RuleId::P3, Duty::BookSiteInspection),
            self.owner_reply.of(RuleId::P3, Duty::ReplyToOwner),
            self.cadence_check.of(RuleId::P4, Duty::Check),
            self.cadence_reply.of(RuleId::P4, Duty::ReplyToOwner),
            self.follow_up.of(RuleId::F1, Duty::FollowUp),
        ];
        // Whatever order the tickets came in (the store reads digests by
        // receipt time), the lists come out the same.
        statistics
            .missing_signatures
            .sort_by(|a, b| a.ticket_id.cmp(&b.ticket_id));
        sort_by_receipt(&mut statistics.unclosed);
        Ok(self.statistics)
    }

    /// R-P3 and R-P4: the coordination ticket's bookings, replies and checks.
    fn judge_coordination(
        &mut self,
        coordination: &CoordinationDigest,
        cadences: &[Cadence],
        lapsed_at: Option<DateTime<Utc>>,
    ) {
        let now = self.statistics.generated_at;
        let issued_at = coordination.issued_at;
        let inspection = r_p3_site_inspection_deadline(self.calendar, issued_at);
        self.site_inspection.judge(
            inspection.due_at,
            coordination.inspection_booked_at,
            lapsed_at,
            now,
        );
        let reply = r_p3_owner_reply_deadline(issued_at);
        self.owner_reply
            .judge(reply.due_at, coordination.owner_replied_at, lapsed_at, now);

        for cadence in cadences {
            let tally = match cadence.duty {
                Duty::Check => &mut self.cadence_check,
                _ => &mut self.cadence_reply,
            };
            judge_cadence(
                tally,
                self.calendar,
                *cadence,
                coordination.done(cadence.duty),
                issued_at,
                coordination.left_open_at,
                now,
            );
        }
    }
}

// ---- R-A2: the monthly archive ------------------------------------------------------

/// Most missing numbers an archive lists per series; the rest are counted.
pub const MAX_LISTED_MISSING: usize = 1000;

/// R-A1: the last sequence each of the month's series handed out, by the
/// server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandedOut {
    pub work_orders: u64,
    pub coordination_tickets: u64,
}

/// The monthly archive (R-A2), one digest at a time: each ticket is to be
/// added once; tickets that belong to another month are passed over.
pub struct MonthlyArchiveBuilder {
    archive_month: ReportMonth,
    time_zone: String,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    work_orders: SectionBuilder,
    coordination_tickets: SectionBuilder,
    verbal_dispatches: u64,
}

/// One numbered kind's forms while the archive is built.
struct SectionBuilder {
    series: SerialSeries,
    entries: Vec<ArchiveEntry>,
    sequences: Vec<u64>,
    unnumbered: Vec<TicketId>,
}

impl MonthlyArchiveBuilder {
    pub fn new(
        calendar: &WorkingCalendar,
        estate: &EstateId,
        month: ReportMonth,
        now: DateTime<Utc>,
    ) -> Self {
        let (from, until) = month.bounds(calendar);
        let serial_month = SerialMonth::new(
            u16::try_from(month.year()).expect("a report month's year has four digits"),
            u8::try_from(month.month()).expect("a month is 1-12"),
        )
        .expect("a report month is a serial month");
        let section = |kind| SectionBuilder {
            series: SerialSeries::new(estate.clone(), kind, serial_month),
            entries: Vec::new(),
            sequences: Vec::new(),
            unnumbered: Vec::new(),
        };
        Self {
            archive_month: month,
            time_zone: calendar.time_zone().name().to_owned(),
            from,
            until,
            generated_at: now,
            work_orders: section(SerialKind::WorkOrder),
            coordination_tickets: section(SerialKind::CoordinationTicket),
            verbal_dispatches: 0,
        }
    }

    /// The month's series of `kind`: its counter says how many numbers it
    /// handed out.
    pub fn series(&self, kind: SerialKind) -> &SerialSeries {
        match kind {
            SerialKind::WorkOrder => &self.work_orders.series,
            SerialKind::CoordinationTicket => &self.coordination_tickets.series,
        }
    }

    /// File a ticket by its digest: a numbered one in the month of its
    /// number, an unnumbered one (and a verbal dispatch, counted) in the
    /// month it was received in.
    pub fn add_digest(&mut self, digest: ReportDigest) {
        let received_in_month = (self.from..self.until).contains(&digest.received_at);
        let section = match digest.kind {
            TicketKind::VerbalDispatch => {
                self.verbal_dispatches += u64::from(received_in_month);
                return;
            }
            TicketKind::WorkOrder => &mut self.work_orders,
            TicketKind::CoordinationTicket => &mut self.coordination_tickets,
        };
        match &digest.serial_number {
            Some(number) if number.series() == &section.series => {
                section.sequences.push(number.sequence());
            }
            None if received_in_month => section.unnumbered.push(digest.ticket_id.clone()),
            // Another month's number: filed in that month's archive.
            Some(_) | None => return,
        }
        section.entries.push(ArchiveEntry {
            serial_number: digest.serial_number,
            ticket_id: digest.ticket_id,
            category: digest.category,
            status: digest.status,
            received_at: digest.received_at,
            closed_at: digest.closed_at,
            charge: digest.charge,
        });
    }

    pub fn finish(self, handed_out: HandedOut) -> Result<MonthlyArchive, FeeTotalOverflow> {
        Ok(MonthlyArchive {
            month: self.archive_month,
            time_zone: self.time_zone,
            from: self.from,
            until: self.until,
            generated_at: self.generated_at,
            work_orders: self.work_orders.finish(handed_out.work_orders)?,
            coordination_tickets: self
                .coordination_tickets
                .finish(handed_out.coordination_tickets)?,
            verbal_dispatches: self.verbal_dispatches,
        })
    }
}

impl SectionBuilder {
    fn finish(mut self, handed_out: u64) -> Result<ArchiveSection, FeeTotalOverflow> {
        // By number; the unnumbered last, by receipt.
        self.entries.sort_by(|a, b| {
            let key = |entry: &ArchiveEntry| {
                (
                    entry.serial_number.is_none(),
                    entry.serial_number.clone(),
                    entry.received_at,
                    entry.ticket_id.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut section = ArchiveSection {
            series: self.series.to_string(),
            paid: Vec::new(),
            free: Vec::new(),
            not_recorded: Vec::new(),
            paid_fee_fen: 0,
            not_closed: Vec::new(),
            numbering: numbering_check(&self.series, self.sequences, handed_out, self.unnumbered),
        };
        for entry in self.entries {
            match (entry.status, &entry.charge) {
                (Status::Closed, Some(Charge::Paid { fee_fen })) if *fee_fen <= MAX_FEE_FEN => {
                    add_fee(&mut section.paid_fee_fen, *fee_fen)?;
                    section.paid.push(entry);
                }
                (Status::Closed, Some(Charge::Free {})) => section.free.push(entry),
                // A fee beyond any real one is as good as unrecorded.
                (Status::Closed, Some(Charge::Paid { .. }) | None) => {
                    section.not_recorded.push(entry)
                }
                _ => section.not_closed.push(entry),
            }
        }
        Ok(section)
    }
}

/// R-A1: the numbers from 1 to the last one handed out (or carried, if
/// higher) that no ticket carries, and those that several carry.
fn numbering_check(
    series: &SerialSeries,
    mut sequences: Vec<u64>,
    handed_out: u64,
    unnumbered: Vec<TicketId>,
) -> NumberingCheck {
    sequences.sort_unstable();
    let mut missing = Vec::new();
    let mut missing_count = 0;
    // A corrupt counter can claim any number of gaps: count them all, list a few.
    let mut gap = |from: u64, until: u64| {
        missing_count += until.saturating_sub(from);
        let room = MAX_LISTED_MISSING - missing.len();
        missing.extend(
            (from..until)
                .take(room)
                .map(|sequence| series.number(sequence)),
        );
    };
    let mut duplicated: Vec<SerialNumber> = Vec::new();
    let mut last = 0;
    for &sequence in &sequences {
        if sequence == last {
            if duplicated.last().map(SerialNumber::sequence) != Some(sequence) {
                duplicated.push(series.number(sequence));
            }
            continue;
        }
        gap(last + 1, sequence);
        last = sequence;
    }
    gap(last + 1, handed_out.max(last) + 1);
    NumberingCheck {
        handed_out,
        numbered: sequences.len() as u64,
        missing_count,
        complete: missing_count == 0 && duplicated.is_empty() && unnumbered.is_empty(),
        missing,
        duplicated,
        unnumbered,
    }
}

// ---- Shared pieces ----------------------------------------------------------------

/// Met, missed and pending counts of one duty while the report is built.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    met: u64,
    missed: u64,
    pending: u64,
}

impl Tally {
    /// Count one duty due at `due_at`, done at `done_at` if at all. A duty
    /// still open when its ticket lapsed (was cancelled or converted) is
    /// judged at that moment, and not counted when it was not due yet.
    fn judge(
        &mut self,
        due_at: DateTime<Utc>,
        done_at: Option<DateTime<Utc>>,
        lapsed_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let judged_at = lapsed_at.map_or(now, |lapsed_at| lapsed_at.min(now));
        match assess(due_at, done_at, judged_at, Duration::zero()) {
            DeadlineState::Met { .. } => self.met += 1,
            DeadlineState::MissedThenDone { .. } | DeadlineState::Overdue => self.missed += 1,
            DeadlineState::Pending | DeadlineState::DueSoon if lapsed_at.is_none() => {
                self.pending += 1
            }
            DeadlineState::Pending | DeadlineState::DueSoon => {}
        }
    }

    fn of(self, rule: RuleId, duty: Duty) -> RuleTally {
        RuleTally {
            rule,
            duty,
            met: self.met,
            missed: self.missed,
            pending: self.pending,
        }
    }
}

/// R-P4, best effort: each record of the cadence's duty (`done`, made since
/// the issue) while the ticket is open is met or missed against the deadline
/// the one before it set; then the next one is pending, or missed when overdue.
fn judge_cadence(
    tally: &mut Tally,
    calendar: &WorkingCalendar,
    cadence: Cadence,
    done: &[DateTime<Utc>],
    issued_at: DateTime<Utc>,
    left_open_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    let open_until = left_open_at.map_or(now, |left_open_at| left_open_at.min(now));
    let mut last_done_at = None;
    for &done_at in done.iter().filter(|done_at| **done_at <= open_until) {
        let deadline = r_p4_next_due(calendar, cadence, issued_at, last_done_at);
        if done_at <= deadline.due_at {
            tally.met += 1;
        } else {
            tally.missed += 1;
        }
        last_done_at = Some(done_at);
    }
    let next = r_p4_next_due(calendar, cadence, issued_at, last_done_at);
    if open_until > next.due_at {
        tally.missed += 1;
    } else if left_open_at.is_none() {
        tally.pending += 1;
    }
}

/// The moments of a ticket's life the reports need, from one pass over its history.
struct Lifecycle {
    /// When the ticket came into being: its first history entry, or for a
    /// coordination ticket converted from a work order, the conversion.
    created_at: DateTime<Utc>,
    /// When it became a coordination ticket: its receipt, or the conversion.
    issued_at: DateTime<Utc>,
    /// When it was cancelled or converted, if it was.
    lapsed_at: Option<DateTime<Utc>>,
    /// When it first stopped being open (completed, closed, cancelled,
    /// converted) after it was created.
    left_open_at: Option<DateTime<Utc>>,
}

impl Lifecycle {
    fn of(ticket: &Ticket) -> Self {
        let mut lifecycle = Lifecycle {
            created_at: ticket
                .history
                .first()
                .map_or(ticket.received_at, |entry| entry.at),
            issued_at: ticket.received_at,
            lapsed_at: None,
            left_open_at: None,
        };
        for entry in &ticket.history {
            if let HistoryEvent::ConvertedFrom { .. } = entry.event {
                // What came before was the work order's life (R-C2).
                lifecycle.created_at = entry.at;
                lifecycle.issued_at = entry.at;
                lifecycle.lapsed_at = None;
                lifecycle.left_open_at = None;
            }
            if let Some(change) = entry.status_change {
                if !change.to.is_open() && lifecycle.left_open_at.is_none() {
                    lifecycle.left_open_at = Some(entry.at);
                }
                if matches!(change.to, Status::Cancelled | Status::Converted) {
                    lifecycle.lapsed_at = Some(entry.at);
                }
            }
        }
        lifecycle
    }
}

/// What the reports need of a ticket's state at one moment.
struct StateAt<'a> {
    status: Status,
    technician: Option<&'a UserId>,
    signed: bool,
    signed_off: bool,
    finished_at: Option<DateTime<Utc>>,
    last_check_at: Option<DateTime<Utc>>,
}

impl<'a> StateAt<'a> {
    /// The ticket as it is now; `signed` is whether the owner signed the
    /// current result (the caller knows, or it does not matter).
    fn current(ticket: &'a Ticket, signed: bool) -> Self {
        Self {
            status: ticket.status,
            technician: ticket.assigned_technician.as_ref(),
            signed,
            signed_off: !ticket.sign_offs.is_empty(),
            finished_at: first_finish(ticket, None),
            last_check_at: last_check(ticket, None),
        }
    }

    /// The ticket as it was at `at`. A ticket unchanged since is exactly
    /// as it is now; otherwise its history is replayed up to `at`, and the
    /// owner's signature is any on-time signature received by then.
    fn of(ticket: &'a Ticket, at: DateTime<Utc>) -> Self {
        if ticket.updated_at <= at {
            let signed = ticket.kind == TicketKind::WorkOrder
                && ticket.status == Status::Completed
                && ticket.signature_of_current_result().is_some();
            return Self::current(ticket, signed);
        }
        let mut state = Self {
            status: Status::Received,
            technician: None,
            signed: ticket
                .signatures
                .values()
                .any(|fact| fact.late.is_none() && fact.received_at <= at),
            signed_off: ticket.sign_offs.iter().any(|sign_off| sign_off.at <= at),
            finished_at: first_finish(ticket, Some(at)),
            last_check_at: last_check(ticket, Some(at)),
        };
        for entry in ticket.history.iter().take_while(|entry| entry.at <= at) {
            match &entry.event {
                HistoryEvent::Dispatched { technician } => state.technician = Some(technician),
                HistoryEvent::Reassigned { to, .. } => state.technician = Some(to),
                HistoryEvent::ConvertedFrom { .. } => state.technician = None,
                _ => {}
            }
            if let Some(change) = entry.status_change {
                state.status = change.to;
            }
        }
        state
    }
}

/// The last R-P4 check recorded by `by`.
fn last_check(ticket: &Ticket, by: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    ticket
        .tracking
        .iter()
        .filter(|record| matches!(record.kind, TrackingKind::Check {}))
        .filter(|record| by.is_none_or(|by| record.at <= by))
        .map(|record| record.at)
        .max()
}

/// Not closed, cancelled or converted.
fn is_unclosed(status: Status) -> bool {
    !matches!(
        status,
        Status::Closed | Status::Cancelled | Status::Converted
    )
}

/// The line of an unclosed ticket in `state`, its state now or at the end
/// of a past day.
fn unclosed_digest(ticket: &Ticket, lifecycle: &Lifecycle, state: &StateAt<'_>) -> UnclosedDigest {
    let window = match ticket.kind {
        TicketKind::WorkOrder => Some(WindowBasis::Finish {
            finished_at: state.finished_at,
            service_date: ticket.booking.as_ref().map(|booking| booking.service_date),
        }),
        TicketKind::CoordinationTicket if state.status.is_open() => Some(WindowBasis::NextCheck {
            issued_at: lifecycle.issued_at,
            last_check_at: state.last_check_at,
        }),
        TicketKind::CoordinationTicket | TicketKind::VerbalDispatch => None,
    };
    UnclosedDigest {
        ticket_id: ticket.id.clone(),
        serial_number: ticket.serial_number.clone(),
        kind: ticket.kind,
        category: ticket.category,
        area: ticket.area,
        location: ticket.location.clone(),
        description: ticket.description.clone(),
        status: state.status,
        received_at: ticket.received_at,
        responsible: responsible(ticket, state),
        window,
    }
}

/// One unclosed ticket as of `as_of`, whose local day is `day`.
fn unclosed_item(
    calendar: &WorkingCalendar,
    line: UnclosedDigest,
    day: NaiveDate,
    as_of: DateTime<Utc>,
) -> UnclosedItem {
    let age_days = (day - calendar.local_date(line.received_at)).num_days();
    let window = line.window.map(|basis| match basis {
        // R-K2: finished within the window (the same day; 3 days in a public area).
        WindowBasis::Finish {
            finished_at,
            service_date,
        } => {
            let deadline = r_k2_finish_from(calendar, line.received_at, service_date, line.area);
            let judged = assess(deadline.due_at, finished_at, as_of, Duration::zero());
            RuleWindow {
                rule: RuleId::K2,
                duty: Duty::Finish,
                due_at: deadline.due_at,
                missed: judged.is_missed(),
            }
        }
        // R-P4, R-C4: the specialist's next check of an open coordination ticket.
        WindowBasis::NextCheck {
            issued_at,
            last_check_at,
        } => {
            let cadence = r_p4_cadences(line.kind, line.category)
                .iter()
                .find(|cadence| cadence.duty == Duty::Check)
                .copied()
                .expect("a coordination ticket has a check cadence");
            let deadline = r_p4_next_due(calendar, cadence, issued_at, last_check_at);
            RuleWindow {
                rule: RuleId::P4,
                duty: Duty::Check,
                due_at: deadline.due_at,
                missed: as_of > deadline.due_at,
            }
        }
    });
    UnclosedItem {
        ticket_id: line.ticket_id,
        serial_number: line.serial_number,
        kind: line.kind,
        category: line.category,
        area: line.area,
        location: line.location,
        description: line.description,
        status: line.status,
        received_at: line.received_at,
        age_days: u32::try_from(age_days.max(0)).unwrap_or(u32::MAX),
        responsible: line.responsible,
        window,
    }
}

/// R-C4: who must act next on an unclosed ticket. A verbal dispatch is the
/// agent's who took it (R-K1). Otherwise: before dispatch, the role that
/// dispatches it (R-D1); dispatched or in progress, the technician; once
/// completed, a work order's technician until the owner has signed (R-P7),
/// then the role that closes it (R-C1); a coordination ticket's department
/// manager until signed off, then the customer-service manager (R-C3).
fn responsible(ticket: &Ticket, state: &StateAt<'_>) -> Responsible {
    let role_that = |may: &dyn Fn(Role) -> bool| {
        let role = Role::ALL
            .into_iter()
            .find(|role| may(*role))
            .expect("every duty has a role");
        Responsible::Role { role }
    };
    let dispatching_role = || role_that(&|role| role.may_dispatch(ticket.kind, ticket.category));
    let technician = state
        .technician
        .map(|user| Responsible::Technician { user: user.clone() });
    match (ticket.kind, state.status) {
        (TicketKind::VerbalDispatch, _) => Responsible::Agent {
            user: ticket.received_by.clone(),
        },
        (_, Status::Dispatched | Status::InProgress) => technician.unwrap_or_else(dispatching_role),
        (TicketKind::WorkOrder, Status::Completed) if !state.signed => {
            technician.unwrap_or_else(dispatching_role)
        }
        (TicketKind::CoordinationTicket, Status::Completed) if !state.signed_off => {
            role_that(&|role| role.may_sign_off())
        }
        (_, Status::Completed) => role_that(&|role| role.may_close(ticket.kind, ticket.category)),
        _ => dispatching_role(),
    }
}

/// R-C5: engineering work orders are the ones the engineering dispatcher dispatches (R-D1).
fn is_engineering(category: Category) -> bool {
    Role::Dispatcher.may_dispatch(TicketKind::WorkOrder, category)
}

fn count_kind(counts: &mut KindCounts, kind: TicketKind) {
    *match kind {
        TicketKind::VerbalDispatch => &mut counts.verbal_dispatch,
        TicketKind::WorkOrder => &mut counts.work_order,
        TicketKind::CoordinationTicket => &mut counts.coordination_ticket,
    } += 1;
}

fn count_category(counts: &mut CategoryCounts, category: Category) {
    *match category {
        Category::Repair => &mut counts.repair,
        Category::Rework => &mut counts.rework,
        Category::Environment => &mut counts.environment,
        Category::Security => &mut counts.security,
        Category::OwnerCommunication => &mut counts.owner_communication,
        Category::HomeService => &mut counts.home_service,
        Category::PrivateGarden => &mut counts.private_garden,
    } += 1;
}

fn count_status(counts: &mut StatusCounts, status: Status) {
    *match status {
        Status::Received => &mut counts.received,
        Status::Dispatched => &mut counts.dispatched,
        Status::InProgress => &mut counts.in_progress,
        Status::Completed => &mut counts.completed,
        Status::Closed => &mut counts.closed,
        Status::Converted => &mut counts.converted,
        Status::Cancelled => &mut counts.cancelled,
    } += 1;
}

fn count_charge(
    counts: &mut ChargeCounts,
    charge: Option<&Charge>,
) -> Result<(), FeeTotalOverflow> {
    match charge {
        Some(Charge::Paid { fee_fen }) if *fee_fen <= MAX_FEE_FEN => {
            counts.paid += 1;
            add_fee(&mut counts.paid_fee_fen, *fee_fen)?;
        }
        Some(Charge::Free {}) => counts.free += 1,
        // A fee beyond any real one (stored before fees were bounded)
        // cannot be counted as money: the charge is as good as unrecorded.
        Some(Charge::Paid { .. }) | None => counts.not_recorded += 1,
    }
    Ok(())
}

/// A fee total of a report does not fit in 64 bits. Fees are bounded where
/// they come in, and a stored one beyond the bound is not counted as money
/// (`MAX_FEE_FEN`), so this cannot happen below four billion paid tickets;
/// the report is refused rather than wrong if it ever does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a fee total of the report does not fit in 64 bits: a stored fee is beyond any real one")]
pub struct FeeTotalOverflow;

// Four billion paid tickets at the largest fee still fit in a total.
const _: () = assert!((crate::ticket::MAX_FEE_FEN as u128) * (u32::MAX as u128) < u64::MAX as u128);

/// `total += fee_fen`, never wrapping.
fn add_fee(total: &mut u64, fee_fen: u64) -> Result<(), FeeTotalOverflow> {
    *total = total.checked_add(fee_fen).ok_or(FeeTotalOverflow)?;
    Ok(())
}

/// `part / whole` in percent with two decimals, or nothing of nothing.
fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| {
        let hundredths = (u128::from(part) * 10_000 + u128::from(whole) / 2) / u128::from(whole);
        hundredths as f64 / 100.0
    })
}

/// In order of receipt, ties by ticket id.
fn sort_by_receipt(items: &mut [UnclosedItem]) {
    items.sort_by(|a, b| (a.received_at, &a.ticket_id).cmp(&(b.received_at, &b.ticket_id)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::tests::{date, shanghai};
    use crate::ids::{DeviceId, DeviceSeq, Sha256Hex};
    use crate::merge::{Recorder, merge};
    use crate::mutation::{DeviceMutation, DeviceOp};
    use crate::office::tests::{intake, user};
    use crate::office::{OfficeOp, apply_office_op, convert_work_order, create_ticket};
    use crate::ticket::{Closure, CompletionRecord, Rating};

    fn calendar() -> WorkingCalendar {
        WorkingCalendar::asia_shanghai()
    }

    fn november() -> ReportMonth {
        ReportMonth::parse("2026-11").unwrap()
    }

    fn end_of(month: u32, day: u32) -> DateTime<Utc> {
        calendar().end_of_local_date(date(month, day))
    }

    /// A report recorded at `received_at` (by the agent, at once).
    fn report(
        id: &str,
        kind: TicketKind,
        category: Category,
        received_at: DateTime<Utc>,
    ) -> Ticket {
        let mut record = intake();
        record.kind = kind;
        record.category = category;
        record.received_at = received_at;
        create_ticket(
            TicketId::parse(id).unwrap(),
            record,
            user("kefu"),
            &calendar(),
            received_at,
        )
        .unwrap()
    }

    fn work_order(id: &str, received_at: DateTime<Utc>) -> Ticket {
        report(id, TicketKind::WorkOrder, Category::Repair, received_at)
    }

    fn act(ticket: &Ticket, by: &str, op: OfficeOp, at: DateTime<Utc>) -> Ticket {
        apply_office_op(ticket, &op, &user(by), &calendar(), at).unwrap()
    }

    fn dispatch(ticket: &Ticket, technician: &str, at: DateTime<Utc>) -> Ticket {
        let op = OfficeOp::Dispatch {
            technician: user(technician),
        };
        act(ticket, "diaodu", op, at)
    }

    /// What `technician`'s handheld recorded at `recorded_at`, synced at `received_at`.
    fn field(
        ticket: &Ticket,
        technician: &str,
        op: DeviceOp,
        recorded_at: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> Ticket {
        let recorder = Recorder {
            user: user(technician),
            device: DeviceId::parse(&format!("hh-{technician}")).unwrap(),
            clock_offset_ms: 0,
        };
        let mutation = DeviceMutation {
            seq: DeviceSeq(ticket.version.0 + 1),
            ticket_id: ticket.id.clone(),
            base_version: ticket.version,
            recorded_at,
            op,
        };
        merge(ticket, &recorder, &mutation, received_at)
            .ticket
            .expect("the mutation applies")
    }

    fn result(charge: Charge) -> CompletionRecord {
        CompletionRecord {
            work_done: "换了阀门 replaced the valve".into(),
            materials: vec![],
            charge,
        }
    }

    fn paid() -> Charge {
        Charge::Paid { fee_fen: 3500 }
    }

    /// Arrive, complete with `charge` and (with a rating or without) have the
    /// owner sign, all at `at`.
    fn complete(
        ticket: &Ticket,
        technician: &str,
        charge: Charge,
        signed: Option<Option<Rating>>,
        at: DateTime<Utc>,
    ) -> Ticket {
        let record = result(charge);
        let mut ticket = field(
            ticket,
            technician,
            DeviceOp::RecordArrival { position: None },
            at,
            at,
        );
        let op = DeviceOp::Complete {
            result: record.clone(),
        };
        ticket = field(&ticket, technician, op, at, at);
        if let Some(rating) = signed {
            let op = DeviceOp::AttachSignature {
                blob: Sha256Hex::of(b"signature image"),
                signed_record: record.record_hash(),
                signer_name: "王女士".into(),
                rating,
                strokes: None,
            };
            ticket = field(&ticket, technician, op, at, at);
        }
        ticket
    }

    /// Dispatched at `at`, finished, signed and closed by the dispatcher 30 minutes later.
    fn closed_work_order(
        id: &str,
        at: DateTime<Utc>,
        charge: Charge,
        rating: Option<Rating>,
    ) -> Ticket {
        let ticket = dispatch(&work_order(id, at), "li", at);
        let ticket = complete(
            &ticket,
            "li",
            charge,
            Some(rating),
            at + Duration::minutes(10),
        );
        act(
            &ticket,
            "diaodu",
            OfficeOp::Close {},
            at + Duration::minutes(30),
        )
    }

    fn cancel(ticket: &Ticket, at: DateTime<Utc>) -> Ticket {
        let op = OfficeOp::Cancel {
            reason: "业主已自行解决 solved by the owner".into(),
        };
        act(ticket, "kefu", op, at)
    }

    fn track(ticket: &Ticket, kind: TrackingKind, at: DateTime<Utc>) -> Ticket {
        let op = OfficeOp::Track {
            kind,
            note: String::new(),
        };
        act(ticket, "zhuanyuan", op, at)
    }

    fn ids(items: &[UnclosedItem]) -> Vec<&str> {
        items.iter().map(|item| item.ticket_id.as_str()).collect()
    }

    fn tally(statistics: &MonthlyStatistics, rule: RuleId, duty: Duty) -> (u64, u64, u64) {
        let found = statistics
            .timeliness
            .iter()
            .find(|tally| (tally.rule, tally.duty) == (rule, duty))
            .expect("every duty has a tally");
        (found.met, found.missed, found.pending)
    }

    fn technician(name: &str) -> Responsible {
        Responsible::Technician { user: user(name) }
    }

    fn role(role: Role) -> Responsible {
        Responsible::Role { role }
    }

    // ---- R-C4 ----------------------------------------------------------------

    #[test]
    fn r_c4_the_daily_list_has_the_open_work_orders_with_who_must_act_and_not_the_closed_or_cancelled()
     {
        let closed = closed_work_order("t-closed", shanghai(11, 27, 9, 0), paid(), None);
        let open = dispatch(
            &work_order("t-open", shanghai(11, 27, 9, 10)),
            "zhang",
            shanghai(11, 27, 9, 15),
        );
        let cancelled = cancel(
            &work_order("t-cancelled", shanghai(11, 27, 9, 20)),
            shanghai(11, 27, 9, 30),
        );
        let undispatched = work_order("t-undispatched", shanghai(11, 27, 9, 40));
        let tickets = [closed, open, cancelled, undispatched];

        let list = daily_unclosed(&tickets, &calendar(), date(11, 27));

        assert_eq!(list.date, date(11, 27));
        assert_eq!(list.time_zone, "Asia/Shanghai");
        assert_eq!(list.as_of, end_of(11, 27));
        assert_eq!(ids(&list.work_orders), ["t-open", "t-undispatched"]);
        assert!(list.coordination_tickets.is_empty());
        let open = &list.work_orders[0];
        assert_eq!(open.responsible, technician("zhang"));
        assert_eq!(open.status, Status::Dispatched);
        assert_eq!(open.age_days, 0);
        // R-K2: a private unit's work order is due by the end of its day.
        let window = open.window.unwrap();
        assert_eq!((window.rule, window.due_at), (RuleId::K2, end_of(11, 27)));
        assert!(!window.missed);
        // R-D1: nobody dispatched it yet, so the engineering dispatcher must.
        assert_eq!(list.work_orders[1].responsible, role(Role::Dispatcher));
    }

    #[test]
    fn r_c4_r_s2_a_booking_made_days_ahead_is_due_by_the_end_of_its_service_date() {
        // Booked on 11-27 for Sunday 11-29 (`office::tests::booked_ticket`).
        let booked = crate::office::tests::booked_ticket();
        for day in [date(11, 27), date(11, 28), date(11, 29)] {
            let list = daily_unclosed(std::slice::from_ref(&booked), &calendar(), day);
            let window = list.work_orders[0].window.unwrap();
            assert_eq!((window.rule, window.due_at), (RuleId::K2, end_of(11, 29)));
            assert!(!window.missed, "on {day} the service day has not ended");
        }
        let after = daily_unclosed(std::slice::from_ref(&booked), &calendar(), date(11, 30));
        assert!(after.work_orders[0].window.unwrap().missed);
    }

    #[test]
    fn r_c4_an_earlier_day_shows_the_tickets_as_they_were_at_its_end() {
        // Received and dispatched on the 26th, finished and closed on the 27th.
        let closed_late = {
            let ticket = dispatch(
                &work_order("t-1", shanghai(11, 26, 10, 0)),
                "li",
                shanghai(11, 26, 10, 5),
            );
            let ticket = complete(&ticket, "li", paid(), Some(None), shanghai(11, 27, 9, 0));
            act(
                &ticket,
                "diaodu",
                OfficeOp::Close {},
                shanghai(11, 27, 10, 0),
            )
        };
        // Received on the 26th and still open.
        let still_open = dispatch(
            &work_order("t-2", shanghai(11, 26, 11, 0)),
            "zhang",
            shanghai(11, 26, 11, 5),
        );
        let received_later = work_order("t-3", shanghai(11, 27, 8, 0));
        let tickets = [closed_late, still_open, received_later];

        let the_26th = daily_unclosed(&tickets, &calendar(), date(11, 26));
        assert_eq!(ids(&the_26th.work_orders), ["t-1", "t-2"]);
        let item = &the_26th.work_orders[0];
        assert_eq!(item.status, Status::Dispatched);
        assert_eq!(item.responsible, technician("li"));
        assert!(!item.window.unwrap().missed);

        let the_27th = daily_unclosed(&tickets, &calendar(), date(11, 27));
        assert_eq!(ids(&the_27th.work_orders), ["t-2", "t-3"]);
        // R-K2: a day old and unfinished, its window is missed.
        let overdue = &the_27th.work_orders[0];
        assert_eq!(overdue.age_days, 1);
        assert!(overdue.window.unwrap().missed);
    }

    #[test]
    fn r_c4_a_completed_ticket_waits_for_the_signature_the_sign_off_then_the_closing_role() {
        let at = shanghai(11, 27, 9, 0);
        let dispatched = dispatch(&work_order("t-unsigned", at), "li", at);
        let unsigned = complete(&dispatched, "li", paid(), None, at);
        let dispatched = dispatch(&work_order("t-signed", at), "li", at);
        let signed = complete(&dispatched, "li", paid(), Some(None), at);
        let environment = report("t-env", TicketKind::WorkOrder, Category::Environment, at);
        let coordination = |id| {
            let ticket = report(id, TicketKind::CoordinationTicket, Category::Repair, at);
            let ticket = dispatch(&ticket, "wang", at);
            complete(&ticket, "wang", Charge::Free {}, None, at)
        };
        let not_signed_off = coordination("t-ct-1");
        let signed_off = act(
            &coordination("t-ct-2"),
            "banzhang",
            OfficeOp::SignOff {
                note: String::new(),
            },
            at,
        );
        let communication = report(
            "t-ct-3",
            TicketKind::CoordinationTicket,
            Category::OwnerCommunication,
            at,
        );
        let tickets = [
            unsigned,
            signed,
            environment,
            not_signed_off,
            signed_off,
            communication,
        ];

        let list = daily_unclosed(&tickets, &calendar(), date(11, 27));
        let responsible: Vec<(&str, &Responsible)> = list
            .work_orders
            .iter()
            .chain(&list.coordination_tickets)
            .map(|item| (item.ticket_id.as_str(), &item.responsible))
            .collect();
        assert_eq!(
            responsible,
            [
                ("t-env", &role(Role::EnvironmentManager)),
                ("t-signed", &role(Role::Dispatcher)),
                ("t-unsigned", &technician("li")),
                ("t-ct-1", &role(Role::DepartmentManager)),
                ("t-ct-2", &role(Role::CustomerServiceManager)),
                ("t-ct-3", &role(Role::CustomerServiceSpecialist)),
            ]
        );
    }

    #[test]
    fn r_c4_coordination_tickets_are_listed_apart_with_their_next_3_day_check() {
        let issued = report(
            "t-ct",
            TicketKind::CoordinationTicket,
            Category::Repair,
            shanghai(11, 23, 10, 0),
        );
        let checked = track(&issued, TrackingKind::Check {}, shanghai(11, 24, 15, 0));
        let tickets = [checked];

        let list = daily_unclosed(&tickets, &calendar(), date(11, 27));
        assert!(list.work_orders.is_empty());
        let window = list.coordination_tickets[0].window.unwrap();
        // R-P4: checked on the 24th, the next check is due by the end of the 27th.
        assert_eq!((window.rule, window.duty), (RuleId::P4, Duty::Check));
        assert_eq!(window.due_at, end_of(11, 27));
        assert!(!window.missed);
        assert_eq!(list.coordination_tickets[0].age_days, 4);
        let later = daily_unclosed(&tickets, &calendar(), date(11, 28));
        assert!(later.coordination_tickets[0].window.unwrap().missed);
        // The day before the check, the clock ran from the issue: due the 26th.
        let before = daily_unclosed(&tickets, &calendar(), date(11, 23));
        assert_eq!(
            before.coordination_tickets[0].window.unwrap().due_at,
            end_of(11, 26)
        );
    }

    #[test]
    fn r_c4_a_converted_work_order_is_listed_as_itself_before_and_as_its_coordination_ticket_after()
    {
        let work_order = dispatch(
            &work_order("t-wo", shanghai(11, 26, 9, 0)),
            "li",
            shanghai(11, 26, 9, 5),
        );
        let (converted, coordination) = convert_work_order(
            &work_order,
            TicketId::parse("t-ct").unwrap(),
            "needs a part from the supplier 需订货",
            &user("diaodu"),
            shanghai(11, 27, 9, 0),
        )
        .unwrap();
        let tickets = [converted, coordination];

        let the_26th = daily_unclosed(&tickets, &calendar(), date(11, 26));
        assert_eq!(ids(&the_26th.work_orders), ["t-wo"]);
        assert!(the_26th.coordination_tickets.is_empty());

        let the_27th = daily_unclosed(&tickets, &calendar(), date(11, 27));
        assert!(the_27th.work_orders.is_empty());
        assert_eq!(ids(&the_27th.coordination_tickets), ["t-ct"]);
        let item = &the_27th.coordination_tickets[0];
        // R-D1: the environment manager dispatches a coordination ticket;
        // R-P4 counts from the conversion, not the work order's receipt.
        assert_eq!(item.responsible, role(Role::EnvironmentManager));
        assert_eq!(item.window.unwrap().due_at, end_of(11, 30));
    }

    #[test]
    fn r_c4_verbal_dispatches_are_not_on_the_daily_list() {
        let verbal = report(
            "t-verbal",
            TicketKind::VerbalDispatch,
            Category::Security,
            shanghai(11, 27, 9, 0),
        );
        let list = daily_unclosed([&verbal], &calendar(), date(11, 27));
        assert!(list.work_orders.is_empty() && list.coordination_tickets.is_empty());
    }

    // ---- R-A3 ----------------------------------------------------------------

    #[test]
    fn r_a3_r_c5_the_month_counts_kinds_categories_paid_free_and_the_closure_rate() {
        let at = |day, hour| shanghai(11, day, hour, 0);
        let converted_pair = convert_work_order(
            &work_order("t-converted", at(20, 9)),
            TicketId::parse("t-from-converted").unwrap(),
            "needs a part 需订货",
            &user("diaodu"),
            at(21, 9),
        )
        .unwrap();
        let verbal = report(
            "t-verbal",
            TicketKind::VerbalDispatch,
            Category::Security,
            at(5, 9),
        );
        let tickets = [
            closed_work_order("t-paid", at(2, 9), paid(), None),
            closed_work_order("t-free", at(3, 9), Charge::Free {}, Some(Rating::Satisfied)),
            work_order("t-open", at(4, 9)),
            cancel(&work_order("t-cancelled", at(4, 10)), at(4, 11)),
            act(&verbal, "kefu", OfficeOp::Close {}, at(5, 10)),
            report(
                "t-talk",
                TicketKind::CoordinationTicket,
                Category::OwnerCommunication,
                at(6, 9),
            ),
            converted_pair.0,
            converted_pair.1,
            // Another month's tickets: October, and 00:30 on 1 December in
            // Shanghai (still 30 November in UTC).
            closed_work_order("t-october", shanghai(10, 31, 23, 0), paid(), None),
            work_order("t-december", shanghai(12, 1, 0, 30)),
        ];

        let statistics = monthly_statistics(&tickets, &calendar(), november(), at(27, 12)).unwrap();

        assert_eq!(statistics.month.to_string(), "2026-11");
        assert_eq!(
            (statistics.from, statistics.until),
            (shanghai(11, 1, 0, 0), shanghai(12, 1, 0, 0))
        );
        assert_eq!(statistics.received, 8);
        assert_eq!(
            statistics.by_kind,
            KindCounts {
                verbal_dispatch: 1,
                work_order: 5,
                coordination_ticket: 2,
            }
        );
        assert_eq!(statistics.by_category.repair, 6);
        assert_eq!(statistics.by_category.security, 1);
        assert_eq!(statistics.by_category.owner_communication, 1);
        assert_eq!(
            statistics.charges,
            ChargeCounts {
                paid: 1,
                free: 1,
                not_recorded: 0,
                paid_fee_fen: 3500,
            }
        );
        // Closed: two work orders and the verbal dispatch, out of 8 - 1
        // cancelled - 1 converted.
        let closure = statistics.closure;
        assert_eq!(
            (closure.closed, closure.cancelled, closure.converted),
            (3, 1, 1)
        );
        assert_eq!(closure.closable, 6);
        assert_eq!(closure.closure_rate_percent, Some(50.0));
        assert_eq!(statistics.by_status.received, 3);
        assert_eq!(
            ids(&statistics.unclosed),
            ["t-open", "t-talk", "t-from-converted"]
        );
        let open = &statistics.unclosed[0];
        assert_eq!(open.age_days, 23);
        assert_eq!(open.responsible, role(Role::Dispatcher));
        assert!(open.window.unwrap().missed);
        assert!(statistics.missing_signatures.is_empty());
    }

    #[test]
    fn r_c5_paid_and_free_count_closed_engineering_work_orders_only() {
        let at = shanghai(11, 10, 9, 0);
        let environment = {
            let ticket = report("t-env", TicketKind::WorkOrder, Category::Environment, at);
            let ticket = act(
                &ticket,
                "huanjing",
                OfficeOp::Dispatch {
                    technician: user("li"),
                },
                at,
            );
            let ticket = complete(&ticket, "li", paid(), Some(None), at);
            act(&ticket, "huanjing", OfficeOp::Close {}, at)
        };
        let completed = complete(
            &dispatch(&work_order("t-done", at), "li", at),
            "li",
            paid(),
            Some(None),
            at,
        );
        let tickets = [environment, completed];
        let statistics = monthly_statistics(&tickets, &calendar(), november(), at).unwrap();
        assert_eq!(statistics.charges, ChargeCounts::default());
        assert_eq!(statistics.closure.closed, 1);
    }

    #[test]
    fn r_p1_arrival_is_met_missed_pending_or_lapsed_with_its_ticket() {
        let dispatched_at = shanghai(11, 27, 9, 0);
        let dispatched = |id| dispatch(&work_order(id, dispatched_at), "li", dispatched_at);
        let arrive = |ticket: &Ticket, minute| {
            let at = shanghai(11, 27, 9, minute);
            field(
                ticket,
                "li",
                DeviceOp::RecordArrival { position: None },
                at,
                at,
            )
        };
        let with_appointment = act(
            &dispatched("t-appointment"),
            "kefu",
            OfficeOp::SetAppointment {
                at: shanghai(11, 27, 14, 0),
                note: String::new(),
            },
            shanghai(11, 27, 9, 10),
        );
        let tickets = [
            arrive(&dispatched("t-on-time"), 14),
            arrive(&dispatched("t-late"), 16),
            dispatched("t-waiting"),
            // Cancelled before anyone had to be there: not counted.
            cancel(&dispatched("t-cancelled"), shanghai(11, 27, 9, 5)),
            // R-P1: the appointment is the deadline.
            {
                let at = shanghai(11, 27, 13, 50);
                field(
                    &with_appointment,
                    "li",
                    DeviceOp::RecordArrival { position: None },
                    at,
                    at,
                )
            },
            work_order("t-never-dispatched", dispatched_at),
        ];

        let at_09_10 = monthly_statistics(
            &tickets[2..3],
            &calendar(),
            november(),
            shanghai(11, 27, 9, 10),
        )
        .unwrap();
        assert_eq!(tally(&at_09_10, RuleId::P1, Duty::Arrival), (0, 0, 1));
        let statistics =
            monthly_statistics(&tickets, &calendar(), november(), shanghai(11, 27, 15, 0)).unwrap();
        // Met: on time and by the appointment; missed: late and still waiting.
        assert_eq!(tally(&statistics, RuleId::P1, Duty::Arrival), (2, 2, 0));
    }

    #[test]
    fn r_p3_the_inspection_is_booked_within_half_a_working_day_and_the_owner_answered_within_24_hours()
     {
        // Friday 16:00: the booking is due Monday 11:30, the reply Saturday 16:00.
        let issued = report(
            "t-ct",
            TicketKind::CoordinationTicket,
            Category::Repair,
            shanghai(11, 27, 16, 0),
        );
        let replied = track(
            &issued,
            TrackingKind::OwnerReply {},
            shanghai(11, 28, 17, 0),
        );
        let booked = track(
            &replied,
            TrackingKind::InspectionBooked {
                at: shanghai(12, 1, 10, 0),
            },
            shanghai(11, 30, 11, 0),
        );
        let tickets = [booked];
        let statistics =
            monthly_statistics(&tickets, &calendar(), november(), shanghai(11, 30, 12, 0)).unwrap();
        assert_eq!(
            tally(&statistics, RuleId::P3, Duty::BookSiteInspection),
            (1, 0, 0)
        );
        assert_eq!(
            tally(&statistics, RuleId::P3, Duty::ReplyToOwner),
            (0, 1, 0)
        );
        // Before either was due and done, both are pending.
        let early = monthly_statistics([&issued], &calendar(), november(), shanghai(11, 27, 17, 0))
            .unwrap();
        assert_eq!(
            tally(&early, RuleId::P3, Duty::BookSiteInspection),
            (0, 0, 1)
        );
        assert_eq!(tally(&early, RuleId::P3, Duty::ReplyToOwner), (0, 0, 1));
    }

    #[test]
    fn r_p4_checks_count_met_or_missed_against_the_deadline_the_one_before_set() {
        let issued = report(
            "t-ct",
            TicketKind::CoordinationTicket,
            Category::Repair,
            shanghai(11, 20, 10, 0),
        );
        // Due by the end of the 23rd: met. Then due by the end of the 25th: missed.
        let ticket = track(&issued, TrackingKind::Check {}, shanghai(11, 22, 10, 0));
        let ticket = track(&ticket, TrackingKind::Check {}, shanghai(11, 27, 10, 0));
        let tickets = [ticket];
        let statistics =
            monthly_statistics(&tickets, &calendar(), november(), shanghai(11, 28, 12, 0)).unwrap();
        // The next check is due by the end of the 30th: pending.
        assert_eq!(tally(&statistics, RuleId::P4, Duty::Check), (1, 1, 1));
        // No progress report: due by the end of the 25th, overdue since.
        assert_eq!(
            tally(&statistics, RuleId::P4, Duty::ReplyToOwner),
            (0, 1, 0)
        );
    }

    #[test]
    fn r_f1_paid_orders_unhappy_free_orders_and_coordination_tickets_are_followed_up_in_24_hours() {
        let closed_at = shanghai(11, 10, 9, 30);
        let followed_up = act(
            &closed_work_order("t-paid", shanghai(11, 10, 9, 0), paid(), None),
            "kefu",
            OfficeOp::RecordFollowUp {
                reached: true,
                rating: Some(Rating::Satisfied),
                note: String::new(),
            },
            closed_at + Duration::hours(3),
        );
        let tickets = [
            followed_up,
            // Free and satisfied: no follow-up needed.
            closed_work_order(
                "t-satisfied",
                shanghai(11, 10, 9, 0),
                Charge::Free {},
                Some(Rating::Satisfied),
            ),
            // Free and dissatisfied: needed, never done.
            closed_work_order(
                "t-unhappy",
                shanghai(11, 10, 9, 0),
                Charge::Free {},
                Some(Rating::Dissatisfied),
            ),
            // Closed an hour ago: still pending.
            closed_work_order("t-recent", shanghai(11, 27, 9, 0), paid(), None),
            // Every coordination ticket: closed two days ago, not followed up.
            {
                let at = shanghai(11, 25, 9, 0);
                let ticket = report("t-ct", TicketKind::CoordinationTicket, Category::Repair, at);
                let ticket = complete(&dispatch(&ticket, "wang", at), "wang", paid(), None, at);
                let sign_off = OfficeOp::SignOff {
                    note: String::new(),
                };
                let ticket = act(&ticket, "banzhang", sign_off, at);
                act(&ticket, "kefu-jingli", OfficeOp::Close {}, at)
            },
        ];
        let statistics =
            monthly_statistics(&tickets, &calendar(), november(), shanghai(11, 27, 10, 30))
                .unwrap();
        assert_eq!(tally(&statistics, RuleId::F1, Duty::FollowUp), (1, 2, 1));
    }

    #[test]
    fn r_a3_a_closed_work_order_without_the_owners_signature_is_a_review_point() {
        let at = shanghai(11, 10, 9, 0);
        let signed = closed_work_order("t-signed", at, paid(), None);
        // Closed before this server checked signatures, say: no signature.
        let mut unsigned = complete(
            &dispatch(&work_order("t-unsigned", at), "li", at),
            "li",
            paid(),
            None,
            at,
        );
        unsigned.status = Status::Closed;
        unsigned.closed = Some(Closure {
            by: user("diaodu"),
            at,
        });
        let tickets = [signed, unsigned];
        let statistics = monthly_statistics(&tickets, &calendar(), november(), at).unwrap();
        let missing: Vec<&str> = statistics
            .missing_signatures
            .iter()
            .map(|reference| reference.ticket_id.as_str())
            .collect();
        assert_eq!(missing, ["t-unsigned"]);
    }

    #[test]
    fn r_a3_an_empty_month_has_no_closure_rate_and_every_duty_at_zero() {
        let statistics =
            monthly_statistics([], &calendar(), november(), shanghai(11, 27, 9, 0)).unwrap();
        assert_eq!(statistics.received, 0);
        assert_eq!(statistics.closure.closure_rate_percent, None);
        assert_eq!(statistics.timeliness.len(), 6);
        assert!(
            statistics
                .timeliness
                .iter()
                .all(|tally| (tally.met, tally.missed, tally.pending) == (0, 0, 0))
        );
    }

    #[test]
    fn closure_rates_are_rounded_to_two_decimals() {
        assert_eq!(percent(1, 3), Some(33.33));
        assert_eq!(percent(2, 3), Some(66.67));
        assert_eq!(percent(3, 3), Some(100.0));
        assert_eq!(percent(0, 0), None);
    }

    #[test]
    fn a_report_month_is_written_yyyy_mm_and_spans_the_local_month() {
        let month = ReportMonth::parse("2026-12").unwrap();
        assert_eq!((month.year(), month.month()), (2026, 12));
        assert_eq!(month.next(), ReportMonth::new(2027, 1));
        assert_eq!(serde_json::to_value(month).unwrap(), "2026-12");
        assert_eq!(
            serde_json::from_value::<ReportMonth>("2026-12".into()).unwrap(),
            month
        );
        let (from, until) = month.bounds(&calendar());
        assert_eq!(from, shanghai(12, 1, 0, 0));
        assert_eq!(
            until,
            calendar().start_of_local_date(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap())
        );
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "2026-11-01",
            "",
            "２０２６-11",
        ] {
            assert!(ReportMonth::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ReportMonth::containing(&calendar(), shanghai(12, 1, 0, 30)),
            month
        );
    }

    // ---- Digests -------------------------------------------------------------

    /// A small seedable generator for varied ticket lives.
    struct Dice(u64);

    impl Dice {
        /// Uniform in `0..sides`.
        fn roll(&mut self, sides: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % sides
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.roll(100) < percent
        }

        fn minutes(&mut self, up_to: u64) -> Duration {
            Duration::minutes(1 + self.roll(up_to) as i64)
        }
    }

    /// The moments of one life, each a little after the one before.
    struct Timeline(DateTime<Utc>);

    impl Timeline {
        fn later(&mut self, dice: &mut Dice, up_to_minutes: u64) -> DateTime<Utc> {
            self.0 += dice.minutes(up_to_minutes);
            self.0
        }
    }

    /// One ticket's life from its receipt, with every fate the reports tell
    /// apart: verbal dispatches; work orders undispatched, dispatched, with an
    /// appointment, arrived on time or late, completed paid or free, signed
    /// with any rating or not, closed (when signed), followed up, cancelled
    /// or converted;
    /// coordination tickets booked, replied to and checked on time or late,
    /// signed off, closed and followed up. Received between late October and
    /// early December, so that some fall outside November; a conversion
    /// adds its coordination ticket.
    fn varied_life(number: u64, dice: &mut Dice) -> Vec<Ticket> {
        let id = format!("tk{number:08}");
        let received_at =
            shanghai(10, 28, 0, 0) + Duration::minutes(dice.roll(40 * 24 * 60) as i64);
        let mut time = Timeline(received_at);
        match dice.roll(10) {
            0 => {
                let category = [Category::Security, Category::Environment][dice.roll(2) as usize];
                let ticket = report(&id, TicketKind::VerbalDispatch, category, received_at);
                if dice.chance(70) {
                    return vec![act(
                        &ticket,
                        "kefu",
                        OfficeOp::Close {},
                        time.later(dice, 120),
                    )];
                }
                vec![ticket]
            }
            1..=7 => {
                let category = [Category::Repair, Category::Rework, Category::Environment]
                    [dice.roll(3) as usize];
                let mut ticket = report(&id, TicketKind::WorkOrder, category, received_at);
                if dice.chance(25) {
                    ticket.area = Area::PublicArea;
                }
                if dice.chance(10) {
                    return vec![ticket];
                }
                ticket = dispatch(&ticket, "li", time.later(dice, 60));
                if dice.chance(15) {
                    let appointment = OfficeOp::SetAppointment {
                        at: time.0 + Duration::hours(3),
                        note: String::new(),
                    };
                    ticket = act(&ticket, "kefu", appointment, time.later(dice, 10));
                }
                if dice.chance(10) {
                    return vec![cancel(&ticket, time.later(dice, 600))];
                }
                if dice.chance(10) {
                    return vec![ticket];
                }
                // The device's clock says when: on time or late for R-P1.
                let arrived_at = time.later(dice, 40);
                ticket = field(
                    &ticket,
                    "li",
                    DeviceOp::RecordArrival { position: None },
                    arrived_at,
                    arrived_at,
                );
                if dice.chance(10) {
                    let (converted, coordination) = convert_work_order(
                        &ticket,
                        TicketId::parse(&format!("{id}-ct")).unwrap(),
                        "needs a part 需订货",
                        &user("diaodu"),
                        time.later(dice, 3 * 24 * 60),
                    )
                    .unwrap();
                    return vec![converted, coordination_life(coordination, time.0, dice)];
                }
                if dice.chance(10) {
                    return vec![ticket];
                }
                let charge = match dice.roll(3) {
                    0 => Charge::Free {},
                    _ => Charge::Paid {
                        fee_fen: 100 * (1 + dice.roll(300)),
                    },
                };
                let signature = match dice.roll(5) {
                    0 => None,
                    1 => Some(None),
                    2 => Some(Some(Rating::Satisfied)),
                    3 => Some(Some(Rating::BasicallySatisfied)),
                    _ => Some(Some(Rating::Dissatisfied)),
                };
                ticket = complete(&ticket, "li", charge, signature, time.later(dice, 24 * 60));
                // R-P7: a work order is closed only over the owner's signature.
                if signature.is_none() || dice.chance(15) {
                    return vec![ticket];
                }
                ticket = act(
                    &ticket,
                    "diaodu",
                    OfficeOp::Close {},
                    time.later(dice, 24 * 60),
                );
                if dice.chance(70) {
                    ticket = follow_up(&ticket, time.later(dice, 48 * 60));
                }
                vec![ticket]
            }
            _ => {
                let category =
                    [Category::Repair, Category::OwnerCommunication][dice.roll(2) as usize];
                let ticket = report(&id, TicketKind::CoordinationTicket, category, received_at);
                vec![coordination_life(ticket, received_at, dice)]
            }
        }
    }

    fn coordination_life(mut ticket: Ticket, issued_at: DateTime<Utc>, dice: &mut Dice) -> Ticket {
        let mut time = Timeline(issued_at);
        if dice.chance(80) {
            let booked = TrackingKind::InspectionBooked {
                at: time.0 + Duration::days(1),
            };
            ticket = track(&ticket, booked, time.later(dice, 16 * 60));
        }
        if dice.chance(80) {
            ticket = track(
                &ticket,
                TrackingKind::OwnerReply {},
                time.later(dice, 36 * 60),
            );
        }
        for _ in 0..dice.roll(5) {
            let kind = match dice.roll(2) {
                0 => TrackingKind::Check {},
                _ => TrackingKind::OwnerReply {},
            };
            ticket = track(&ticket, kind, time.later(dice, 6 * 24 * 60));
        }
        match dice.roll(4) {
            0 => ticket,
            1 => cancel(&ticket, time.later(dice, 24 * 60)),
            _ => {
                ticket = dispatch(&ticket, "wang", time.later(dice, 60));
                ticket = complete(
                    &ticket,
                    "wang",
                    Charge::Free {},
                    None,
                    time.later(dice, 3 * 24 * 60),
                );
                if dice.chance(20) {
                    return ticket;
                }
                let sign_off = OfficeOp::SignOff {
                    note: String::new(),
                };
                ticket = act(&ticket, "banzhang", sign_off, time.later(dice, 24 * 60));
                if dice.chance(20) {
                    return ticket;
                }
                ticket = act(
                    &ticket,
                    "kefu-jingli",
                    OfficeOp::Close {},
                    time.later(dice, 24 * 60),
                );
                if dice.chance(50) {
                    ticket = follow_up(&ticket, time.later(dice, 48 * 60));
                }
                ticket
            }
        }
    }

    fn follow_up(ticket: &Ticket, at: DateTime<Utc>) -> Ticket {
        let op = OfficeOp::RecordFollowUp {
            reached: true,
            rating: None,
            note: String::new(),
        };
        act(ticket, "kefu", op, at)
    }

    /// What the server stores: the digest as JSON, read back.
    fn stored(digest: &ReportDigest) -> ReportDigest {
        serde_json::from_slice(&serde_json::to_vec(digest).unwrap()).unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn r_a3_statistics_from_stored_digests_in_any_order_equal_those_from_whole_tickets(
            seed in 1..u64::MAX,
            count in 1..60u64,
        ) {
            let mut dice = Dice(seed);
            let tickets: Vec<Ticket> = (1..=count)
                .flat_map(|number| varied_life(number, &mut dice))
                .collect();
            // Digests made once, as the tickets were last written, then
            // judged during the month, at its end and a week later.
            let digests: Vec<ReportDigest> = tickets.iter().map(ReportDigest::of).collect();
            for now in [
                shanghai(11, 12, 9, 0),
                shanghai(12, 1, 10, 0),
                shanghai(12, 8, 10, 0),
            ] {
                let calendar = calendar();
                let whole = monthly_statistics(&tickets, &calendar, november(), now).unwrap();
                let mut builder = MonthlyStatisticsBuilder::new(&calendar, november(), now);
                for digest in digests.iter().rev() {
                    builder.add_digest(stored(digest));
                }
                proptest::prop_assert_eq!(builder.finish().unwrap(), whole);
            }
        }
    }

    #[test]
    fn a_digest_depends_only_on_the_ticket_and_round_trips_through_json() {
        let mut dice = Dice(7);
        for ticket in (1..=200).flat_map(|number| varied_life(number, &mut dice)) {
            let digest = ReportDigest::of(&ticket);
            assert_eq!(stored(&digest), digest);
            assert_eq!(ReportDigest::of(&ticket.clone()), digest);
            assert_eq!(digest.unclosed.is_some(), is_unclosed(ticket.status));
        }
    }

    #[test]
    fn a_digest_keeps_its_times_to_the_nanosecond_however_far_from_1970() {
        let mut ticket = work_order("t-far", shanghai(11, 10, 9, 0));
        for received_at in [
            shanghai(11, 10, 9, 0) + Duration::nanoseconds(123_456_789),
            DateTime::from_timestamp(-30_000_000_000, 1).unwrap(),
            DateTime::from_timestamp(20_000_000_000, 999_999_999).unwrap(),
        ] {
            ticket.received_at = received_at;
            let digest = ReportDigest::of(&ticket);
            assert_eq!(stored(&digest), digest);
            assert_eq!(stored(&digest).received_at, received_at);
        }
    }

    // ---- R-A2 ----------------------------------------------------------------

    fn estate() -> EstateId {
        EstateId::parse("E01").unwrap()
    }

    fn number(kind: SerialKind, month: u8, sequence: u64) -> SerialNumber {
        let month = SerialMonth::new(2026, month).unwrap();
        SerialSeries::new(estate(), kind, month).number(sequence)
    }

    fn numbered(mut ticket: Ticket, number: SerialNumber) -> Ticket {
        ticket.serial_number = Some(number);
        ticket
    }

    fn archive_of(tickets: &[Ticket], handed_out: HandedOut) -> MonthlyArchive {
        let calendar = calendar();
        let mut builder =
            MonthlyArchiveBuilder::new(&calendar, &estate(), november(), shanghai(12, 1, 10, 0));
        for ticket in tickets {
            builder.add_digest(ReportDigest::of(ticket));
        }
        builder.finish(handed_out).unwrap()
    }

    fn serials(entries: &[ArchiveEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|entry| entry.serial_number.as_ref().unwrap().to_string())
            .collect()
    }

    #[test]
    fn r_a2_closed_forms_are_filed_by_number_paid_apart_from_free_and_the_rest_listed_as_not_closed()
     {
        let at = |day| shanghai(11, day, 9, 0);
        let wo = |sequence| number(SerialKind::WorkOrder, 11, sequence);
        let tickets = [
            numbered(closed_work_order("t-5", at(5), paid(), None), wo(5)),
            numbered(closed_work_order("t-1", at(6), paid(), None), wo(1)),
            numbered(
                closed_work_order("t-2", at(2), Charge::Free {}, Some(Rating::Satisfied)),
                wo(2),
            ),
            numbered(dispatch(&work_order("t-3", at(3)), "li", at(3)), wo(3)),
            numbered(cancel(&work_order("t-4", at(4)), at(4)), wo(4)),
            report(
                "t-verbal",
                TicketKind::VerbalDispatch,
                Category::Security,
                at(7),
            ),
        ];

        let archive = archive_of(
            &tickets,
            HandedOut {
                work_orders: 5,
                coordination_tickets: 0,
            },
        );

        assert_eq!(archive.month, november());
        assert_eq!(archive.from, shanghai(11, 1, 0, 0));
        let section = &archive.work_orders;
        assert_eq!(section.series, "E01-WO-202611");
        assert_eq!(
            serials(&section.paid),
            ["E01-WO-202611-00001", "E01-WO-202611-00005"]
        );
        assert_eq!(section.paid_fee_fen, 7000);
        assert_eq!(serials(&section.free), ["E01-WO-202611-00002"]);
        assert!(section.not_recorded.is_empty());
        assert_eq!(
            serials(&section.not_closed),
            ["E01-WO-202611-00003", "E01-WO-202611-00004"]
        );
        assert_eq!(section.not_closed[1].status, Status::Cancelled);
        assert_eq!(
            section.paid[0].closed_at,
            Some(at(6) + Duration::minutes(30))
        );
        assert!(section.numbering.complete, "{:?}", section.numbering);
        assert_eq!(section.numbering.numbered, 5);
        assert_eq!(archive.coordination_tickets.series, "E01-CT-202611");
        assert!(archive.coordination_tickets.numbering.complete);
        assert_eq!(archive.verbal_dispatches, 1);
    }

    #[test]
    fn r_a2_r_a1_missing_duplicated_and_unnumbered_forms_make_the_numbering_incomplete() {
        let at = shanghai(11, 10, 9, 0);
        let wo = |sequence| number(SerialKind::WorkOrder, 11, sequence);
        let tickets = [
            numbered(work_order("t-1", at), wo(1)),
            numbered(work_order("t-3", at), wo(3)),
            numbered(work_order("t-3-again", at), wo(3)),
            work_order("t-unnumbered", at),
        ];

        let archive = archive_of(
            &tickets,
            HandedOut {
                work_orders: 6,
                coordination_tickets: 0,
            },
        );

        let numbering = &archive.work_orders.numbering;
        assert!(!numbering.complete);
        assert_eq!(numbering.handed_out, 6);
        assert_eq!(numbering.numbered, 3);
        assert_eq!(numbering.missing_count, 4);
        let missing: Vec<String> = numbering.missing.iter().map(ToString::to_string).collect();
        assert_eq!(
            missing,
            [
                "E01-WO-202611-00002",
                "E01-WO-202611-00004",
                "E01-WO-202611-00005",
                "E01-WO-202611-00006",
            ]
        );
        assert_eq!(numbering.duplicated, [wo(3)]);
        assert_eq!(
            numbering.unnumbered,
            [TicketId::parse("t-unnumbered").unwrap()]
        );
        // The unnumbered form is listed after the numbered ones.
        let listed: Vec<&str> = archive
            .work_orders
            .not_closed
            .iter()
            .map(|entry| entry.ticket_id.as_str())
            .collect();
        assert_eq!(listed, ["t-1", "t-3", "t-3-again", "t-unnumbered"]);
    }

    #[test]
    fn r_a1_a_counter_far_ahead_of_the_forms_is_counted_in_full_and_listed_in_part() {
        let archive = archive_of(
            &[],
            HandedOut {
                work_orders: 0,
                coordination_tickets: 5000,
            },
        );
        let numbering = &archive.coordination_tickets.numbering;
        assert_eq!(numbering.missing_count, 5000);
        assert_eq!(numbering.missing.len(), MAX_LISTED_MISSING);
        assert_eq!(
            numbering.missing[0],
            number(SerialKind::CoordinationTicket, 11, 1)
        );
        assert!(archive.work_orders.numbering.complete);
    }

    #[test]
    fn r_a2_a_form_is_filed_in_the_month_of_its_number_not_of_its_receipt() {
        // Received on 30 November, converted on 2 December: the work order's
        // form is November's, the coordination ticket's December's.
        let received_at = shanghai(11, 30, 20, 0);
        let work_order = numbered(
            dispatch(&work_order("t-wo", received_at), "li", received_at),
            number(SerialKind::WorkOrder, 11, 1),
        );
        let (converted, coordination) = convert_work_order(
            &work_order,
            TicketId::parse("t-ct").unwrap(),
            "needs a part 需订货",
            &user("diaodu"),
            shanghai(12, 2, 9, 0),
        )
        .unwrap();
        let coordination = numbered(coordination, number(SerialKind::CoordinationTicket, 12, 1));
        let tickets = [converted, coordination];

        let november_archive = archive_of(
            &tickets,
            HandedOut {
                work_orders: 1,
                coordination_tickets: 0,
            },
        );
        assert_eq!(
            serials(&november_archive.work_orders.not_closed),
            ["E01-WO-202611-00001"]
        );
        assert_eq!(
            november_archive.work_orders.not_closed[0].status,
            Status::Converted
        );
        assert!(november_archive.coordination_tickets.not_closed.is_empty());
        assert!(november_archive.coordination_tickets.numbering.complete);

        let december = ReportMonth::parse("2026-12").unwrap();
        let mut builder =
            MonthlyArchiveBuilder::new(&calendar(), &estate(), december, shanghai(12, 3, 9, 0));
        assert_eq!(
            builder.series(SerialKind::CoordinationTicket).to_string(),
            "E01-CT-202612"
        );
        for ticket in &tickets {
            builder.add_digest(ReportDigest::of(ticket));
        }
        let december_archive = builder
            .finish(HandedOut {
                work_orders: 0,
                coordination_tickets: 1,
            })
            .unwrap();
        assert_eq!(
            serials(&december_archive.coordination_tickets.not_closed),
            ["E01-CT-202612-00001"]
        );
        assert!(december_archive.work_orders.not_closed.is_empty());
        assert!(december_archive.coordination_tickets.numbering.complete);
    }

    #[test]
    fn r_c5_a_stored_fee_beyond_any_real_one_counts_as_not_recorded() {
        let mut counts = ChargeCounts::default();
        let beyond = Charge::Paid {
            fee_fen: u64::MAX / 2 + 1,
        };
        for _ in 0..2 {
            count_charge(&mut counts, Some(&beyond)).unwrap();
        }
        count_charge(&mut counts, Some(&Charge::Paid { fee_fen: 500 })).unwrap();
        assert_eq!(
            (counts.paid, counts.not_recorded, counts.paid_fee_fen),
            (1, 2, 500)
        );
    }

    #[test]
    fn r_c5_a_fee_total_that_would_wrap_is_refused() {
        let mut total = u64::MAX - 1;
        assert_eq!(add_fee(&mut total, 2), Err(FeeTotalOverflow));
        assert_eq!(total, u64::MAX - 1, "a refused addition changes nothing");
    }
}
