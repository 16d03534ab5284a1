//! R-D3 dispatch priority (先业主后内部, 效率最高): which waiting ticket is
//! dispatched first, and which technician is the most efficient choice for
//! it. Pure: the server hands in the tickets and the technicians' open jobs.
//!
//! The rules, in order:
//!
//! - **The queue.** A ticket waits for dispatch while it is `received` and is
//!   a work order or a coordination ticket (a verbal dispatch goes out by
//!   radio, R-K1), and is issued: a booking (R-S2) from local 00:00 of the
//!   day before its service date, anything else at once. Owners' jobs (every
//!   source but self-inspection 自检) come before internal jobs
//!   (self-inspection), whatever their age; then the one waiting longest
//!   first, by `received_at` or, for a booking, by when it was issued if that
//!   is later; then the ticket id, so that the order is total.
//! - **The technicians.** The staff the owner agreed to for a booking comes
//!   first (R-S2). Then fewest open tickets (dispatched or in progress)
//!   first: a technician with less on hand gets there sooner. Among equal
//!   loads, the one with most open jobs in the ticket's building
//!   ([`building_of`]): they are there already, or on their way. Then the
//!   user id, so that the same state always gives the same answer. The ticket
//!   being ranked for counts in nobody's load, so that for a reassignment its
//!   current holder is not held back by it.
//!
//! Deliberately absent: travel times and the hour of each job ("whose jobs
//! there are nearest in time"). Nothing records a technician's route or plan
//! of the day, and a guess would make the ranking hard to explain; the
//! building is what a dispatcher checks by eye.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::WorkflowError;
use crate::ids::{TicketId, UserId};
use crate::office::require_issued;
use crate::ticket::{Source, Ticket, TicketKind};
use crate::wire::{MAX_SUGGESTIONS, Reason, Suggestion};
use crate::workflow::{Event, Status, transition};

/// Whose job a ticket is. Owners' jobs are dispatched first (R-D3); the
/// order of the variants is that priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// 业主报事: an owner reported it (phone, walk-in, follow-up call).
    Owner,
    /// 内部报事: staff found it on a self-inspection (自检).
    Internal,
}

impl Priority {
    pub fn of(source: Source) -> Priority {
        match source {
            Source::Phone | Source::WalkIn | Source::FollowUp => Priority::Owner,
            Source::SelfInspection => Priority::Internal,
        }
    }
}

/// A technician and the open jobs they hold, as [`suggest_technicians`] weighs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TechnicianLoad {
    pub technician: UserId,
    pub display_name: String,
    /// Tickets they hold that are dispatched or in progress.
    pub open_jobs: Vec<OpenJob>,
}

/// One open job of a technician: which ticket, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenJob {
    pub ticket_id: TicketId,
    pub location: String,
}

impl TechnicianLoad {
    /// The load of `technician` from tickets that were assigned to them
    /// (any status): the ones they hold open count.
    pub fn from_tickets<'a>(
        technician: UserId,
        display_name: String,
        tickets: impl IntoIterator<Item = &'a Ticket>,
    ) -> Self {
        let open_jobs = tickets
            .into_iter()
            .filter(|ticket| holds_open(ticket, &technician))
            .map(|ticket| OpenJob {
                ticket_id: ticket.id.clone(),
                location: ticket.location.clone(),
            })
            .collect();
        Self {
            technician,
            display_name,
            open_jobs,
        }
    }
}

/// Whether `technician` holds the ticket and still has work on it.
pub fn holds_open(ticket: &Ticket, technician: &UserId) -> bool {
    ticket.is_assigned_to(technician)
        && matches!(ticket.status, Status::Dispatched | Status::InProgress)
}

