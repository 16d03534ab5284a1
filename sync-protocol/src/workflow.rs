//! The ticket's workflow state machine (SPEC steps 3-5). One function decides
//! every status change, whether it comes from the office or from a device.

use serde::{Deserialize, Serialize};

use crate::error::WorkflowError;

/// Where a ticket is in the seven-step flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 受理: recorded, not yet dispatched.
    Received,
    /// 已派工: a technician is assigned and on the way (R-P1 clock runs).
    Dispatched,
    /// 处理中: the technician arrived on site.
    InProgress,
    /// 已完成: the technician recorded the result; waiting for closure (R-C1)
    /// or, for a coordination ticket, for its sign-offs (R-C3).
    Completed,
    /// 已完结: closed (R-C1, R-C3, R-K1); follow-ups are recorded on it (R-F2).
    Closed,
    /// 已转协调单: a work order converted into a coordination ticket (R-C2).
    Converted,
    /// 已取消.
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Dispatched => "dispatched",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Closed => "closed",
            Status::Converted => "converted",
            Status::Cancelled => "cancelled",
        }
    }

    /// Open tickets still need somebody's work.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::Received | Status::Dispatched | Status::InProgress
        )
    }
}

/// What happens to a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Dispatch,
    Reassign,
    /// An appointment is booked or moved (R-P1, R-P2).
    Appoint,
    Arrive,
    Complete,
    Cancel,
    /// R-C3: the department manager signs a completed coordination ticket off.
    SignOff,
    /// R-C1, R-C3: the ticket is closed.
    Close,
    /// R-K1: a verbal dispatch is closed by the agent when the radio says done.
    CloseVerbal,
    /// R-C2: an unfinished work order becomes a coordination ticket.
    Convert,
    /// R-F2: a follow-up result is recorded.
    FollowUp,
    /// R-P3, R-P4, R-P5, R-D2: a tracking record on an open coordination ticket.
    Track,
    /// R-S2: the owner moves a booked service to another date.
    Reschedule,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Dispatch => "dispatch",
            Event::Reassign => "reassign",
            Event::Appoint => "appoint",
            Event::Arrive => "arrive",
            Event::Complete => "complete",
            Event::Cancel => "cancel",
            Event::SignOff => "sign_off",
            Event::Close => "close",
            Event::CloseVerbal => "close_verbal",
            Event::Convert => "convert",
            Event::FollowUp => "follow_up",
            Event::Track => "track",
            Event::Reschedule => "reschedule",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The next status, or why the event is not allowed now.
