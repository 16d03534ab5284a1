//! The deadlines of one ticket, as it is now: which time rules apply to its
//! kind and status, when each is due, whether it was done, and who has to act.
//! The due list (`GET /api/v1/due`), the server's scheduler and the monthly
//! statistics (R-A3) all read deadlines from here, so that they agree.
//!
//! Which deadlines a ticket has:
//!
//! | rule | duty | ticket | done by |
//! |---|---|---|---|
//! | R-P1 | arrival | open work order, dispatched, not a booking | first on-time arrival of the assigned technician (device time) |
//! | R-P2 | arrival | open booked work order (R-S2), dispatched or not | as R-P1 |
//! | R-K2 | finish | open work order; a booking counts from its service date | first on-time result (device time) |
//! | R-C2 | convert | open work order, due when its R-K2 finish is | as R-K2 (the conversion itself ends the work order) |
//! | R-C1 | return to dispatcher | completed or closed work order, from its first on-time result | the closure |
//! | R-P3 | book site inspection | open coordination ticket | first `inspection_booked` since issue |
//! | R-P3 | reply to owner | open coordination ticket | first `owner_reply` since issue |
//! | R-P4 | check, reply to owner | open coordination ticket | the next one after the last record |
//! | R-P5 | joint talk | open coordination ticket with an open escalation ([`r_p5_open_escalation`]) | a `joint_talk` record, which ends the escalation |
//! | R-F1 | follow-up | closed ticket that needs one ([`needs_follow_up`]) | first follow-up |
//!
//! A work order's weekly R-P4 check is not listed: work orders have no check
//! record yet (see `reports.rs`). R-C1 is done by the closure: the return
//! to the dispatcher has no record of its own, and the dispatcher closes a
//! returned order at once (SPEC R-C1).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkingCalendar;
use crate::ids::{TicketId, UserId};
use crate::reports::Responsible;
use crate::roles::Role;
use crate::serial::SerialNumber;
use crate::ticket::{
    Actor, Area, Category, HistoryEvent, Rating, Ticket, TicketKind, TrackingKind, TrackingRecord,
};
use crate::time_rules::{
    ContactOutcome, Deadline, DeadlineState, Duty, Escalation, OwnerContact, RuleId, assess,
    needs_follow_up, r_c1_return_deadline, r_c2_conversion_deadline, r_f1_follow_up_deadline,
    r_k2_finish_deadline, r_p1_arrival_deadline, r_p2_arrival_deadline, r_p3_owner_reply_deadline,
    r_p3_site_inspection_deadline, r_p4_cadences, r_p4_next_due, r_p5_escalation,
    r_p5_joint_talk_deadline,
};
use crate::workflow::Status;

/// Largest due-soon window a due list may ask for: one week, in minutes.
pub const MAX_DUE_WINDOW_MINUTES: i64 = 7 * 24 * 60;
/// The due-soon window when the caller names none, in minutes.
pub const DEFAULT_DUE_WINDOW_MINUTES: i64 = 60;
/// Most items one due list answers; the rest are counted in `left_off`.
pub const MAX_DUE_LIMIT: usize = 500;
/// Items a due list answers when the caller names no limit.
pub const DEFAULT_DUE_LIMIT: usize = 100;

/// One deadline of a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketDeadline {
    pub rule: RuleId,
    pub duty: Duty,
    /// Inclusive: done at this instant is in time.
    pub due_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub responsible: Responsible,
    /// For a deadline that calls for action from the moment it arises, not
    /// only as its due time nears (R-P5's escalation): when that was. Due
    /// lists show it as due soon from then on, whatever their window.
    pub listed_from: Option<DateTime<Utc>>,
}

/// Where an open deadline of a due list stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueState {
    /// Not done; due within the window (or right now), or listed from the
    /// moment it arose (R-P5's escalation).
    DueSoon,
    /// Not done and past its deadline.
    Overdue,
}

/// One line of a "due soon / overdue" list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DueItem {
    pub ticket_id: TicketId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<SerialNumber>,
    pub kind: TicketKind,
    pub category: Category,
    pub location: String,
    pub rule: RuleId,
    pub duty: Duty,
    pub due_at: DateTime<Utc>,
    pub state: DueState,
    pub responsible: Responsible,
}

/// The answer of `GET /api/v1/due`: the caller's most urgent due-soon and
/// overdue deadlines, earliest (the longest overdue) first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DueList {
    /// At most the limit asked for.
    pub items: Vec<DueItem>,
    /// How many more items the caller acts on were left off for the limit:
    /// all of them less urgent than the last one listed.
    pub left_off: u64,
}