/// Whether the ticket waits in the dispatch queue at `now`: received, not
/// yet dispatched, a work order or coordination ticket, and issued (R-S2).
pub fn waits_for_dispatch(ticket: &Ticket, now: DateTime<Utc>) -> bool {
    ticket.status == Status::Received
        && matches!(
            ticket.kind,
            TicketKind::WorkOrder | TicketKind::CoordinationTicket
        )
        && ticket.is_issued(now)
}

/// R-D3: the tickets that wait for dispatch at `now`, in the order to
/// dispatch them: owners' jobs before internal ones, then the one waiting
/// longest, then by id.
pub fn dispatch_queue<'a>(
    tickets: impl IntoIterator<Item = &'a Ticket>,
    now: DateTime<Utc>,
) -> Vec<&'a Ticket> {
    let mut queue: Vec<&Ticket> = tickets
        .into_iter()
        .filter(|ticket| waits_for_dispatch(ticket, now))
        .collect();
    queue.sort_by(|a, b| queue_key(a).cmp(&queue_key(b)));
    queue
}

fn queue_key(ticket: &Ticket) -> (Priority, DateTime<Utc>, &TicketId) {
    (
        Priority::of(ticket.source),
        waiting_since(ticket),
        &ticket.id,
    )
}

/// Since when the ticket waits for dispatch: its receipt, or for a booking
/// received before its issue day, its issue (R-S2).
fn waiting_since(ticket: &Ticket) -> DateTime<Utc> {
    match &ticket.booking {
        Some(booking) => ticket.received_at.max(booking.issued_at),
        None => ticket.received_at,
    }
}

/// The building a location names: its text before the first `-`,
/// whitespace or `号` (as in `3号楼`), once trimmed; None when that is empty.
/// `3-1-502` → `3`, `B2 水泵房` → `B2`, `2号楼大堂` → `2`, `会所` → `会所`.
/// Buildings compare ignoring ASCII case (`b2` is `B2`).
pub fn building_of(location: &str) -> Option<&str> {
    let location = location.trim();
    let end = location
        .find(|c: char| c == '-' || c == '号' || c.is_whitespace())
        .unwrap_or(location.len());
    let building = &location[..end];
    (!building.is_empty()).then_some(building)
}

/// R-D3: the candidates ranked for `ticket`, most efficient first (see the
/// module documentation), at most [`MAX_SUGGESTIONS`]. Pass each technician
/// once.
pub fn suggest_technicians(ticket: &Ticket, candidates: &[TechnicianLoad]) -> Vec<Suggestion> {
    let building = building_of(&ticket.location);
    let agreed_staff = ticket
        .booking
        .as_ref()
        .and_then(|booking| booking.staff.as_ref());
    let mut weighed: Vec<(bool, u32, u32, &TechnicianLoad)> = candidates
        .iter()
        .map(|candidate| {
            let agreed = agreed_staff == Some(&candidate.technician);
            let (open_load, same_building_jobs) = weigh(candidate, ticket, building);
            (agreed, open_load, same_building_jobs, candidate)
        })
        .collect();
    weighed.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(b.2.cmp(&a.2))
            .then_with(|| a.3.technician.cmp(&b.3.technician))
    });
    weighed
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .zip(1..)
        .map(
            |((agreed, open_load, same_building_jobs, candidate), rank)| Suggestion {
                rank,
                technician: candidate.technician.clone(),
                display_name: candidate.display_name.clone(),
                open_load,
                same_building_jobs,
                reason: reason(agreed, open_load, same_building_jobs, building),
            },
        )
        .collect()
}

/// (open load, open jobs in `building`) of a candidate, not counting `ticket`.
fn weigh(candidate: &TechnicianLoad, ticket: &Ticket, building: Option<&str>) -> (u32, u32) {
    let mut open_load = 0u32;
    let mut same_building_jobs = 0u32;
    for job in candidate
        .open_jobs
        .iter()
        .filter(|job| job.ticket_id != ticket.id)
    {
        open_load = open_load.saturating_add(1);
        let same = building.is_some_and(|building| {
            building_of(&job.location).is_some_and(|other| other.eq_ignore_ascii_case(building))
        });
        if same {
            same_building_jobs = same_building_jobs.saturating_add(1);
        }
    }
    (open_load, same_building_jobs)
}