pub fn transition(from: Status, event: Event) -> Result<Status, WorkflowError> {
    use Event as E;
    use Status as S;
    let to = match (from, event) {
        (S::Received, E::Dispatch) => S::Dispatched,
        (S::Received | S::Dispatched | S::InProgress, E::Appoint) => from,
        // A new technician has not arrived yet, whatever the previous one did.
        (S::Dispatched | S::InProgress, E::Reassign) => S::Dispatched,
        (S::Dispatched | S::InProgress, E::Arrive) => S::InProgress,
        // A result without an arrival is still a result; R-P1 timeliness is judged elsewhere.
        (S::Dispatched | S::InProgress, E::Complete) => S::Completed,
        // A second result (a correction) keeps the ticket completed.
        (S::Completed, E::Complete) => S::Completed,
        (S::Received | S::Dispatched | S::InProgress, E::Cancel) => S::Cancelled,
        (S::Completed, E::SignOff) => S::Completed,
        (S::Completed, E::Close) => S::Closed,
        // R-K1: the agent closes a verbal dispatch when the radio says it is
        // done, or once a technician it was given to recorded the result.
        (S::Received | S::Dispatched | S::InProgress | S::Completed, E::CloseVerbal) => S::Closed,
        (S::Received | S::Dispatched | S::InProgress, E::Convert) => S::Converted,
        (S::Closed, E::FollowUp) => S::Closed,
        (S::Received | S::Dispatched | S::InProgress | S::Completed, E::Track) => from,
        // Once the staff has arrived the service is under way: no more moves.
        // A dispatched booking keeps its staff when it moves.
        (S::Received | S::Dispatched, E::Reschedule) => from,
        _ => return Err(WorkflowError::TransitionNotAllowed { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATUSES: [Status; 7] = [
        Status::Received,
        Status::Dispatched,
        Status::InProgress,
        Status::Completed,
        Status::Closed,
        Status::Converted,
        Status::Cancelled,
    ];
    const ALL_EVENTS: [Event; 13] = [
        Event::Dispatch,
        Event::Reassign,
        Event::Appoint,
        Event::Arrive,
        Event::Complete,
        Event::Cancel,
        Event::SignOff,
        Event::Close,
        Event::CloseVerbal,
        Event::Convert,
        Event::FollowUp,
        Event::Track,
        Event::Reschedule,
    ];

    #[test]
    fn the_happy_path_of_a_work_order_is_allowed() {
        let mut status = Status::Received;
        for event in [Event::Dispatch, Event::Arrive, Event::Complete] {
            status = transition(status, event).unwrap();
        }
        assert_eq!(status, Status::Completed);
    }

    #[test]
    fn reassignment_sends_an_in_progress_ticket_back_to_dispatched() {
        assert_eq!(
            transition(Status::InProgress, Event::Reassign).unwrap(),
            Status::Dispatched
        );
    }

    #[test]
    fn cancelled_and_completed_tickets_accept_no_office_change() {
        for event in ALL_EVENTS {
            assert!(transition(Status::Cancelled, event).is_err(), "{event:?}");
        }
        for event in [
            Event::Dispatch,
            Event::Reassign,
            Event::Arrive,
            Event::Cancel,
        ] {
            assert!(transition(Status::Completed, event).is_err(), "{event:?}");
        }
    }

    #[test]
    fn every_pair_either_moves_or_names_the_refused_pair() {
        for from in ALL_STATUSES {
            for event in ALL_EVENTS {
                match transition(from, event) {
                    // Only closure moves a ticket that is no longer open.
                    Ok(to) => assert!(
                        from.is_open()
                            || to == from
                            || (from == Status::Completed
                                && matches!(event, Event::Close | Event::CloseVerbal)),
                        "{from:?} {event:?}"
                    ),
                    Err(WorkflowError::TransitionNotAllowed { from: f, event: e }) => {
                        assert_eq!((f, e), (from, event))
                    }
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn r_c3_a_coordination_ticket_is_signed_off_then_closed() {
        let signed = transition(Status::Completed, Event::SignOff).unwrap();
        assert_eq!(transition(signed, Event::Close).unwrap(), Status::Closed);
    }

    #[test]
    fn r_f2_a_closed_ticket_takes_only_follow_ups_and_converted_or_cancelled_ones_nothing() {
        for event in ALL_EVENTS {
            let allowed = transition(Status::Closed, event).is_ok();
            assert_eq!(allowed, event == Event::FollowUp, "{event:?}");
            assert!(transition(Status::Converted, event).is_err(), "{event:?}");
        }
    }

    #[test]
    fn r_k1_r_c2_verbal_closure_and_conversion_happen_before_completion_only() {
        for from in [Status::Received, Status::Dispatched, Status::InProgress] {
            assert_eq!(
                transition(from, Event::CloseVerbal).unwrap(),
                Status::Closed
            );
            assert_eq!(transition(from, Event::Convert).unwrap(), Status::Converted);
        }
        assert!(transition(Status::Completed, Event::Convert).is_err());
    }

    #[test]
    fn r_s2_a_booking_moves_until_its_staff_arrives_and_keeps_its_status() {
        for from in [Status::Received, Status::Dispatched] {
            assert_eq!(transition(from, Event::Reschedule).unwrap(), from);
        }
        for from in [
            Status::InProgress,
            Status::Completed,
            Status::Closed,
            Status::Converted,
            Status::Cancelled,
        ] {
            assert!(transition(from, Event::Reschedule).is_err(), "{from:?}");
        }
    }

    #[test]
    fn a_received_ticket_cannot_be_worked_before_dispatch() {
        assert!(transition(Status::Received, Event::Arrive).is_err());
        assert!(transition(Status::Received, Event::Complete).is_err());
    }
}