/// Every deadline `ticket` has in its current kind and status, done or not.
pub fn ticket_deadlines(ticket: &Ticket, calendar: &WorkingCalendar) -> Vec<TicketDeadline> {
    let mut deadlines = Vec::new();
    let technician_or = |role: Role| match &ticket.assigned_technician {
        Some(user) => Responsible::Technician { user: user.clone() },
        None => Responsible::Role { role },
    };
    let dispatching_role = dispatching_role(ticket);
    match (ticket.kind, ticket.status.is_open()) {
        (TicketKind::WorkOrder, true) => {
            if let Some((deadline, done_at)) = r_p1_arrival(ticket).or_else(|| r_p2_arrival(ticket))
            {
                deadlines.push(of(deadline, done_at, technician_or(dispatching_role)));
            }
            let finish = r_k2_finish(ticket, calendar);
            let finished_at = first_finish(ticket, None);
            deadlines.push(of(finish, finished_at, technician_or(dispatching_role)));
            // R-C2: `responsible` names the dispatcher; every role that may
            // convert the order acts on it ([`acts_on`]).
            let conversion = r_c2_conversion_deadline(finish);
            let dispatcher = Responsible::Role {
                role: dispatching_role,
            };
            deadlines.push(of(conversion, finished_at, dispatcher));
        }
        (TicketKind::WorkOrder, false)
            if matches!(ticket.status, Status::Completed | Status::Closed) =>
        {
            if let Some((deadline, closed_at)) = r_c1_return(ticket, calendar) {
                // R-P7 first: without the owner's signature it cannot be closed.
                let responsible = if ticket.status == Status::Completed
                    && ticket.signature_of_current_result().is_none()
                {
                    technician_or(dispatching_role)
                } else {
                    Responsible::Role {
                        role: role_that(|role| role.may_close(ticket.kind, ticket.category)),
                    }
                };
                deadlines.push(of(deadline, closed_at, responsible));
            }
        }
        (TicketKind::CoordinationTicket, true) => {
            let issued_at = issued_at(ticket);
            let inspection = r_p3_site_inspection_deadline(calendar, issued_at);
            let booked_at = r_p3_inspection_booked_at(ticket, issued_at);
            deadlines.push(of(
                inspection,
                booked_at,
                Responsible::Role {
                    role: dispatching_role,
                },
            ));
            let specialist = Responsible::Role {
                role: Role::CustomerServiceSpecialist,
            };
            let reply = r_p3_owner_reply_deadline(issued_at);
            let replied_at = r_p3_owner_replied_at(ticket, issued_at);
            deadlines.push(of(reply, replied_at, specialist.clone()));
            for cadence in r_p4_cadences(ticket.kind, ticket.category) {
                let last_done_at = ticket
                    .tracking
                    .iter()
                    .filter(|record| record.at >= issued_at && counts_for(cadence.duty, record))
                    .map(|record| record.at)
                    .max();
                let next = r_p4_next_due(calendar, *cadence, issued_at, last_done_at);
                deadlines.push(of(next, None, specialist.clone()));
            }
            if let Some(escalation) = r_p5_open_escalation(ticket) {
                let manager = Responsible::Role {
                    role: Role::CustomerServiceManager,
                };
                let joint_talk = r_p5_joint_talk_deadline(&escalation);
                deadlines.push(TicketDeadline {
                    listed_from: Some(escalation.at),
                    ..of(joint_talk, None, manager)
                });
            }
        }
        _ => {}
    }
    if ticket.status == Status::Closed {
        let rating = ticket
            .signature_of_current_result()
            .and_then(|signature| signature.body.rating);
        if let Some((deadline, followed_up_at)) = r_f1_follow_up(ticket, rating) {
            let role = if ticket.kind == TicketKind::CoordinationTicket {
                Role::CustomerServiceSpecialist
            } else {
                role_that(Role::may_follow_up)
            };
            deadlines.push(of(deadline, followed_up_at, Responsible::Role { role }));
        }
    }
    deadlines
}

/// Whether the ticket may still have a deadline that is not done: it is
/// open or completed (R-C1: a work order waits to be closed), or closed and
/// waiting for its follow-up (R-F1). Every other ticket's deadlines are all
/// done, so a due list or a dispatch queue reads only these.
pub fn has_pending_duties(ticket: &Ticket) -> bool {
    if ticket.status.is_open() || ticket.status == Status::Completed {
        return true;
    }
    let rating = ticket
        .signature_of_current_result()
        .and_then(|signature| signature.body.rating);
    r_f1_follow_up(ticket, rating).is_some_and(|(_, followed_up_at)| followed_up_at.is_none())
}

/// The open deadlines of `tickets` that are due within `due_soon_window` of
/// `now` or overdue, earliest first (ties by ticket, then rule).
pub fn due_items<'a>(
    tickets: impl IntoIterator<Item = &'a Ticket>,
    calendar: &WorkingCalendar,
    now: DateTime<Utc>,
    due_soon_window: Duration,
) -> Vec<DueItem> {
    let mut items = Vec::new();
    for ticket in tickets {
        for deadline in ticket_deadlines(ticket, calendar) {
            let state = match assess(deadline.due_at, deadline.done_at, now, due_soon_window) {
                DeadlineState::DueSoon => DueState::DueSoon,
                DeadlineState::Overdue => DueState::Overdue,
                DeadlineState::Pending
                    if deadline
                        .listed_from
                        .is_some_and(|listed_from| listed_from <= now) =>
                {
                    DueState::DueSoon
                }
                _ => continue,
            };
            items.push(DueItem {
                ticket_id: ticket.id.clone(),
                serial_number: ticket.serial_number.clone(),
                kind: ticket.kind,
                category: ticket.category,
                location: ticket.location.clone(),
                rule: deadline.rule,
                duty: deadline.duty,
                due_at: deadline.due_at,
                state,
                responsible: deadline.responsible,
            });
        }
    }
    sort_earliest_first(&mut items);
    items
}

/// Builds one caller's due list a ticket at a time, so that the server can
/// feed it an estate page by page: the first `limit` items of [`due_items`]
/// that the caller [`acts_on`], in the same order, and how many more there
/// were. Holds at most `limit` items, however large the estate.
pub struct DueListBuilder<'a> {
    calendar: &'a WorkingCalendar,
    now: DateTime<Utc>,
    due_soon_window: Duration,
    role: Role,
    user: &'a UserId,
    limit: usize,
    /// Only this rule's items, when set (the follow-ups list: R-F1).
    rule: Option<RuleId>,
    /// The most urgent items so far, the least urgent of them on top.
    kept: BinaryHeap<ByUrgency>,
    added: u64,
    left_off: u64,
}