fn reason(agreed: bool, open_load: u32, same_building_jobs: u32, building: Option<&str>) -> Reason {
    let load = load_reason(open_load, same_building_jobs, building);
    if agreed {
        Reason {
            en: format!("agreed with the owner for this booking; {}", load.en),
            zh_cn: format!("业主预约指定人员；{}", load.zh_cn),
        }
    } else {
        load
    }
}

fn load_reason(open_load: u32, same_building_jobs: u32, building: Option<&str>) -> Reason {
    let open_en = if open_load == 1 {
        "1 open ticket".to_owned()
    } else {
        format!("{open_load} open tickets")
    };
    let (en, zh_cn) = match (open_load, building) {
        (0, _) => (
            "free: no open tickets".to_owned(),
            "空闲：没有在办工单".to_owned(),
        ),
        (_, Some(building)) if same_building_jobs > 0 => (
            format!(
                "{open_en}, {same_building_jobs} of them in building {building}: already nearby"
            ),
            format!("在办工单 {open_load} 张，其中 {same_building_jobs} 张在楼栋 {building}，就近"),
        ),
        (_, Some(building)) => (
            format!("{open_en}, none in building {building}"),
            format!("在办工单 {open_load} 张，均不在楼栋 {building}"),
        ),
        (_, None) => (open_en, format!("在办工单 {open_load} 张")),
    };
    Reason { en, zh_cn }
}

