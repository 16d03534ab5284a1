//! How much one ticket holds. Every change rewrites the whole ticket, on one
//! writer, so an unbounded ticket would hold every other device up while it
//! is read and written. A ticket takes free notes (a technician's, the
//! office's) while it is below the content bounds, and everything the
//! workflow needs (arrival, result and signature, dispatch, reassignment,
//! appointments, tracking, sign-off, closure, follow-up, conversion) a while
//! longer, so that a ticket full of notes can still be finished. Results and
//! signatures are few per ticket ([`MAX_RESULTS`], [`MAX_SIGNATURES`]). What
//! was accepted stays; only the change that does not fit is refused
//! (`ticket_full`). The scheduler's own records (`deadline_missed`) are never
//! refused, and not counted.

use crate::ticket::{Actor, HistoryEvent, Ticket};

/// Results one ticket keeps (the first and its corrections).
pub const MAX_RESULTS: usize = 20;
/// Owner's signatures one ticket keeps.
pub const MAX_SIGNATURES: usize = 20;
/// Photos one ticket keeps (each a blob of at most `MAX_BLOB_BYTES`).
pub const MAX_PHOTOS: usize = 40;
/// Changes by people and devices after which a ticket takes no new content.
pub const MAX_CONTENT_CHANGES: usize = 500;
/// Bytes of free text after which a ticket takes no new content.
pub const MAX_CONTENT_TEXT_BYTES: usize = 64 * 1024;
/// Changes by people and devices after which a ticket takes none at all.
pub const MAX_CHANGES: usize = 800;
/// Bytes of free text after which a ticket takes no change at all.
pub const MAX_TEXT_BYTES: usize = 96 * 1024;

// A full ticket can still be finished: the workflow has room past the content.
const _: () = assert!(MAX_CHANGES > MAX_CONTENT_CHANGES && MAX_TEXT_BYTES > MAX_CONTENT_TEXT_BYTES);

/// What a change adds to a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addition {
    /// A free note, which nothing in the workflow waits for.
    Content,
    /// What the workflow needs to go on: a fact, a move, a record.
    Workflow,
}

/// The ticket cannot take this change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the ticket is full ({changes} changes, {text_bytes} bytes of text): it takes no more of this (工单内容已满)"
)]
pub struct TicketFull {
    pub changes: usize,
    pub text_bytes: usize,
}

/// How full a ticket is. Counting walks the whole ticket, so a batch counts
/// once per ticket and then adds what each applied change brought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// History entries by people and devices.
    pub changes: usize,
    /// Bytes of free text people and devices wrote.
    pub text_bytes: usize,
}

impl Usage {
    pub fn of(ticket: &Ticket) -> Self {
        Usage {
            changes: ticket
                .history
                .iter()
                .filter(|entry| !matches!(entry.actor, Actor::Scheduler {}))
                .count(),
            text_bytes: text_bytes(ticket),
        }
    }

    /// Whether a ticket this full takes a change of this kind carrying
    /// `added_text_bytes`.
    pub fn check(&self, addition: Addition, added_text_bytes: usize) -> Result<(), TicketFull> {
        let (max_changes, max_text_bytes) = match addition {
            Addition::Content => (MAX_CONTENT_CHANGES, MAX_CONTENT_TEXT_BYTES),
            Addition::Workflow => (MAX_CHANGES, MAX_TEXT_BYTES),
        };
        if self.changes >= max_changes || self.text_bytes + added_text_bytes > max_text_bytes {
            return Err(TicketFull {
                changes: self.changes,
                text_bytes: self.text_bytes,
            });
        }
        Ok(())
    }

    /// One change applied: one history entry and its text.
    pub fn add(&mut self, added_text_bytes: usize) {
        self.changes += 1;
        self.text_bytes += added_text_bytes;
    }
}

/// Whether `ticket` takes a change of this kind carrying `added_text_bytes`.
pub fn check_room(
    ticket: &Ticket,
    addition: Addition,
    added_text_bytes: usize,
) -> Result<(), TicketFull> {
    Usage::of(ticket).check(addition, added_text_bytes)
}

/// Bytes of free text on the ticket: what people and devices wrote.
pub fn text_bytes(ticket: &Ticket) -> usize {
    let notes: usize = ticket.notes.values().map(|fact| fact.body.text.len()).sum();
    let results: usize = ticket
        .results
        .values()
        .map(|fact| fact.body.text_bytes())
        .sum();
    let signers: usize = ticket
        .signatures
        .values()
        .map(|fact| fact.body.signer_name.len())
        .sum();
    let office_notes: usize = ticket.office_notes.iter().map(|note| note.text.len()).sum();
    let tracking: usize = ticket.tracking.iter().map(|record| record.note.len()).sum();
    let follow_ups: usize = ticket.follow_ups.iter().map(|call| call.note.len()).sum();
    let sign_offs: usize = ticket
        .sign_offs
        .iter()
        .map(|sign_off| sign_off.note.len())
        .sum();
    let history: usize = ticket
        .history
        .iter()
        .map(|entry| match &entry.event {
            HistoryEvent::Reassigned { reason, .. }
            | HistoryEvent::Cancelled { reason }
            | HistoryEvent::ConvertedTo { reason, .. } => reason.len(),
            HistoryEvent::BookingRescheduled { note, .. }
            | HistoryEvent::FactReviewed { note, .. } => note.len(),
            _ => 0,
        })
        .sum();
    notes + results + signers + office_notes + tracking + follow_ups + sign_offs + history
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::office::tests::{at, calendar, dispatched_ticket, user};
    use crate::office::{OfficeOp, apply_office_op};
    use crate::workflow::Status;

    fn act(ticket: &Ticket, op: OfficeOp) -> Result<Ticket, crate::WorkflowError> {
        apply_office_op(ticket, &op, &user("diaodu"), &calendar(), at(10, 0))
    }

    #[test]
    fn office_notes_stop_at_the_text_bound_and_a_full_ticket_can_still_be_cancelled() {
        let mut ticket = dispatched_ticket("li");
        let text = "漏".repeat(1000);
        let refused = loop {
            match act(&ticket, OfficeOp::AddNote { text: text.clone() }) {
                Ok(next) => ticket = next,
                Err(refused) => break refused,
            }
        };
        assert_eq!(refused.code(), "ticket_full");
        assert!(text_bytes(&ticket) <= MAX_CONTENT_TEXT_BYTES);
        assert!(text_bytes(&ticket) + text.len() > MAX_CONTENT_TEXT_BYTES);
        let cancelled = act(
            &ticket,
            OfficeOp::Cancel {
                reason: "duplicate report".into(),
            },
        )
        .unwrap();
        assert_eq!(cancelled.status, Status::Cancelled);
    }
}