impl<'a> DueListBuilder<'a> {
    pub fn new(
        calendar: &'a WorkingCalendar,
        now: DateTime<Utc>,
        due_soon_window: Duration,
        role: Role,
        user: &'a UserId,
        limit: usize,
    ) -> Self {
        Self {
            calendar,
            now,
            due_soon_window,
            role,
            user,
            limit,
            rule: None,
            kept: BinaryHeap::new(),
            added: 0,
            left_off: 0,
        }
    }

    /// Only the items of `rule`.
    pub fn only(mut self, rule: Option<RuleId>) -> Self {
        self.rule = rule;
        self
    }

    pub fn add(&mut self, ticket: &Ticket) {
        let items = due_items([ticket], self.calendar, self.now, self.due_soon_window);
        for item in items {
            if !acts_on(self.role, self.user, &item)
                || self.rule.is_some_and(|rule| rule != item.rule)
            {
                continue;
            }
            self.kept.push(ByUrgency {
                item,
                added: self.added,
            });
            self.added += 1;
            if self.kept.len() > self.limit {
                self.kept.pop();
                self.left_off += 1;
            }
        }
    }

    pub fn finish(self) -> DueList {
        DueList {
            items: self
                .kept
                .into_sorted_vec()
                .into_iter()
                .map(|kept| kept.item)
                .collect(),
            left_off: self.left_off,
        }
    }
}

/// A due item ordered as [`due_items`] sorts: earliest deadline first, then
/// ticket, then rule; items equal in those (one ticket's duties of one rule)
/// in the order they were added, which is the order of [`ticket_deadlines`].
struct ByUrgency {
    item: DueItem,
    added: u64,
}

impl ByUrgency {
    fn key(&self) -> (DateTime<Utc>, &TicketId, RuleId, u64) {
        (
            self.item.due_at,
            &self.item.ticket_id,
            self.item.rule,
            self.added,
        )
    }
}