/// The event that would give the ticket a technician at `now`: dispatch
/// while it is received, reassign while it is dispatched or in progress;
/// refused (like the action itself would be) once it is completed, closed,
/// converted or cancelled, and for a booking before its issue (R-S2).
pub fn assignment_event(ticket: &Ticket, now: DateTime<Utc>) -> Result<Event, WorkflowError> {
    let event = if ticket.status == Status::Received {
        Event::Dispatch
    } else {
        Event::Reassign
    };
    transition(ticket.status, event)?;
    if event == Event::Dispatch {
        require_issued(ticket, now)?;
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::office::create_ticket;
    use crate::office::tests::{at, booked_ticket, calendar, intake, user};
    use crate::ticket::Category;

    fn ticket(id: &str, source: Source, minutes_after_nine: i64) -> Ticket {
        let received_at = at(9, 0) + Duration::minutes(minutes_after_nine);
        let follow_up_of = (source == Source::FollowUp).then(|| TicketId::parse("t-0").unwrap());
        let intake = crate::office::Intake {
            source,
            received_at,
            follow_up_of,
            ..intake()
        };
        create_ticket(
            TicketId::parse(id).unwrap(),
            intake,
            user("agent"),
            &calendar(),
            at(12, 0),
        )
        .unwrap()
    }

    fn at_location(id: &str, location: &str) -> Ticket {
        Ticket {
            location: location.to_owned(),
            ..ticket(id, Source::Phone, 0)
        }
    }

    fn held_by(technician: &str, status: Status, mut ticket: Ticket) -> Ticket {
        ticket.assigned_technician = Some(user(technician));
        ticket.status = status;
        ticket
    }

    fn load(technician: &str, locations: &[&str]) -> TechnicianLoad {
        let tickets: Vec<Ticket> = locations
            .iter()
            .enumerate()
            .map(|(n, location)| {
                let id = format!("{technician}-job-{n}");
                held_by(technician, Status::Dispatched, at_location(&id, location))
            })
            .collect();
        TechnicianLoad::from_tickets(user(technician), format!("师傅 {technician}"), &tickets)
    }

    fn ids(queue: &[&Ticket]) -> Vec<String> {
        queue.iter().map(|ticket| ticket.id.to_string()).collect()
    }

    fn ranking(suggestions: &[Suggestion]) -> Vec<(u32, String, u32, u32)> {
        suggestions
            .iter()
            .map(|s| {
                let who = s.technician.to_string();
                (s.rank, who, s.open_load, s.same_building_jobs)
            })
            .collect()
    }

    #[test]
    fn r_d3_owners_jobs_come_before_internal_jobs_even_when_those_are_older() {
        let tickets = [
            ticket("inspection-early", Source::SelfInspection, 0),
            ticket("phone", Source::Phone, 30),
            ticket("inspection-late", Source::SelfInspection, 10),
            ticket("walk-in", Source::WalkIn, 20),
            ticket("follow-up", Source::FollowUp, 40),
        ];
        assert_eq!(
            ids(&dispatch_queue(&tickets, at(12, 0))),
            [
                "walk-in",
                "phone",
                "follow-up",
                "inspection-early",
                "inspection-late"
            ]
        );
    }

    #[test]
    fn r_d3_equal_jobs_received_at_the_same_moment_are_ordered_by_id() {
        let tickets = [
            ticket("t-2", Source::Phone, 5),
            ticket("t-1", Source::WalkIn, 5),
        ];
        assert_eq!(ids(&dispatch_queue(&tickets, at(12, 0))), ["t-1", "t-2"]);
    }

    #[test]
    fn r_d3_only_received_work_orders_and_coordination_tickets_wait_for_dispatch() {
        let verbal = Ticket {
            kind: TicketKind::VerbalDispatch,
            category: Category::Security,
            ..ticket("verbal", Source::Phone, 0)
        };
        let coordination = Ticket {
            kind: TicketKind::CoordinationTicket,
            ..ticket("coordination", Source::Phone, 1)
        };
        let dispatched = held_by(
            "li",
            Status::Dispatched,
            ticket("dispatched", Source::Phone, 2),
        );
        let mut cancelled = ticket("cancelled", Source::Phone, 3);
        cancelled.status = Status::Cancelled;
        let waiting = ticket("waiting", Source::Phone, 4);
        let tickets = [verbal, coordination, dispatched, cancelled, waiting];
        assert_eq!(
            ids(&dispatch_queue(&tickets, at(12, 0))),
            ["coordination", "waiting"]
        );
    }

    #[test]
    fn r_d3_the_building_is_the_location_before_the_first_dash_space_or_hao() {
        assert_eq!(building_of("3-1-502"), Some("3"));
        assert_eq!(building_of("  12-2-1101 "), Some("12"));
        assert_eq!(building_of("B2 水泵房"), Some("B2"));
        assert_eq!(building_of("2号楼大堂"), Some("2"));
        assert_eq!(building_of("会所"), Some("会所"));
        assert_eq!(building_of("-1-502"), None);
        assert_eq!(building_of("   "), None);
    }

    #[test]
    fn r_d3_the_fewest_open_tickets_rank_first_even_without_a_job_in_the_building() {
        let new_job = at_location("new", "3-2-601");
        let candidates = [
            load("li", &["3-1-502", "3-1-101"]),
            load("wang", &["7-1-302"]),
            load("zhang", &[]),
        ];
        assert_eq!(
            ranking(&suggest_technicians(&new_job, &candidates)),
            [
                (1, "zhang".into(), 0, 0),
                (2, "wang".into(), 1, 0),
                (3, "li".into(), 2, 2)
            ]
        );
    }

    #[test]
    fn r_d3_among_equal_loads_jobs_in_the_same_building_rank_first() {
        let new_job = at_location("new", "3-2-601");
        let candidates = [
            load("li", &["5-2-1101", "9-1-101"]),
            load("wang", &["3号楼2单元", "8-1-1"]),
            load("zhang", &["b3 roof", "3-1-502"]),
        ];
        assert_eq!(
            ranking(&suggest_technicians(&new_job, &candidates)),
            [
                (1, "wang".into(), 2, 1),
                (2, "zhang".into(), 2, 1),
                (3, "li".into(), 2, 0)
            ],
            "wang and zhang tie on load and building, so the user id decides"
        );
    }

    #[test]
    fn r_d3_the_same_state_always_gives_the_same_ranking_whatever_the_input_order() {
        let new_job = at_location("new", "B2 泵房");
        let mut candidates = vec![
            load("wang", &["b2 配电室"]),
            load("li", &["B2 水泵房"]),
            load("zhang", &["5-1-1"]),
        ];
        let first = suggest_technicians(&new_job, &candidates);
        candidates.reverse();
        assert_eq!(suggest_technicians(&new_job, &candidates), first);
        assert_eq!(
            ranking(&first),
            [
                (1, "li".into(), 1, 1),
                (2, "wang".into(), 1, 1),
                (3, "zhang".into(), 1, 0)
            ]
        );
    }

    #[test]
    fn r_d3_the_ticket_itself_is_not_counted_in_its_current_holders_load() {
        let held = held_by("li", Status::InProgress, at_location("t-9", "3-1-502"));
        let other = held_by("li", Status::Dispatched, at_location("t-8", "3-5-5"));
        let li = TechnicianLoad::from_tickets(user("li"), "李".into(), [&held, &other]);
        let zhang = load("zhang", &["6-1-1"]);
        let suggestions = suggest_technicians(&held, &[li, zhang]);
        assert_eq!(
            ranking(&suggestions),
            [(1, "li".into(), 1, 1), (2, "zhang".into(), 1, 0)]
        );
    }

    #[test]
    fn r_d3_only_tickets_a_technician_holds_open_count_in_their_load() {
        let completed = held_by("li", Status::Completed, at_location("done", "3-1-1"));
        let reassigned_away = held_by("zhang", Status::Dispatched, at_location("away", "3-1-2"));
        let in_progress = held_by("li", Status::InProgress, at_location("busy", "4-1-1"));
        let li = TechnicianLoad::from_tickets(
            user("li"),
            "李".into(),
            [&completed, &reassigned_away, &in_progress],
        );
        let jobs: Vec<&str> = li.open_jobs.iter().map(|j| j.ticket_id.as_str()).collect();
        assert_eq!(jobs, ["busy"]);
    }

    #[test]
    fn r_d3_every_suggestion_says_why_in_english_and_chinese() {
        let new_job = at_location("new", "3-2-601");
        let candidates = [
            load("li", &["3-1-502"]),
            load("wang", &["7-1-302", "8-1-1"]),
            load("zhang", &[]),
        ];
        let reasons: Vec<(String, String)> = suggest_technicians(&new_job, &candidates)
            .into_iter()
            .map(|s| (s.reason.en, s.reason.zh_cn))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "free: no open tickets".to_owned(),
                    "空闲：没有在办工单".to_owned()
                ),
                (
                    "1 open ticket, 1 of them in building 3: already nearby".to_owned(),
                    "在办工单 1 张，其中 1 张在楼栋 3，就近".to_owned()
                ),
                (
                    "2 open tickets, none in building 3".to_owned(),
                    "在办工单 2 张，均不在楼栋 3".to_owned()
                ),
            ]
        );
        let nowhere = at_location("nowhere", "-");
        let suggestion = &suggest_technicians(&nowhere, &[load("li", &["3-1-502"])])[0];
        assert_eq!(suggestion.reason.en, "1 open ticket");
        assert_eq!(suggestion.reason.zh_cn, "在办工单 1 张");
        assert_eq!(suggestion.same_building_jobs, 0);
    }

    #[test]
    fn r_d3_suggestions_are_capped() {
        let candidates: Vec<TechnicianLoad> = (0..MAX_SUGGESTIONS + 5)
            .map(|n| load(&format!("tech-{n:03}"), &[]))
            .collect();
        let suggestions = suggest_technicians(&at_location("new", "3-1-1"), &candidates);
        assert_eq!(suggestions.len(), MAX_SUGGESTIONS);
        assert_eq!(suggestions.last().unwrap().rank as usize, MAX_SUGGESTIONS);
    }

    #[test]
    fn r_d3_a_technician_can_be_suggested_for_open_tickets_only() {
        let received = ticket("received", Source::Phone, 0);
        assert_eq!(assignment_event(&received, at(12, 0)), Ok(Event::Dispatch));
        for status in [Status::Dispatched, Status::InProgress] {
            let held = held_by("li", status, ticket("held", Source::Phone, 0));
            assert_eq!(assignment_event(&held, at(12, 0)), Ok(Event::Reassign));
        }
        for status in [
            Status::Completed,
            Status::Closed,
            Status::Converted,
            Status::Cancelled,
        ] {
            let finished = held_by("li", status, ticket("finished", Source::Phone, 0));
            assert!(
                assignment_event(&finished, at(12, 0)).is_err(),
                "{status:?}"
            );
        }
    }

    /// The booking of `office::tests::booked_ticket` is issued at local
    /// 00:00 of 11-28, which is 16:00 UTC on 11-27.
    fn issue_moment() -> chrono::DateTime<chrono::Utc> {
        at(16, 0)
    }

    #[test]
    fn r_s2_a_booking_joins_the_queue_on_its_issue_day_and_waits_from_then() {
        let booked = booked_ticket();
        let walk_in = ticket("walk-in", Source::WalkIn, 0);
        let tickets = [booked, walk_in];
        let before = issue_moment() - Duration::seconds(1);
        assert_eq!(ids(&dispatch_queue(&tickets, before)), ["walk-in"]);
        assert_eq!(
            ids(&dispatch_queue(&tickets, issue_moment())),
            ["walk-in", "t-booked"],
            "both were received at 09:00 UTC, but the booking waits only since its issue at 16:00 UTC"
        );
    }

    #[test]
    fn r_s2_nobody_is_suggested_for_a_booking_before_its_issue() {
        let booked = booked_ticket();
        let refused = assignment_event(&booked, issue_moment() - Duration::seconds(1));
        assert!(matches!(
            refused,
            Err(WorkflowError::BookingNotIssued { .. })
        ));
        assert_eq!(
            assignment_event(&booked, issue_moment()),
            Ok(Event::Dispatch)
        );
    }

    #[test]
    fn r_s2_the_staff_agreed_with_the_owner_ranks_first_whatever_their_load() {
        let booked = booked_ticket();
        let candidates = [
            load("li", &["3-1-502", "3-1-101"]),
            load("wang", &["7-1-302"]),
            load("zhang", &[]),
        ];
        let suggestions = suggest_technicians(&booked, &candidates);
        assert_eq!(
            ranking(&suggestions),
            [
                (1, "li".into(), 2, 2),
                (2, "zhang".into(), 0, 0),
                (3, "wang".into(), 1, 0)
            ]
        );
        assert_eq!(
            suggestions[0].reason.en,
            "agreed with the owner for this booking; 2 open tickets, 2 of them in building 3: already nearby"
        );
        assert_eq!(
            suggestions[0].reason.zh_cn,
            "业主预约指定人员；在办工单 2 张，其中 2 张在楼栋 3，就近"
        );
    }

    #[test]
    fn r_d3_priority_follows_the_source_and_orders_owners_first() {
        assert_eq!(Priority::of(Source::Phone), Priority::Owner);
        assert_eq!(Priority::of(Source::WalkIn), Priority::Owner);
        assert_eq!(Priority::of(Source::FollowUp), Priority::Owner);
        assert_eq!(Priority::of(Source::SelfInspection), Priority::Internal);
        assert!(Priority::Owner < Priority::Internal);
    }
}
