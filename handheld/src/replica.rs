//! The replica's decisions as plain functions: how a pulled page changes
//! the local tickets, and how a ticket looks with what the technician
//! recorded that its local copy does not show yet (the overlay).
//!
//! The overlay is the server's own merge (`sync_protocol::merge`) run on
//! the device: the app shows a pending arrival moving the ticket to
//! 处理中 exactly as the server will, and refuses at once what the server
//! would reject (a paid result without its fee, say).

use std::collections::BTreeSet;

use sync_protocol::{
    Change, Cursor, DeviceMutation, Merged, Recorder, RevokeReason, Ticket, TicketId, merge,
};

use crate::records::{Acknowledged, LocalTicket};

/// What one change of a page does to the replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageStep {
    /// An `upsert`: add or replace the local copy (and forget a revocation:
    /// the ticket came back).
    Store(Box<LocalTicket>),
    /// Revoked while changes recorded on it still wait to upload: it stays,
    /// read-only, with its pending facts, until the server has answered them.
    KeepRevoked {
        ticket_id: TicketId,
        reason: RevokeReason,
    },
    /// Revoked with nothing waiting: it leaves the replica.
    Remove(TicketId),
}

/// A page as steps, and the cursor to store with them (in the same atomic
/// write, so that a crash repeats the page rather than skips it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagePlan {
    pub steps: Vec<PageStep>,
    pub next_cursor: Cursor,
}

/// Plan a pulled page. `with_pending` are the tickets that have changes
/// waiting to upload.
pub fn plan_page(
    changes: Vec<Change>,
    next_cursor: Cursor,
    with_pending: &BTreeSet<TicketId>,
) -> PagePlan {
    let steps = changes
        .into_iter()
        .map(|change| match change {
            Change::Upsert { ticket, .. } => PageStep::Store(Box::new(LocalTicket {
                ticket: *ticket,
                revoked: None,
            })),
            Change::Revoked {
                ticket_id, reason, ..
            } if with_pending.contains(&ticket_id) => PageStep::KeepRevoked { ticket_id, reason },
            Change::Revoked { ticket_id, .. } => PageStep::Remove(ticket_id),
        })
        .collect();
    PagePlan { steps, next_cursor }
}

/// Whether a revoked ticket leaves the replica once `pending_left` of its
/// changes still wait to upload.
pub fn leaves_replica(local: &LocalTicket, pending_left: usize) -> bool {
    local.revoked.is_some() && pending_left == 0
}

/// Whether an acknowledged change must still be shown over `copy`: the
/// copy is older than the version the change produced.
pub fn awaits_pull(acknowledged: &Acknowledged, copy: &Ticket) -> bool {
    acknowledged.ticket_version > copy.version
}

/// The ticket as it will be once the server has `unsynced` (pending changes
/// and acknowledged ones the copy does not show yet): the copy with each
/// merged in seq order, as if the server received it when it was recorded.
/// A change the server would reject leaves the ticket as it is.
pub fn overlay(copy: &Ticket, recorder: &Recorder, unsynced: &[DeviceMutation]) -> Ticket {
    let mut ordered: Vec<&DeviceMutation> = unsynced.iter().collect();
    ordered.sort_by_key(|mutation| mutation.seq);
    let mut shown = copy.clone();
    for mutation in ordered {
        if let Merged {
            ticket: Some(next), ..
        } = merge(&shown, recorder, mutation, mutation.recorded_at)
        {
            shown = next;
        }
    }
    shown
}

