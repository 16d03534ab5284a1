//! What the handheld keeps besides its outbox of `DeviceMutation`s: the
//! local copy of a ticket, the answer each mutation got, and the session.
//! Stored as JSON; the wire types inside them are `sync-protocol`'s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_protocol::{
    DeviceMutation, EstateId, Outcome, RevokeReason, Ticket, UserId, Verdict, Version,
};

/// One ticket of the replica: the server's copy as last pulled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTicket {
    pub ticket: Ticket,
    /// Set when the server revoked the ticket while something recorded on
    /// it was still waiting to upload: it stays, read-only, until the server
    /// has answered every such change, then leaves the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<RevokeReason>,
}

/// The server's answer to one mutation, as the technician is shown it. The
/// mutation is kept with it, so that its fact stays visible on the ticket
/// until a pull brings the server's copy with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub mutation: DeviceMutation,
    pub outcome: Outcome,
    /// Device time when the answer arrived.
    pub answered_at: DateTime<Utc>,
}

impl OutcomeRecord {
    /// The answer that counts: a duplicate's first verdict, else the verdict.
    pub fn verdict(&self) -> Verdict {
        match &self.outcome {
            Outcome::Applied(applied) => Verdict::Applied(applied.clone()),
            Outcome::Rejected(rejection) => Verdict::Rejected(rejection.clone()),
            Outcome::Duplicate { first } => first.clone(),
        }
    }

    /// Late or rejected: the technician should look at it.
    pub fn needs_attention(&self) -> bool {
        match self.verdict() {
            Verdict::Applied(applied) => applied.late.is_some(),
            Verdict::Rejected(_) => true,
        }
    }
}

/// A change the server applied whose fact the local copy does not show
/// yet: it stays on the ticket's view until a pull brings a copy at
/// `ticket_version` or later (versions of a ticket only grow, and facts are
/// never removed, so that copy holds it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub mutation: DeviceMutation,
    /// The ticket's version right after the server applied it.
    pub ticket_version: Version,
}

/// A login: the bearer token, the refresh token that renews it, and whom
/// they are for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Absent in sessions stored before refresh tokens existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub user: UserId,
    pub estate: EstateId,
}

impl Session {
    /// The session a login or refresh answer opens.
    pub fn of(response: sync_protocol::LoginResponse) -> Self {
        Self {
            token: response.token,
            expires_at: response.expires_at,
            refresh_token: Some(response.refresh_token),
            user: response.user,
            estate: response.estate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_protocol::{
        Applied, DeviceOp, DeviceSeq, LateReason, Lateness, RejectCode, Rejection, TicketId,
    };

    fn record(outcome: Outcome) -> OutcomeRecord {
        OutcomeRecord {
            mutation: DeviceMutation {
                seq: DeviceSeq(1),
                ticket_id: TicketId::parse("tk00000001").unwrap(),
                base_version: Version(2),
                recorded_at: DateTime::UNIX_EPOCH,
                op: DeviceOp::RecordArrival { position: None },
            },
            outcome,
            answered_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_duplicate_counts_as_its_first_answer() {
        let late = Applied {
            ticket_version: Version(4),
            late: Some(Lateness {
                reason: LateReason::ReassignedAway,
                assigned_now: None,
            }),
        };
        let duplicate = record(Outcome::Duplicate {
            first: Verdict::Applied(late.clone()),
        });
        assert_eq!(duplicate.verdict(), Verdict::Applied(late));
        assert!(duplicate.needs_attention());
    }

    #[test]
    fn only_late_and_rejected_answers_need_attention() {
        let applied = record(Outcome::Applied(Applied {
            ticket_version: Version(3),
            late: None,
        }));
        assert!(!applied.needs_attention());
        let rejected = record(Outcome::Rejected(Rejection {
            code: RejectCode::InvalidContent,
            reason: "a paid job needs its fee".to_owned(),
        }));
        assert!(rejected.needs_attention());
    }
}
