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
    /// 已完成: the technician recorded the result; waiting for closure (R-C1).
    Completed,
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
        _ => return Err(WorkflowError::TransitionNotAllowed { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATUSES: [Status; 5] = [
        Status::Received,
        Status::Dispatched,
        Status::InProgress,
        Status::Completed,
        Status::Cancelled,
    ];
    const ALL_EVENTS: [Event; 6] = [
        Event::Dispatch,
        Event::Reassign,
        Event::Appoint,
        Event::Arrive,
        Event::Complete,
        Event::Cancel,
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
                    Ok(to) => assert!(from.is_open() || to == from, "{from:?} {event:?}"),
                    Err(WorkflowError::TransitionNotAllowed { from: f, event: e }) => {
                        assert_eq!((f, e), (from, event))
                    }
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_received_ticket_cannot_be_worked_before_dispatch() {
        assert!(transition(Status::Received, Event::Arrive).is_err());
        assert!(transition(Status::Received, Event::Complete).is_err());
    }
}