/// The technician's device as the merge sees it: no clock correction,
/// since the device's own time is all there is.
pub fn recorder(user: &sync_protocol::UserId, device: &sync_protocol::DeviceId) -> Recorder {
    Recorder {
        user: user.clone(),
        device: device.clone(),
        clock_offset_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{device, dispatched_ticket, mutation, technician};
    use sync_protocol::{
        Charge, CompletionRecord, DeviceOp, MutationId, Status, Verdict, Version, merge,
    };

    #[test]
    fn an_upsert_stores_the_ticket_and_forgets_an_earlier_revocation() {
        let ticket = dispatched_ticket("tk00000001");
        let plan = plan_page(
            vec![Change::Upsert {
                cursor: Cursor(4),
                ticket: Box::new(ticket.clone()),
            }],
            Cursor(9),
            &BTreeSet::from([ticket.id.clone()]),
        );
        assert_eq!(plan.next_cursor, Cursor(9));
        assert_eq!(
            plan.steps,
            vec![PageStep::Store(Box::new(LocalTicket {
                ticket,
                revoked: None
            }))]
        );
    }

    #[test]
    fn a_revoked_ticket_with_pending_changes_stays_and_one_without_leaves() {
        let kept = TicketId::parse("tk00000001").unwrap();
        let gone = TicketId::parse("tk00000002").unwrap();
        let revoked = |ticket_id: &TicketId, cursor| Change::Revoked {
            cursor: Cursor(cursor),
            ticket_id: ticket_id.clone(),
            reason: RevokeReason::Reassigned,
        };
        let plan = plan_page(
            vec![revoked(&kept, 5), revoked(&gone, 6)],
            Cursor(6),
            &BTreeSet::from([kept.clone()]),
        );
        assert_eq!(
            plan.steps,
            vec![
                PageStep::KeepRevoked {
                    ticket_id: kept,
                    reason: RevokeReason::Reassigned
                },
                PageStep::Remove(gone),
            ]
        );
    }

    #[test]
    fn a_revoked_ticket_leaves_only_when_nothing_waits_and_a_held_one_never() {
        let mut local = LocalTicket {
            ticket: dispatched_ticket("tk00000001"),
            revoked: None,
        };
        assert!(!leaves_replica(&local, 0));
        local.revoked = Some(RevokeReason::Cancelled);
        assert!(!leaves_replica(&local, 1));
        assert!(leaves_replica(&local, 0));
    }

    #[test]
    fn a_pending_arrival_shows_the_ticket_in_progress_with_its_fact() {
        let copy = dispatched_ticket("tk00000001");
        let arrival = mutation(1, &copy, DeviceOp::RecordArrival { position: None });
        let note = mutation(
            2,
            &copy,
            DeviceOp::AddNote {
                text: "阀门锈死 valve seized".to_owned(),
            },
        );
        // Given out of order: the overlay merges in seq order all the same.
        let shown = overlay(&copy, &recorder(&technician(), &device()), &[note, arrival]);
        assert_eq!(copy.status, Status::Dispatched);
        assert_eq!(shown.status, Status::InProgress);
        assert!(
            shown
                .arrivals
                .contains_key(&MutationId::new(device(), sync_protocol::DeviceSeq(1)))
        );
        assert_eq!(shown.notes.len(), 1);
        assert_eq!(shown.version, Version(copy.version.0 + 2));
    }

    #[test]
    fn a_change_the_server_would_reject_leaves_the_overlay_as_it_is() {
        let copy = dispatched_ticket("tk00000001");
        let unpaid = mutation(
            1,
            &copy,
            DeviceOp::Complete {
                result: CompletionRecord {
                    work_done: "replaced the lamp holder 更换灯座".to_owned(),
                    materials: Vec::new(),
                    charge: Charge::Paid { fee_fen: 0 },
                },
            },
        );
        let who = recorder(&technician(), &device());
        assert!(matches!(
            merge(&copy, &who, &unpaid, unpaid.recorded_at).verdict,
            Verdict::Rejected(_)
        ));
        assert_eq!(overlay(&copy, &who, &[unpaid]), copy);
    }

    #[test]
    fn an_acknowledged_change_is_shown_until_a_copy_at_its_version_arrives() {
        let copy = dispatched_ticket("tk00000001");
        let acknowledged = Acknowledged {
            mutation: mutation(1, &copy, DeviceOp::RecordArrival { position: None }),
            ticket_version: Version(copy.version.0 + 1),
        };
        assert!(awaits_pull(&acknowledged, &copy));
        let mut newer = copy.clone();
        newer.version = acknowledged.ticket_version;
        assert!(!awaits_pull(&acknowledged, &newer));
    }
}
