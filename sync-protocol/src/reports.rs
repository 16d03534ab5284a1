//! The reports of SPEC.md as pure functions over tickets: the daily list of
//! unclosed tickets with a responsible person per item (R-C4), and the
//! monthly statistics with the analysis of every unclosed item (R-A3).
//!
//! Both take the estate's tickets one at a time (a builder's `add`), so the
//! server can feed them page by page without holding the estate in memory,
//! and both do a constant amount of work per ticket (plus its history and
//! tracking records, read once): the monthly report over 100,000 tickets is
//! a single pass (docs/BENCHMARKS.md, "Reports").
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
//!   judged by the device's `recorded_at`; R-P3 and R-P4 count coordination
//!   tickets; R-F1 counts closed tickets that need a follow-up
//!   ([`needs_follow_up`]), by the first follow-up recorded, reached or not.
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
use crate::due::r_p1_arrival;
use crate::error::ParseError;
use crate::ids::{TicketId, UserId};
use crate::roles::Role;
use crate::serial::SerialNumber;
use crate::ticket::{
    Area, Category, Charge, HistoryEvent, Rating, Ticket, TicketKind, TrackingKind, TrackingRecord,
};
use crate::time_rules::{
    Cadence, DeadlineState, Duty, RuleId, assess, needs_follow_up, r_f1_follow_up_deadline,
    r_k2_finish_deadline, r_p3_owner_reply_deadline, r_p3_site_inspection_deadline, r_p4_cadences,
    r_p4_next_due,
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
        let item = unclosed_item(
            self.calendar,
            ticket,
            &lifecycle,
            &state,
            self.list.date,
            as_of,
        );
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
) -> MonthlyStatistics {
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
        }
    }

    /// Whether `ticket` was received in the report's month.
    pub fn includes(&self, ticket: &Ticket) -> bool {
        (self.statistics.from..self.statistics.until).contains(&ticket.received_at)
    }

    pub fn add(&mut self, ticket: &Ticket) {
        if !self.includes(ticket) {
            return;
        }
        let now = self.statistics.generated_at;
        let statistics = &mut self.statistics;
        statistics.received += 1;
        count_kind(&mut statistics.by_kind, ticket.kind);
        count_category(&mut statistics.by_category, ticket.category);
        count_status(&mut statistics.by_status, ticket.status);
        match ticket.status {
            Status::Closed => statistics.closure.closed += 1,
            Status::Cancelled => statistics.closure.cancelled += 1,
            Status::Converted => statistics.closure.converted += 1,
            _ => {}
        }

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

        if ticket.kind == TicketKind::WorkOrder && ticket.status == Status::Closed {
            if is_engineering(ticket.category) {
                count_charge(&mut statistics.charges, ticket.charge());
            }
            if !signed {
                statistics.missing_signatures.push(TicketRef {
                    ticket_id: ticket.id.clone(),
                    serial_number: ticket.serial_number.clone(),
                });
            }
        }

        if is_unclosed(ticket.status) {
            let state = StateAt::current(ticket, signed);
            let item = unclosed_item(self.calendar, ticket, &lifecycle, &state, self.today, now);
            statistics.unclosed.push(item);
        }

        match ticket.kind {
            TicketKind::WorkOrder => self.judge_arrival(ticket, &lifecycle),
            TicketKind::CoordinationTicket => self.judge_coordination(ticket, &lifecycle),
            TicketKind::VerbalDispatch => {}
        }
        self.judge_follow_up(ticket, rating);
    }

    pub fn finish(mut self) -> MonthlyStatistics {
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
        sort_by_receipt(&mut statistics.unclosed);
        self.statistics
    }

    /// R-P1: a dispatched work order's arrival, by the current technician.
    fn judge_arrival(&mut self, ticket: &Ticket, lifecycle: &Lifecycle) {
        let Some((deadline, arrived_at)) = r_p1_arrival(ticket) else {
            return;
        };
        let now = self.statistics.generated_at;
        self.arrival
            .judge(deadline.due_at, arrived_at, lifecycle.lapsed_at, now);
    }

    /// R-P3 and R-P4: the coordination ticket's bookings, replies and checks.
    fn judge_coordination(&mut self, ticket: &Ticket, lifecycle: &Lifecycle) {
        let now = self.statistics.generated_at;
        let issued_at = lifecycle.issued_at;
        let first_of = |wanted: fn(&TrackingKind) -> bool| {
            ticket
                .tracking
                .iter()
                .filter(|record| record.at >= issued_at && wanted(&record.kind))
                .map(|record| record.at)
                .min()
        };
        let inspection = r_p3_site_inspection_deadline(self.calendar, issued_at);
        let booked_at = first_of(|kind| matches!(kind, TrackingKind::InspectionBooked { .. }));
        self.site_inspection
            .judge(inspection.due_at, booked_at, lifecycle.lapsed_at, now);
        let reply = r_p3_owner_reply_deadline(issued_at);
        let replied_at = first_of(|kind| matches!(kind, TrackingKind::OwnerReply {}));
        self.owner_reply
            .judge(reply.due_at, replied_at, lifecycle.lapsed_at, now);

        for cadence in r_p4_cadences(ticket.kind, ticket.category) {
            let tally = match cadence.duty {
                Duty::Check => &mut self.cadence_check,
                _ => &mut self.cadence_reply,
            };
            judge_cadence(
                tally,
                self.calendar,
                *cadence,
                &ticket.tracking,
                issued_at,
                lifecycle.left_open_at,
                now,
            );
        }
    }

    /// R-F1: a closed ticket that needs a follow-up gets it within 24 hours.
    /// `rating` is the owner's, given with the signature of the current result.
    fn judge_follow_up(&mut self, ticket: &Ticket, rating: Option<Rating>) {
        let Some(closure) = &ticket.closed else {
            return;
        };
        if !needs_follow_up(ticket.kind, ticket.charge(), rating) {
            return;
        }
        let deadline = r_f1_follow_up_deadline(closure.at);
        let followed_up_at = ticket.follow_ups.iter().map(|follow_up| follow_up.at).min();
        let now = self.statistics.generated_at;
        self.follow_up
            .judge(deadline.due_at, followed_up_at, None, now);
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

/// R-P4, best effort: each record of the cadence's duty while the ticket is
/// open is met or missed against the deadline the one before it set; then
/// the next one is pending, or missed when overdue.
fn judge_cadence(
    tally: &mut Tally,
    calendar: &WorkingCalendar,
    cadence: Cadence,
    tracking: &[TrackingRecord],
    issued_at: DateTime<Utc>,
    left_open_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    let open_until = left_open_at.map_or(now, |left_open_at| left_open_at.min(now));
    let mut last_done_at = None;
    let records = tracking.iter().filter(|record| {
        record.at >= issued_at && record.at <= open_until && counts_for(cadence.duty, &record.kind)
    });
    for record in records {
        let deadline = r_p4_next_due(calendar, cadence, issued_at, last_done_at);
        if record.at <= deadline.due_at {
            tally.met += 1;
        } else {
            tally.missed += 1;
        }
        last_done_at = Some(record.at);
    }
    let next = r_p4_next_due(calendar, cadence, issued_at, last_done_at);
    if open_until > next.due_at {
        tally.missed += 1;
    } else if left_open_at.is_none() {
        tally.pending += 1;
    }
}

/// Which tracking records do a cadence's duty (R-P4).
fn counts_for(duty: Duty, kind: &TrackingKind) -> bool {
    match duty {
        Duty::Check => matches!(kind, TrackingKind::Check {}),
        Duty::ReplyToOwner => matches!(kind, TrackingKind::OwnerReply {}),
        _ => false,
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

/// When the technician first recorded an on-time result (device time),
/// counting only results the server had by `by`.
fn first_finish(ticket: &Ticket, by: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    ticket
        .results
        .values()
        .filter(|fact| fact.late.is_none() && by.is_none_or(|by| fact.received_at <= by))
        .map(|fact| fact.recorded_at)
        .min()
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

/// One unclosed ticket as of `as_of`, whose local day is `day`.
fn unclosed_item(
    calendar: &WorkingCalendar,
    ticket: &Ticket,
    lifecycle: &Lifecycle,
    state: &StateAt<'_>,
    day: NaiveDate,
    as_of: DateTime<Utc>,
) -> UnclosedItem {
    let age_days = (day - calendar.local_date(ticket.received_at)).num_days();
    let window = match ticket.kind {
        // R-K2: finished within the window (the same day; 3 days in a public area).
        TicketKind::WorkOrder => {
            let deadline = r_k2_finish_deadline(calendar, ticket.received_at, ticket.area);
            let judged = assess(deadline.due_at, state.finished_at, as_of, Duration::zero());
            Some(RuleWindow {
                rule: RuleId::K2,
                duty: Duty::Finish,
                due_at: deadline.due_at,
                missed: judged.is_missed(),
            })
        }
        // R-P4, R-C4: the specialist's next check of an open coordination ticket.
        TicketKind::CoordinationTicket if state.status.is_open() => {
            let cadence = r_p4_cadences(ticket.kind, ticket.category)
                .iter()
                .find(|cadence| cadence.duty == Duty::Check)
                .copied()
                .expect("a coordination ticket has a check cadence");
            let deadline =
                r_p4_next_due(calendar, cadence, lifecycle.issued_at, state.last_check_at);
            Some(RuleWindow {
                rule: RuleId::P4,
                duty: Duty::Check,
                due_at: deadline.due_at,
                missed: as_of > deadline.due_at,
            })
        }
        TicketKind::CoordinationTicket | TicketKind::VerbalDispatch => None,
    };
    UnclosedItem {
        ticket_id: ticket.id.clone(),
        serial_number: ticket.serial_number.clone(),
        kind: ticket.kind,
        category: ticket.category,
        area: ticket.area,
        location: ticket.location.clone(),
        description: ticket.description.clone(),
        status: state.status,
        received_at: ticket.received_at,
        age_days: u32::try_from(age_days.max(0)).unwrap_or(u32::MAX),
        responsible: responsible(ticket, state),
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

fn count_charge(counts: &mut ChargeCounts, charge: Option<&Charge>) {
    match charge {
        Some(Charge::Paid { fee_fen }) => {
            counts.paid += 1;
            counts.paid_fee_fen += fee_fen;
        }
        Some(Charge::Free {}) => counts.free += 1,
        None => counts.not_recorded += 1,
    }
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
    use crate::ticket::{Closure, CompletionRecord};

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
            received_at,
        )
        .unwrap()
    }

    fn work_order(id: &str, received_at: DateTime<Utc>) -> Ticket {
        report(id, TicketKind::WorkOrder, Category::Repair, received_at)
    }

    fn act(ticket: &Ticket, by: &str, op: OfficeOp, at: DateTime<Utc>) -> Ticket {
        apply_office_op(ticket, &op, &user(by), at).unwrap()
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
        let mut ticket = field(ticket, technician, DeviceOp::RecordArrival {}, at, at);
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

        let statistics = monthly_statistics(&tickets, &calendar(), november(), at(27, 12));

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
        let statistics = monthly_statistics(&tickets, &calendar(), november(), at);
        assert_eq!(statistics.charges, ChargeCounts::default());
        assert_eq!(statistics.closure.closed, 1);
    }

    #[test]
    fn r_p1_arrival_is_met_missed_pending_or_lapsed_with_its_ticket() {
        let dispatched_at = shanghai(11, 27, 9, 0);
        let dispatched = |id| dispatch(&work_order(id, dispatched_at), "li", dispatched_at);
        let arrive = |ticket: &Ticket, minute| {
            let at = shanghai(11, 27, 9, minute);
            field(ticket, "li", DeviceOp::RecordArrival {}, at, at)
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
                field(&with_appointment, "li", DeviceOp::RecordArrival {}, at, at)
            },
            work_order("t-never-dispatched", dispatched_at),
        ];

        let at_09_10 = monthly_statistics(
            &tickets[2..3],
            &calendar(),
            november(),
            shanghai(11, 27, 9, 10),
        );
        assert_eq!(tally(&at_09_10, RuleId::P1, Duty::Arrival), (0, 0, 1));
        let statistics =
            monthly_statistics(&tickets, &calendar(), november(), shanghai(11, 27, 15, 0));
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
            monthly_statistics(&tickets, &calendar(), november(), shanghai(11, 30, 12, 0));
        assert_eq!(
            tally(&statistics, RuleId::P3, Duty::BookSiteInspection),
            (1, 0, 0)
        );
        assert_eq!(
            tally(&statistics, RuleId::P3, Duty::ReplyToOwner),
            (0, 1, 0)
        );
        // Before either was due and done, both are pending.
        let early = monthly_statistics([&issued], &calendar(), november(), shanghai(11, 27, 17, 0));
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
            monthly_statistics(&tickets, &calendar(), november(), shanghai(11, 28, 12, 0));
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
            monthly_statistics(&tickets, &calendar(), november(), shanghai(11, 27, 10, 30));
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
        let statistics = monthly_statistics(&tickets, &calendar(), november(), at);
        let missing: Vec<&str> = statistics
            .missing_signatures
            .iter()
            .map(|reference| reference.ticket_id.as_str())
            .collect();
        assert_eq!(missing, ["t-unsigned"]);
    }

    #[test]
    fn r_a3_an_empty_month_has_no_closure_rate_and_every_duty_at_zero() {
        let statistics = monthly_statistics([], &calendar(), november(), shanghai(11, 27, 9, 0));
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
}