impl Ord for ByUrgency {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for ByUrgency {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ByUrgency {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ByUrgency {}

/// Earliest deadline first; ties by ticket, then rule.
fn sort_earliest_first(items: &mut [DueItem]) {
    items.sort_by(|a, b| (a.due_at, &a.ticket_id, a.rule).cmp(&(b.due_at, &b.ticket_id, b.rule)));
}

/// Whether a user with `role` acts on `item` (the due list's filter): a
/// technician on their own items; the role that dispatches a ticket also
/// watches its technician's arrival and finish (R-D1); customer service calls
/// the owner once an arrival is overdue (R-P1: to book an appointment; R-P2:
/// the agreed time was missed); the department lead returns finished orders
/// (R-C1); every role that may convert a work order sees its conversion due
/// (R-C2); the customer-service manager sees every follow-up (R-F1); a role
/// on items whose responsible role it is; a supervisor on everything.
pub fn acts_on(role: Role, user: &UserId, item: &DueItem) -> bool {
    match (&item.responsible, role) {
        (_, Role::Supervisor) => true,
        (Responsible::Technician { user: holder }, Role::Technician) => holder == user,
        (Responsible::Agent { user: holder }, _) => holder == user,
        (_, Role::CustomerServiceAgent)
            if matches!(item.rule, RuleId::P1 | RuleId::P2) && item.state == DueState::Overdue =>
        {
            true
        }
        (_, Role::DepartmentManager) if item.rule == RuleId::C1 => true,
        // The customer-service manager sees every follow-up through (R-F1,
        // counted in R-A3's timeliness) and may make any of the calls.
        (_, Role::CustomerServiceManager) if item.rule == RuleId::F1 => true,
        (_, _) if item.rule == RuleId::C2 => role.may_convert(item.category),
        (Responsible::Technician { .. }, _) => role.may_dispatch(item.kind, item.category),
        (Responsible::Role { role: responsible }, _) => *responsible == role,
    }
}

/// R-P1 for a dispatched work order that is not a booking: the arrival
/// deadline (the appointment once booked) and the first arrival the assigned
/// technician recorded that is not flagged late, judged by its corrected
/// device time (`Fact::event_at`).
pub fn r_p1_arrival(ticket: &Ticket) -> Option<(Deadline, Option<DateTime<Utc>>)> {
    if ticket.booking.is_some() {
        return None;
    }
    let dispatched_at = ticket.dispatched_at?;
    let appointment_at = ticket
        .appointment
        .as_ref()
        .map(|appointment| appointment.at);
    let deadline = r_p1_arrival_deadline(dispatched_at, appointment_at);
    Some((deadline, first_arrival(ticket)))
}

/// R-P2 for a booked work order (R-S2): arrival by the time agreed with the
/// owner, whether it was dispatched yet or not; done as R-P1 is.
pub fn r_p2_arrival(ticket: &Ticket) -> Option<(Deadline, Option<DateTime<Utc>>)> {
    let booking = ticket.booking.as_ref()?;
    let deadline = r_p2_arrival_deadline(booking.agreed_time);
    Some((deadline, first_arrival(ticket)))
}

/// R-K2 for a work order: finished by the end of the local day of its
/// receipt, or of its service date when it is a booking (R-S2); in a public
/// area three days later.
pub fn r_k2_finish(ticket: &Ticket, calendar: &WorkingCalendar) -> Deadline {
    let service_date = ticket.booking.as_ref().map(|booking| booking.service_date);
    r_k2_finish_from(calendar, ticket.received_at, service_date, ticket.area)
}

/// [`r_k2_finish`] from the parts of a ticket the reports keep.
pub fn r_k2_finish_from(
    calendar: &WorkingCalendar,
    received_at: DateTime<Utc>,
    service_date: Option<NaiveDate>,
    area: Area,
) -> Deadline {
    let counted_from = match service_date {
        Some(date) => calendar.start_of_local_date(date),
        None => received_at,
    };
    r_k2_finish_deadline(calendar, counted_from, area)
}

/// R-C1 for a completed or closed work order: returned to the dispatcher
/// and closed by the end of the day of its first on-time result (a public
/// area: three days later), and the closure, if it was.
pub fn r_c1_return(
    ticket: &Ticket,
    calendar: &WorkingCalendar,
) -> Option<(Deadline, Option<DateTime<Utc>>)> {
    let finished_at = first_finish(ticket, None)?;
    let closed_at = ticket.closed.as_ref().map(|closure| closure.at);
    Some((
        r_c1_return_deadline(calendar, finished_at, ticket.area),
        closed_at,
    ))
}

/// R-P5: the escalation the ticket's owner contacts call for
/// ([`r_p5_escalation`]) that no joint talk has ended. A `joint_talk`
/// record ends the case: only contacts after the last one (and after the
/// issue) count towards the next. `None` when there is no open case.
pub fn r_p5_open_escalation(ticket: &Ticket) -> Option<Escalation> {
    let issued_at = issued_at(ticket);
    let last_joint_talk = ticket
        .tracking
        .iter()
        .filter(|record| matches!(record.kind, TrackingKind::JointTalk {}))
        .map(|record| record.at)
        .max();
    let contacts: Vec<OwnerContact> = ticket
        .tracking
        .iter()
        .filter(|record| record.at >= issued_at)
        .filter(|record| last_joint_talk.is_none_or(|talk| record.at > talk))
        .filter_map(|record| match record.kind {
            TrackingKind::OwnerContact {
                reached,
                proposal_rejected,
            } => Some(OwnerContact {
                at: record.at,
                outcome: match (reached, proposal_rejected) {
                    (false, _) => ContactOutcome::NotReached,
                    (true, false) => ContactOutcome::Reached,
                    (true, true) => ContactOutcome::ProposalRejected,
                },
            }),
            _ => None,
        })
        .collect();
    r_p5_escalation(&contacts)
}

/// Whether the ticket's history records `escalation` already: once per case,
/// as a missed deadline is once per (rule, due_at).
pub fn escalation_recorded(ticket: &Ticket, escalation: &Escalation) -> bool {
    ticket.history.iter().any(|entry| {
        matches!(
            entry.event,
            HistoryEvent::Escalated { reason, since }
                if reason == escalation.reason && since == escalation.since
        )
    })
}

/// The first arrival the assigned technician recorded that is not flagged
/// late, by its corrected device time.
fn first_arrival(ticket: &Ticket) -> Option<DateTime<Utc>> {
    ticket
        .arrivals
        .values()
        .filter(|fact| fact.late.is_none())
        .filter(|fact| ticket.assigned_technician.as_ref() == Some(&fact.recorded_by))
        .map(|fact| fact.event_at())
        .min()
}

/// R-P3: when the department first booked the site inspection since the
/// ticket was issued ([`issued_at`]).
pub fn r_p3_inspection_booked_at(
    ticket: &Ticket,
    issued_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    first_tracked(ticket, issued_at, |kind| {
        matches!(kind, TrackingKind::InspectionBooked { .. })
    })
}

/// R-P3: when the specialist first replied to the owner since the ticket
/// was issued ([`issued_at`]).
pub fn r_p3_owner_replied_at(ticket: &Ticket, issued_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    first_tracked(ticket, issued_at, |kind| {
        matches!(kind, TrackingKind::OwnerReply {})
    })
}

/// R-F1 for a closed ticket that needs a follow-up ([`needs_follow_up`]):
/// the deadline and the first follow-up recorded, reached or not. `rating`
/// is the owner's, given with the signature of the current result; the
/// caller passes it because it has usually looked for that signature already.
pub fn r_f1_follow_up(
    ticket: &Ticket,
    rating: Option<Rating>,
) -> Option<(Deadline, Option<DateTime<Utc>>)> {
    let closure = ticket
        .closed
        .as_ref()
        .filter(|_| ticket.status == Status::Closed)?;
    if !needs_follow_up(ticket.kind, ticket.charge(), rating) {
        return None;
    }
    let followed_up_at = ticket.follow_ups.iter().map(|follow_up| follow_up.at).min();
    Some((r_f1_follow_up_deadline(closure.at), followed_up_at))
}

/// Whether the scheduler already recorded that `rule` was missed at `due_at`.
pub fn deadline_miss_recorded(ticket: &Ticket, rule: RuleId, due_at: DateTime<Utc>) -> bool {
    ticket.history.iter().any(|entry| {
        matches!(
            entry.event,
            HistoryEvent::DeadlineMissed { rule: recorded, due_at: recorded_at }
                if recorded == rule && recorded_at == due_at
        )
    })
}

/// The ticket with `deadline_missed { rule, due_at }` in its history, or
/// `None` when there is nothing to record: the deadline is not (or no longer)
/// one of the ticket's, it was done, it is not past yet, or the miss is
/// already recorded. Exactly once per (rule, due_at), whoever asks how often.
/// For R-P1 the entry is the flag that customer service must book an
/// appointment with the owner.
pub fn record_deadline_missed(
    ticket: &Ticket,
    calendar: &WorkingCalendar,
    rule: RuleId,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Ticket> {
    let still_missed = ticket_deadlines(ticket, calendar).iter().any(|deadline| {
        deadline.rule == rule && deadline.due_at == due_at && deadline.done_at.is_none()
    });
    if !still_missed || now <= due_at || deadline_miss_recorded(ticket, rule, due_at) {
        return None;
    }
    let mut next = ticket.clone();
    next.record(
        now,
        Actor::Scheduler {},
        HistoryEvent::DeadlineMissed { rule, due_at },
        ticket.status,
    );
    Some(next)
}

/// When the ticket became a coordination ticket: its receipt, or the
/// conversion it came from (R-C2).
pub fn issued_at(ticket: &Ticket) -> DateTime<Utc> {
    ticket
        .history
        .iter()
        .rev()
        .find(|entry| matches!(entry.event, HistoryEvent::ConvertedFrom { .. }))
        .map_or(ticket.received_at, |entry| entry.at)
}

fn of(
    deadline: Deadline,
    done_at: Option<DateTime<Utc>>,
    responsible: Responsible,
) -> TicketDeadline {
    TicketDeadline {
        rule: deadline.rule,
        duty: deadline.duty,
        due_at: deadline.due_at,
        done_at,
        responsible,
        listed_from: None,
    }
}

/// When the technician first recorded an on-time result (corrected device
/// time), counting only results the server had by `by` (all: `None`).
pub(crate) fn first_finish(ticket: &Ticket, by: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    ticket
        .results
        .values()
        .filter(|fact| fact.late.is_none() && by.is_none_or(|by| fact.received_at <= by))
        .map(|fact| fact.event_at())
        .min()
}

fn first_tracked(
    ticket: &Ticket,
    issued_at: DateTime<Utc>,
    wanted: fn(&TrackingKind) -> bool,
) -> Option<DateTime<Utc>> {
    ticket
        .tracking
        .iter()
        .filter(|record| record.at >= issued_at && wanted(&record.kind))
        .map(|record| record.at)
        .min()
}

/// R-P4: whether `record` does the `duty` of a cadence (a check, or a reply
/// to the owner).
pub fn counts_for(duty: Duty, record: &TrackingRecord) -> bool {
    match duty {
        Duty::Check => matches!(record.kind, TrackingKind::Check {}),
        Duty::ReplyToOwner => matches!(record.kind, TrackingKind::OwnerReply {}),
        _ => false,
    }
}

fn dispatching_role(ticket: &Ticket) -> Role {
    role_that(|role| role.may_dispatch(ticket.kind, ticket.category))
}

fn role_that(may: impl Fn(Role) -> bool) -> Role {
    Role::ALL
        .into_iter()
        .find(|role| may(*role))
        .unwrap_or(Role::Supervisor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::tests::{date, shanghai};
    use crate::ids::{DeviceId, DeviceSeq};
    use crate::merge::{Recorder, merge};
    use crate::mutation::{DeviceMutation, DeviceOp};
    use crate::office::tests::{
        at, booked_ticket, coordination_ticket, dispatched_booking, dispatched_ticket,
        signed_work_order, user,
    };
    use crate::office::{OfficeOp, apply_office_op};

    fn calendar() -> WorkingCalendar {
        WorkingCalendar::asia_shanghai()
    }

    fn arrive(ticket: &Ticket, technician: &str, recorded_at: DateTime<Utc>) -> Ticket {
        let recorder = Recorder {
            user: user(technician),
            device: DeviceId::parse(&format!("hh-{technician}")).unwrap(),
            clock_offset_ms: 0,
        };
        let mutation = DeviceMutation {
            seq: DeviceSeq(1),
            ticket_id: ticket.id.clone(),
            base_version: ticket.version,
            recorded_at,
            op: DeviceOp::RecordArrival { position: None },
        };
        merge(ticket, &recorder, &mutation, recorded_at)
            .ticket
            .expect("the arrival applies")
    }

    fn arrival_deadline(ticket: &Ticket) -> TicketDeadline {
        ticket_deadlines(ticket, &calendar())
            .into_iter()
            .find(|deadline| deadline.rule == RuleId::P1)
            .expect("a dispatched work order has an R-P1 deadline")
    }

    #[test]
    fn r_p1_a_dispatched_work_order_is_due_15_minutes_after_dispatch_by_its_technician() {
        let ticket = dispatched_ticket("li");
        let deadline = arrival_deadline(&ticket);
        assert_eq!(deadline.due_at, at(9, 16));
        assert_eq!(deadline.done_at, None);
        assert_eq!(
            deadline.responsible,
            Responsible::Technician { user: user("li") }
        );
    }

    #[test]
    fn r_p1_an_appointment_replaces_the_15_minutes() {
        let ticket = dispatched_ticket("li");
        let op = OfficeOp::SetAppointment {
            at: at(14, 0),
            note: String::new(),
        };
        let appointed =
            apply_office_op(&ticket, &op, &user("kefu"), &calendar(), at(9, 20)).unwrap();
        assert_eq!(arrival_deadline(&appointed).due_at, at(14, 0));
    }

    #[test]
    fn r_p1_an_arrival_marks_the_deadline_done() {
        let arrived = arrive(&dispatched_ticket("li"), "li", at(9, 10));
        assert_eq!(arrival_deadline(&arrived).done_at, Some(at(9, 10)));
        assert!(
            due_items([&arrived], &calendar(), at(9, 30), Duration::hours(1))
                .iter()
                .all(|item| item.rule != RuleId::P1)
        );
    }

    #[test]
    fn r_k2_an_open_work_order_has_a_finish_deadline_at_the_end_of_its_day() {
        let ticket = dispatched_ticket("li");
        let finish = ticket_deadlines(&ticket, &calendar())
            .into_iter()
            .find(|deadline| deadline.rule == RuleId::K2)
            .unwrap();
        assert_eq!(finish.duty, Duty::Finish);
        assert_eq!(
            finish.due_at,
            calendar().end_of_local_day(ticket.received_at)
        );
    }

    #[test]
    fn r_p1_due_items_are_due_soon_then_overdue_and_sorted_by_due_time() {
        let ticket = dispatched_ticket("li");
        let soon = due_items([&ticket], &calendar(), at(9, 5), Duration::minutes(15));
        assert_eq!(soon.len(), 1);
        assert_eq!(
            (soon[0].rule, soon[0].state),
            (RuleId::P1, DueState::DueSoon)
        );
        let late = due_items([&ticket], &calendar(), at(9, 17), Duration::days(1));
        assert_eq!(late[0].rule, RuleId::P1);
        assert_eq!(late[0].state, DueState::Overdue);
        assert!(late.windows(2).all(|pair| pair[0].due_at <= pair[1].due_at));
        assert!(late.iter().any(|item| item.rule == RuleId::K2));
    }

    #[test]
    fn r_p1_a_technician_acts_on_their_own_items_the_dispatcher_and_supervisor_on_theirs() {
        let ticket = dispatched_ticket("li");
        let items = due_items([&ticket], &calendar(), at(9, 5), Duration::minutes(15));
        let item = &items[0];
        assert!(acts_on(Role::Technician, &user("li"), item));
        assert!(!acts_on(Role::Technician, &user("wang"), item));
        assert!(acts_on(Role::Dispatcher, &user("diaodu"), item));
        assert!(acts_on(Role::Supervisor, &user("boss"), item));
        assert!(!acts_on(Role::CustomerServiceAgent, &user("kefu"), item));
        let overdue = due_items([&ticket], &calendar(), at(9, 17), Duration::zero());
        assert!(acts_on(
            Role::CustomerServiceAgent,
            &user("kefu"),
            &overdue[0]
        ));
    }

    #[test]
    fn r_p1_a_due_list_built_ticket_by_ticket_keeps_what_the_caller_acts_on_earliest_first() {
        let li_later = {
            let mut ticket = dispatched_ticket("li");
            ticket.id = TicketId::parse("tk00000002").unwrap();
            ticket.dispatched_at = ticket.dispatched_at.map(|at| at + Duration::minutes(5));
            ticket
        };
        let zhang = {
            let mut ticket = dispatched_ticket("zhang");
            ticket.id = TicketId::parse("tk00000003").unwrap();
            ticket
        };
        let li_first = dispatched_ticket("li");
        let calendar = calendar();
        let window = Duration::minutes(60);
        let list_of = |role, name: &str| {
            let user = user(name);
            let mut builder =
                DueListBuilder::new(&calendar, at(9, 5), window, role, &user, MAX_DUE_LIMIT);
            for ticket in [&li_later, &zhang, &li_first] {
                builder.add(ticket);
            }
            builder.finish()
        };
        let everything = due_items([&li_later, &zhang, &li_first], &calendar, at(9, 5), window);
        assert_eq!(list_of(Role::Supervisor, "zhuguan").items, everything);
        let of_li = list_of(Role::Technician, "li").items;
        assert_eq!(
            of_li,
            everything
                .iter()
                .filter(|item| item.responsible == Responsible::Technician { user: user("li") })
                .cloned()
                .collect::<Vec<_>>()
        );
        assert_eq!(of_li.len(), 2);
        assert!(of_li[0].due_at <= of_li[1].due_at);
    }

    #[test]
    fn a_limited_due_list_keeps_the_most_urgent_items_and_counts_the_rest() {
        let tickets: Vec<Ticket> = (1..=5)
            .map(|n| {
                let mut ticket = dispatched_ticket("li");
                ticket.id = TicketId::parse(&format!("tk0000000{n}")).unwrap();
                // Added latest first: the builder must reorder them.
                ticket.dispatched_at = ticket.dispatched_at.map(|at| at - Duration::minutes(n));
                ticket
            })
            .collect();
        let calendar = calendar();
        let supervisor = user("zhuguan");
        let window = Duration::minutes(60);
        let everything = due_items(&tickets, &calendar, at(9, 5), window);
        for limit in [0, 1, 3, everything.len(), everything.len() + 1] {
            let mut builder = DueListBuilder::new(
                &calendar,
                at(9, 5),
                window,
                Role::Supervisor,
                &supervisor,
                limit,
            );
            for ticket in &tickets {
                builder.add(ticket);
            }
            let list = builder.finish();
            let kept = limit.min(everything.len());
            assert_eq!(list.items, everything[..kept], "limit {limit}");
            assert_eq!(
                list.left_off,
                (everything.len() - kept) as u64,
                "limit {limit}"
            );
        }
    }

    #[test]
    fn r_p1_a_missed_arrival_is_recorded_once_and_only_after_the_deadline() {
        let ticket = dispatched_ticket("li");
        let calendar = calendar();
        assert!(
            record_deadline_missed(&ticket, &calendar, RuleId::P1, at(9, 16), at(9, 16)).is_none()
        );
        let flagged =
            record_deadline_missed(&ticket, &calendar, RuleId::P1, at(9, 16), at(9, 17)).unwrap();
        assert_eq!(flagged.version, ticket.version.next());
        assert_eq!(flagged.status, ticket.status);
        assert!(deadline_miss_recorded(&flagged, RuleId::P1, at(9, 16)));
        assert!(
            record_deadline_missed(&flagged, &calendar, RuleId::P1, at(9, 16), at(9, 30)).is_none()
        );
    }

    #[test]
    fn r_p1_an_arrival_in_time_leaves_nothing_to_record() {
        let arrived = arrive(&dispatched_ticket("li"), "li", at(9, 10));
        assert!(
            record_deadline_missed(&arrived, &calendar(), RuleId::P1, at(9, 16), at(9, 17))
                .is_none()
        );
    }

    #[test]
    fn r_f1_a_closed_ticket_without_follow_up_has_no_open_work_deadlines() {
        let mut ticket = dispatched_ticket("li");
        ticket.status = Status::Cancelled;
        assert!(ticket_deadlines(&ticket, &calendar()).is_empty());
    }

    fn deadline_of(ticket: &Ticket, rule: RuleId) -> Option<TicketDeadline> {
        ticket_deadlines(ticket, &calendar())
            .into_iter()
            .find(|deadline| deadline.rule == rule)
    }

    #[test]
    fn r_p2_a_booking_is_due_by_the_end_of_its_agreed_window_not_15_minutes_after_dispatch() {
        let booked = booked_ticket();
        let waiting = deadline_of(&booked, RuleId::P2).expect("due from the booking on");
        assert_eq!(waiting.due_at, shanghai(11, 29, 11, 0));
        assert_eq!(
            waiting.responsible,
            Responsible::Role {
                role: Role::Dispatcher
            }
        );
        let dispatched = dispatched_booking();
        assert_eq!(deadline_of(&dispatched, RuleId::P1), None);
        let arrival = deadline_of(&dispatched, RuleId::P2).unwrap();
        assert_eq!(arrival.due_at, shanghai(11, 29, 11, 0));
        assert_eq!(
            arrival.responsible,
            Responsible::Technician { user: user("li") }
        );
        assert_eq!(r_p1_arrival(&dispatched), None, "reports judge no R-P1");
    }

    #[test]
    fn r_p2_r_k2_a_booking_is_finished_by_the_end_of_its_service_day() {
        let finish = deadline_of(&dispatched_booking(), RuleId::K2).unwrap();
        assert_eq!(finish.due_at, calendar().end_of_local_date(date(11, 29)));
    }

    #[test]
    fn r_p2_an_arrival_within_the_window_is_in_time() {
        let arrived = arrive(&dispatched_booking(), "li", shanghai(11, 29, 10, 40));
        let arrival = deadline_of(&arrived, RuleId::P2).unwrap();
        assert_eq!(arrival.done_at, Some(shanghai(11, 29, 10, 40)));
        let after = shanghai(11, 29, 11, 1);
        assert_eq!(
            record_deadline_missed(&arrived, &calendar(), RuleId::P2, arrival.due_at, after),
            None
        );
    }

    #[test]
    fn r_p2_a_missed_agreed_time_is_recorded_once_and_customer_service_calls_the_owner() {
        let ticket = dispatched_booking();
        let due_at = shanghai(11, 29, 11, 0);
        let after = due_at + Duration::minutes(1);
        let flagged =
            record_deadline_missed(&ticket, &calendar(), RuleId::P2, due_at, after).unwrap();
        assert!(deadline_miss_recorded(&flagged, RuleId::P2, due_at));
        assert_eq!(
            record_deadline_missed(&flagged, &calendar(), RuleId::P2, due_at, after),
            None
        );
        let items = due_items([&ticket], &calendar(), after, Duration::zero());
        let overdue = items.iter().find(|item| item.rule == RuleId::P2).unwrap();
        assert_eq!(overdue.state, DueState::Overdue);
        assert!(acts_on(Role::CustomerServiceAgent, &user("kefu"), overdue));
        assert!(acts_on(Role::Technician, &user("li"), overdue));
    }

    #[test]
    fn r_c2_an_open_work_order_is_converted_when_its_finish_is_due_by_whoever_may_convert() {
        let ticket = dispatched_ticket("li");
        let finish = deadline_of(&ticket, RuleId::K2).unwrap();
        let conversion = deadline_of(&ticket, RuleId::C2).unwrap();
        assert_eq!(
            (conversion.duty, conversion.due_at, conversion.done_at),
            (Duty::Convert, finish.due_at, None)
        );
        let after = finish.due_at + Duration::seconds(1);
        let items = due_items([&ticket], &calendar(), after, Duration::zero());
        let overdue = items.iter().find(|item| item.rule == RuleId::C2).unwrap();
        assert_eq!(overdue.state, DueState::Overdue);
        let who = |role, name: &str| acts_on(role, &user(name), overdue);
        assert!(who(Role::Dispatcher, "diaodu"));
        assert!(who(Role::CustomerServiceAgent, "kefu"));
        assert!(who(Role::CustomerServiceSpecialist, "zhuanyuan"));
        assert!(
            !who(Role::Technician, "li"),
            "a technician does not convert"
        );
        assert!(!who(Role::EnvironmentManager, "huanjing"));
        let flagged =
            record_deadline_missed(&ticket, &calendar(), RuleId::C2, finish.due_at, after).unwrap();
        assert!(deadline_miss_recorded(&flagged, RuleId::C2, finish.due_at));
        assert_eq!(deadline_of(&signed_work_order(), RuleId::C2), None);
    }

    #[test]
    fn a_ticket_without_pending_duties_has_every_deadline_done() {
        let act = |ticket: &Ticket, op: OfficeOp, by: &str| {
            apply_office_op(ticket, &op, &user(by), &calendar(), at(10, 0)).unwrap()
        };
        let closed = act(&signed_work_order(), OfficeOp::Close {}, "diaodu");
        // A free order the owner did not rate is followed up (R-F1).
        let mut unrated = signed_work_order();
        for signature in unrated.signatures.values_mut() {
            signature.body.rating = None;
        }
        let unrated = act(&unrated, OfficeOp::Close {}, "diaodu");
        let followed_up = act(
            &unrated,
            OfficeOp::RecordFollowUp {
                reached: true,
                rating: Some(crate::ticket::Rating::Satisfied),
                note: String::new(),
            },
            "kefu",
        );
        let cancelled = act(
            &dispatched_ticket("li"),
            OfficeOp::Cancel {
                reason: "业主撤销".to_owned(),
            },
            "kefu",
        );
        // The follow-ups list: R-F1 items only, whatever else is due.
        let supervisor = user("zhuguan");
        let window = Duration::days(7);
        let cal = calendar();
        let mut builder =
            DueListBuilder::new(&cal, at(10, 0), window, Role::Supervisor, &supervisor, 50)
                .only(Some(RuleId::F1));
        builder.add(&unrated);
        builder.add(&dispatched_ticket("li"));
        let list = builder.finish();
        assert_eq!(list.items.len(), 1, "{list:?}");
        assert_eq!(list.items[0].rule, RuleId::F1);
        for (ticket, pending) in [
            (booked_ticket(), true),
            (dispatched_ticket("li"), true),
            (coordination_ticket(), true),
            (signed_work_order(), true),
            (closed, false),
            (unrated, true),
            (followed_up, false),
            (cancelled, false),
        ] {
            assert_eq!(has_pending_duties(&ticket), pending, "{:?}", ticket.status);
            if !pending {
                assert!(
                    ticket_deadlines(&ticket, &calendar())
                        .iter()
                        .all(|deadline| deadline.done_at.is_some()),
                    "{:?}",
                    ticket.status
                );
            }
        }
    }

    #[test]
    fn r_c1_a_finished_order_is_returned_and_closed_by_the_end_of_its_day() {
        let completed = signed_work_order();
        let deadline = deadline_of(&completed, RuleId::C1).expect("completed: R-C1 runs");
        assert_eq!(deadline.duty, Duty::ReturnToDispatcher);
        assert_eq!(
            deadline.due_at,
            calendar().end_of_local_day(at(9, 20)),
            "from the result's device time"
        );
        assert_eq!(
            deadline.responsible,
            Responsible::Role {
                role: Role::Dispatcher
            }
        );
        let later = deadline.due_at + Duration::days(3);
        let items = due_items([&completed], &calendar(), later, Duration::zero());
        assert_eq!(items.len(), 1, "{items:?}");
        let who = |role, name: &str| acts_on(role, &user(name), &items[0]);
        assert!(who(Role::Dispatcher, "diaodu"));
        assert!(who(Role::DepartmentManager, "banzhang"));
        assert!(!who(Role::CustomerServiceAgent, "kefu"));
        assert!(!who(Role::Technician, "li"));

        let mut unsigned = completed.clone();
        unsigned.signatures.clear();
        assert_eq!(
            deadline_of(&unsigned, RuleId::C1).unwrap().responsible,
            Responsible::Technician { user: user("li") },
            "the owner signs first (R-P7)"
        );

        let op = crate::office::OfficeOp::Close {};
        let closed =
            apply_office_op(&completed, &op, &user("diaodu"), &calendar(), at(10, 0)).unwrap();
        assert_eq!(
            deadline_of(&closed, RuleId::C1).unwrap().done_at,
            Some(at(10, 0))
        );
        assert!(due_items([&closed], &calendar(), later, Duration::zero()).is_empty());
    }

    #[test]
    fn r_p5_an_escalation_is_due_to_the_customer_service_manager_at_once_until_a_joint_talk() {
        let track = |ticket: &Ticket, kind, now| {
            let op = OfficeOp::Track {
                kind,
                note: String::new(),
            };
            apply_office_op(ticket, &op, &user("zhuanyuan"), &calendar(), now).unwrap()
        };
        let rejected = TrackingKind::OwnerContact {
            reached: true,
            proposal_rejected: true,
        };
        let mut ticket = coordination_ticket();
        ticket = track(&ticket, rejected.clone(), at(10, 0));
        assert_eq!(deadline_of(&ticket, RuleId::P5), None);
        ticket = track(&ticket, rejected, at(11, 0));
        let deadline = deadline_of(&ticket, RuleId::P5).expect("escalated");
        assert_eq!(
            (deadline.duty, deadline.due_at, deadline.listed_from),
            (
                Duty::JointTalk,
                at(11, 0) + Duration::hours(24),
                Some(at(11, 0))
            )
        );
        // Listed at once, in a window of a minute, to the manager only.
        let items = due_items([&ticket], &calendar(), at(11, 1), Duration::minutes(1));
        let escalated = items.iter().find(|item| item.rule == RuleId::P5).unwrap();
        assert_eq!(escalated.state, DueState::DueSoon);
        assert!(acts_on(
            Role::CustomerServiceManager,
            &user("kefu-jingli"),
            escalated
        ));
        assert!(acts_on(Role::Supervisor, &user("zhuguan"), escalated));
        assert!(!acts_on(
            Role::CustomerServiceAgent,
            &user("kefu"),
            escalated
        ));
        let late = due_items(
            [&ticket],
            &calendar(),
            at(11, 0) + Duration::days(2),
            Duration::zero(),
        );
        let overdue = late.iter().find(|item| item.rule == RuleId::P5).unwrap();
        assert_eq!(overdue.state, DueState::Overdue);

        ticket = track(&ticket, TrackingKind::JointTalk {}, at(12, 0));
        assert_eq!(deadline_of(&ticket, RuleId::P5), None);
    }
}
